"""`RUN --mount` options as BuildKit reads them (instructions/commands_runmount.go, dockerfile2llb/convert_runmount.go,
convert_secrets.go, convert_ssh.go), what the op records of them, and the `--secret` / `--ssh` flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildkit_py.digest import Digest
from buildkit_py.errors import DockerfileError, SessionError
from buildkit_py.frontend.dockerfile2ops import dockerfile_to_plan
from buildkit_py.frontend.parser import parse_dockerfile
from buildkit_py.frontend.runmount import MountError, RunMount, exec_mount, parse_mount, ram_in_bytes
from buildkit_py.frontend.suggest import suggestion
from buildkit_py.session import SecretSource, SecretStore, SshAgents, SshSource, parse_secret, parse_ssh
from buildkit_py.solver.cachekey import cache_key
from buildkit_py.solver.ops import BindSpec, CacheSpec, ContextSource, ExecOp, SecretSpec, SshSpec, TmpfsSpec

CONTEXT = Digest("blake3", "c" * 64)
STAGE = Digest("blake3", "d" * 64)


def parse(text: str, env: dict[str, str] | None = None) -> RunMount:
    values = env or {}
    return parse_mount(text, lambda word: values.get(word.removeprefix("$"), word) if word.startswith("$") else word)


def refused(text: str) -> str:
    with pytest.raises(MountError) as caught:
        parse(text)
    return str(caught.value)


def test_defaults_per_type() -> None:
    assert parse("target=/x") == RunMount(type="bind", target="/x", readonly=True)
    assert parse("type=cache,target=/x").readonly is False
    assert parse("type=tmpfs,target=/x").readonly is False
    assert parse("type=secret,id=a").readonly is True
    assert parse("type=bind,target=/x,rw").readonly is False
    assert parse("type=cache,target=/x,ro").readonly is True
    assert parse("type=bind,target=/x,readwrite=true").readonly is False
    assert parse("type=cache,target=/x,readonly=1").readonly is True


def test_aliases_and_values() -> None:
    mount = parse("type=CACHE,dst=/c,src=/s,from=build,id=pip,sharing=LOCKED,mode=0700,uid=1000,gid=100")
    assert mount == RunMount(
        type="cache",
        target="/c",
        source="/s",
        from_="build",
        id="pip",
        sharing="locked",
        readonly=False,
        mode=0o700,
        uid=1000,
        gid=100,
    )
    assert parse("destination=/d").target == "/d"
    assert parse("type=secret,id=tok,env=TOKEN,required").env == "TOKEN"
    assert parse("type=secret,id=tok,required").required
    assert parse("type=ssh,required=false").required is False
    assert parse("type=tmpfs,target=/t,size=64m").size == 64 << 20


def test_values_are_expanded_but_from_is_not() -> None:
    mount = parse("type=cache,target=$DIR,id=$ID", {"DIR": "/root/.cache", "ID": "pip"})
    assert (mount.target, mount.id) == ("/root/.cache", "pip")
    assert parse("from=$X,target=/y", {"X": "other"}).from_ == "$X"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type=volume,target=/x", 'unsupported mount type "volume"'),
        ("type=cahce,target=/x", 'unsupported mount type "cahce" (did you mean cache?)'),
        ("type=cache,target=/x,sharing=privat", 'unsupported sharing value "privat" (did you mean private?)'),
        ("type=cache,traget=/x", "unexpected key 'traget' in 'traget=/x' (did you mean target?)"),
        ("type=cache,colour=red", "unexpected key 'colour' in 'colour=red'"),
        ("type=cache,target", "invalid field 'target' must be a key=value pair"),
        ("type=bind,target=/x,rw=maybe", "invalid value for rw: maybe"),
        ("type=bind,target=/x,required", "unexpected key 'required' for mount type 'bind'"),
        ("type=bind,target=/x,required=true", "unexpected key 'required' for mount type 'bind'"),
        ("type=cache,target=/x,size=1m", "unexpected key 'size' for mount type 'cache'"),
        ("type=tmpfs,target=/x,size=lots", "invalid value for size: lots"),
        ("type=cache,target=/x,mode=0999", "invalid value 0999 for mode"),
        ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
        ("type=cache,target=/x,gid=4294967296", "invalid value 4294967296 for gid"),
        ("type=bind,target=/x,mode=0755", 'mode not allowed for "bind" type mounts'),
        ("type=tmpfs,target=/x,uid=1", 'uid not allowed for "tmpfs" type mounts'),
        ("type=bind,target=/x,sharing=locked", "invalid cache sharing set for bind mount"),
        ("type=secret,id=a,from=x", "secret mount should not have a from"),
        ("type=secret,id=a,sharing=shared", "secret mount should not define sharing"),
        ("type=secret,required", "invalid secret mount. one of source, target required"),
        ("type=secret,id=a,source=b", "both source and id can't be set"),
        ("type=ssh,source=/x", "ssh does not support source"),
        ("type=bind,target=/x,env=A", "unexpected key 'env' for mount type 'bind'"),
        ("type=secret,id=a,env=", "invalid value for env: the name of an environment variable is needed"),
        ('target=/x,a"b', 'failed to parse csv mounts: parse error on line 1, column 12: bare " in non-quoted-field'),
    ],
)
def test_refused_with_buildkits_message(text: str, message: str) -> None:
    assert refused(text) == message


def test_op_view_defaults() -> None:
    def op_view(text: str, workdir: str = "/", index: int = 0) -> object:
        source = STAGE if "from=" in text else CONTEXT
        return exec_mount(parse(text), workdir=workdir, source=source, ssh_index=index)

    assert op_view("target=src", "/app") == BindSpec(target="/app/src", source=CONTEXT, path="/")
    assert op_view("target=/x,source=sub/../dir,rw") == BindSpec("/x", CONTEXT, "/dir", readonly=False)
    assert op_view("type=cache,target=.cache/pip", "/root") == CacheSpec(target="/root/.cache/pip", id=".cache/pip")
    assert op_view("type=cache,target=/c,from=base,source=/seed") == CacheSpec("/c", "/c", seed=STAGE, path="/seed")
    assert op_view("type=tmpfs,target=/t,size=1k") == TmpfsSpec("/t", 1024)
    assert op_view("type=secret,id=aws") == SecretSpec(id="aws", target="/run/secrets/aws")
    assert op_view("type=secret,target=/etc/token") == SecretSpec(id="token", target="/etc/token")
    assert op_view("type=secret,source=pw") == SecretSpec(id="pw", target="/run/secrets/pw")
    assert op_view("type=secret,id=t,env=TOKEN") == SecretSpec(id="t", target=None, env="TOKEN")
    assert op_view("type=secret,id=t,env=T,target=/t,mode=0440,uid=1") == SecretSpec("t", "/t", "T", mode=0o440, uid=1)
    assert op_view("type=ssh", index=1) == SshSpec(target="/run/buildkit/ssh_agent.1")
    assert op_view("type=ssh,id=gh,target=/s,mode=0666,required") == SshSpec("/s", "gh", True, mode=0o666)
    with pytest.raises(MountError, match='invalid mount target "/"'):
        op_view("type=cache,target=/")
    with pytest.raises(MountError, match='invalid mount target "/"'):
        op_view("type=tmpfs")


def plan_error(dockerfile: str) -> DockerfileError:
    parsed = parse_dockerfile(dockerfile.encode())
    with pytest.raises(DockerfileError) as caught:
        dockerfile_to_plan(
            parsed,
            context=ContextSource(name="context", path="/nonexistent"),
            build_args={},
            target=None,
            resolve_image=_no_images,
        )
    return caught.value


def _no_images(ref: str) -> object:
    from buildkit_py.errors import ImageNotFound

    raise ImageNotFound(f"No such image: {ref}")


def test_bad_mounts_name_the_dockerfile_line() -> None:
    error = plan_error("FROM scratch\nRUN true\nRUN --mount=type=nope,target=/x true\n")
    assert str(error).startswith('Dockerfile:3: RUN: unsupported mount type "nope"')
    error = plan_error("FROM scratch\nARG SIZE=huge\nRUN --mount=type=tmpfs,target=/t,size=$SIZE true\n")
    assert str(error).startswith("Dockerfile:3: RUN: invalid value for size: huge")
    error = plan_error("FROM scratch\nRUN --mount=from=later,target=/x true\nFROM scratch AS later\n")
    assert error.message == 'cannot mount from stage "later" to "/x", stage needs to be defined before current command'
    error = plan_error("FROM scratch\nRUN --mount=from=nosuchimage,target=/x true\n")
    assert error.location is not None and error.location.start_line == 2
    assert "nosuchimage" in error.message
    error = plan_error("FROM scratch\nRUN --mount=type=cache,target=${NOPE:?unset} true\n")
    assert error.location is not None and error.location.start_line == 2


def _exec(dockerfile: str) -> ExecOp:
    parsed = parse_dockerfile(dockerfile.encode())
    plan = dockerfile_to_plan(
        parsed,
        context=ContextSource(name="context", path="/x"),
        build_args={},
        target=None,
        resolve_image=_no_images,
    )
    op = plan.graph.op(plan.target)
    assert isinstance(op, ExecOp)
    return op


def test_cache_id_and_sharing_stay_out_of_the_key_but_target_does_not() -> None:
    def key(mount: str) -> Digest:
        op = _exec(f"FROM scratch\nRUN --mount={mount} true\n")
        return cache_key(op, {digest: digest for digest in op.inputs()})

    base = key("type=cache,target=/c")
    assert key("type=cache,target=/c,id=other,sharing=locked") == base
    assert key("type=cache,target=/d") != base
    assert key("type=cache,target=/c,mode=0700") != base


def test_a_run_without_mounts_keeps_its_digest_and_ssh_sets_the_agent_variable() -> None:
    plain = _exec("FROM scratch\nRUN true\n")
    assert "mounts" not in plain.definition()
    ssh = _exec("FROM scratch\nRUN --mount=type=ssh --mount=type=ssh,id=b true\n")
    assert "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0" in ssh.env
    own = _exec("FROM scratch\nENV SSH_AUTH_SOCK=/mine\nRUN --mount=type=ssh true\n")
    assert [entry for entry in own.env if entry.startswith("SSH_AUTH_SOCK=")] == ["SSH_AUTH_SOCK=/mine"]
    stage = _exec("FROM scratch AS a\nRUN true\nFROM scratch\nRUN --mount=from=a,target=/a,source=/x true\n")
    assert len(stage.inputs()) == 2


def test_ram_in_bytes_and_suggestions() -> None:
    assert [ram_in_bytes(text) for text in ("1024", "1k", "1KiB", "1.5m", "2g", "1 MB")] == [
        1024,
        1024,
        1024,
        3 << 19,
        2 << 30,
        1 << 20,
    ]
    with pytest.raises(ValueError):
        ram_in_bytes("1x")
    assert suggestion("tmpf", ("bind", "cache", "tmpfs")) == "tmpfs"
    assert suggestion("zzzzz", ("bind", "cache")) == ""


def test_secret_flag_forms(tmp_path: Path) -> None:
    assert parse_secret("id=a,src=/f") == SecretSource("a", path="/f")
    assert parse_secret("id=a,source=/f,type=file") == SecretSource("a", path="/f")
    assert parse_secret("id=a,env=VAR") == SecretSource("a", env="VAR")
    assert parse_secret("id=a,type=env,src=VAR") == SecretSource("a", env="VAR")
    assert parse_secret("id=a") == SecretSource("a")
    for text, message in (
        ("src=/f", "secret missing ID"),
        ("id=a,type=vault", 'unsupported secret type "vault"'),
        ("id=a,colour=red", "unexpected key 'colour'"),
        ("id=a,src", "must be a key=value pair"),
    ):
        with pytest.raises(SessionError, match=message):
            parse_secret(text)
    value = tmp_path / "value"
    value.write_bytes(b"file-value")
    store = SecretStore(
        [
            SecretSource("f", path=str(value)),
            SecretSource("e", env="VAR"),
            SecretSource("VAR"),
            SecretSource("u", env="UNSET"),
        ],
        environ={"VAR": "env-value"},
    )
    assert (store.get("f"), store.get("e"), store.get("VAR"), store.get("u"), store.get("none")) == (
        b"file-value",
        b"env-value",
        b"env-value",
        b"",
        None,
    )
    with pytest.raises(SessionError, match=f"failed to stat {tmp_path}/missing: no such file or directory"):
        SecretStore([SecretSource("m", path=str(tmp_path / "missing"))])
    big = tmp_path / "big"
    big.write_bytes(b"x" * (500 * 1024 + 1))
    with pytest.raises(SessionError, match="secret b too big"):
        SecretStore([SecretSource("b", path=str(big))])


def test_ssh_flag_forms(tmp_path: Path) -> None:
    assert parse_ssh("default") == SshSource("default", ())
    assert parse_ssh("gh=/a,/b") == SshSource("gh", ("/a", "/b"))
    assert parse_ssh("=/sock") == SshSource("default", ("/sock",))
    with pytest.raises(SessionError, match='duplicate agent ID "default"'):
        SshAgents([SshSource(), SshSource()])
    with pytest.raises(SessionError, match="SSH_AUTH_SOCK is not set"), SshAgents([SshSource()], environ={}):
        pass
    with (
        pytest.raises(SessionError, match="no such file or directory"),
        SshAgents([SshSource("x", (str(tmp_path / "no"),))]),
    ):
        pass
