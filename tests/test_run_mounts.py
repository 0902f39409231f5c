"""RUN --mount end to end, with the real executor on the busybox base: bind, cache, tmpfs, secret and ssh mounts, what
reaches the layers and the cache keys, and how bad input is refused."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import BASE_IMAGE

from buildkit_py.builder import BuildResult, build
from buildkit_py.errors import StepError
from buildkit_py.image.stored import image_config
from buildkit_py.session import SshAgents, SshSource
from buildkit_py.solver.progress import StepOutput, StepStarted

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root for namespaces and overlayfs")


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def image_files(store: Any, image: str) -> dict[str, bytes | None]:
    """Every path of the image's layers, top layer last: the content of a regular file, None for anything else."""
    files: dict[str, bytes | None] = {}
    for diff_id in image_config(store, store.resolve(image)).diff_ids:
        with store.layers.open(diff_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                extracted = archive.extractfile(member) if member.isreg() else None
                files["/" + member.name.rstrip("/")] = extracted.read() if extracted is not None else None
    return files


def text(store: Any, image: str, path: str) -> str:
    content = image_files(store, image)[path]
    assert content is not None, f"{path} is not a file"
    return content.decode()


class Steps:
    """Progress of one build: the reason each started step gave, and everything the steps printed."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}
        self.output = bytearray()

    def __call__(self, event: object) -> None:
        if isinstance(event, StepStarted):
            self.reasons[event.name] = event.reason
        elif isinstance(event, StepOutput):
            self.output += event.data


def run_build(store: Any, context: Path, **options: Any) -> tuple[BuildResult, Steps]:
    steps = Steps()
    return build(context, store=store, progress=steps, **options), steps


def pybuild(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


# -- bind -------------------------------------------------------------------------------------------------------------


def test_bind_of_the_context_sees_its_selection_and_keys_on_it(base_store: Any, tmp_path: Path) -> None:
    run = (
        "RUN --mount=source=src,target=/src cat /src/a.txt > /seen; ls -a /src > /list; "
        "(touch /src/new 2>/dev/null && echo writable || echo read-only) >> /list"
    )
    context = write(
        tmp_path / "context",
        {
            "Dockerfile": f"FROM {BASE_IMAGE}\n{run}\n",
            "src/a.txt": "one\n",
            "src/b.txt": "b\n",
            "src/ignored.txt": "ignored\n",
            "other.txt": "other\n",
            ".dockerignore": "src/ignored.txt\n",
        },
    )
    tag = f"mounts/bind-{tmp_path.name}"
    first, _ = run_build(base_store, context, tags=[tag])
    assert len(first.stats.executed) == 1
    assert text(base_store, tag, "/seen") == "one\n"
    assert text(base_store, tag, "/list").split() == [".", "..", "a.txt", "b.txt", "read-only"]
    assert "/src" not in image_files(base_store, tag)  # the mount point is not left behind

    for change in ("other.txt", "src/ignored.txt"):
        (context / change).write_text("changed\n")
        again, _ = run_build(base_store, context)
        assert (len(again.stats.executed), len(again.stats.cached)) == (0, 1), change
    os.utime(context / "src" / "a.txt", (0, 0))
    assert len(run_build(base_store, context)[0].stats.executed) == 0

    (context / "src" / "b.txt").write_text("B\n")
    changed, steps = run_build(base_store, context)
    assert len(changed.stats.executed) == 1
    assert ["files changed: src/b.txt" in reason for reason in steps.reasons.values()] == [True]


def test_bind_rw_from_a_stage_and_an_image(base_store: Any, tmp_path: Path) -> None:
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE} AS build\n"
                "RUN mkdir -p /out/deep && echo built > /out/deep/artifact && ln -s deep/artifact /out/link\n"
                f"FROM {BASE_IMAGE}\n"
                "RUN --mount=from=build,source=/out,target=/in cat /in/deep/artifact /in/link > /copied\n"
                "RUN --mount=from=build,source=/out/link,target=/one.txt cat /one.txt > /file-bind\n"
                "RUN --mount=from=build,source=/out,target=/in,rw rm -r /in/deep && echo x > /in/new && ls /in > /rw\n"
                "RUN --mount=from=build,source=/out,target=/in ls /in > /after\n"
                f"RUN --mount=from={BASE_IMAGE},source=/bin,target=/other-bin ls /other-bin/busybox > /from-image\n"
            )
        },
    )
    tag = f"mounts/stage-{tmp_path.name}"
    run_build(base_store, context, tags=[tag])
    assert text(base_store, tag, "/copied") == "built\nbuilt\n"
    assert text(base_store, tag, "/file-bind") == "built\n"
    assert text(base_store, tag, "/rw").split() == ["link", "new"]
    assert text(base_store, tag, "/after").split() == ["deep", "link"]  # rw writes were thrown away
    assert text(base_store, tag, "/from-image") == "/other-bin/busybox\n"
    paths = image_files(base_store, tag)
    assert not any(path.startswith(("/in", "/one.txt", "/other-bin")) for path in paths)


def test_bind_from_a_named_context(base_store: Any, tmp_path: Path) -> None:
    """`RUN --mount=from=NAME` where NAME is a `--build-context NAME=DIR`: the folder (its own .dockerignore
    applied) is mounted, read-only unless rw, writes never reach it, and its content is part of the step's key."""
    shared = write(
        tmp_path / "shared",
        {
            "tool.sh": "echo from the named context\n",
            "data/a.txt": "a\n",
            "secret.txt": "no\n",
            ".dockerignore": "secret.txt\n",
        },
    )
    context = write(
        tmp_path / "main",
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                "RUN --mount=from=shared,target=/in sh /in/tool.sh > /ran && ls /in /in/data > /list && "
                "((touch /in/new 2>/dev/null && echo writable) || echo read-only) > /ro\n"
                "RUN --mount=from=shared,source=data,target=/d,rw echo x > /d/written && ls /d > /rw\n"
            )
        },
    )
    options = {"build_contexts": [f"shared={shared}"], "network": "none"}
    tag = f"mounts/named-{tmp_path.name}"
    first, _ = run_build(base_store, context, tags=[tag], **options)
    assert len(first.stats.executed) == 2
    assert text(base_store, tag, "/ran") == "from the named context\n"
    assert text(base_store, tag, "/list").split() == ["/in:", "data", "tool.sh", "/in/data:", "a.txt"]
    assert text(base_store, tag, "/ro") == "read-only\n"
    assert text(base_store, tag, "/rw").split() == ["a.txt", "written"]
    assert not (shared / "data" / "written").exists() and not (shared / "new").exists()
    assert not {path.split("/")[1] for path in image_files(base_store, tag)} & {"in", "d"}  # no mount point left

    (shared / "secret.txt").write_text("ignored change\n")
    again, _ = run_build(base_store, context, **options)
    assert len(again.stats.executed) == 0
    (shared / "tool.sh").write_text("echo changed\n")
    changed, _ = run_build(base_store, context, tags=[tag], **options)
    assert len(changed.stats.executed) == 2
    assert text(base_store, tag, "/ran") == "changed\n"


def test_bind_sources_that_do_not_exist_or_leave_the_context(base_store: Any, tmp_path: Path) -> None:
    for number, (mount, message) in enumerate(
        (
            ("source=missing,target=/m", "missing"),
            ("source=../outside,target=/m", "outside"),
            ("from=base,source=/nope,target=/m", "mount source /nope does not exist"),
        )
    ):
        context = write(
            tmp_path / str(number),
            {"Dockerfile": f"FROM {BASE_IMAGE} AS base\nFROM {BASE_IMAGE}\nRUN true\nRUN --mount={mount} true\n"},
        )
        with pytest.raises(StepError) as caught:
            build(context, store=base_store)
        assert str(caught.value).startswith("Dockerfile:4: RUN"), str(caught.value)
        assert message in str(caught.value)


# -- cache ------------------------------------------------------------------------------------------------------------


def test_cache_mount_persists_across_builds_is_listed_and_pruned(base_store: Any, tmp_path: Path) -> None:
    cache_id = f"counter-{uuid.uuid4().hex[:8]}"
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                f"RUN --mount=type=cache,target=/cache,id={cache_id} echo run >> /cache/log && wc -l < /cache/log > /count"
                "\n"
            )
        },
    )
    tag = f"mounts/cache-{tmp_path.name}"
    counts = []
    for _ in range(2):
        run_build(base_store, context, tags=[tag], no_cache=True)
        counts.append(text(base_store, tag, "/count").strip())
    assert counts == ["1", "2"]
    assert not any(path.startswith("/cache") for path in image_files(base_store, tag))
    # Never part of the key: an unchanged step is a hit whatever the cache holds.
    assert len(run_build(base_store, context)[0].stats.executed) == 0

    root = base_store.root
    listed = pybuild(root, "cache", "du")
    assert f"cache mount {cache_id}" in listed.stdout, listed.stdout
    assert "Build Cache" in pybuild(root, "system", "df").stdout
    pruned = pybuild(root, "cache", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert f"cache mount {cache_id}" not in pybuild(root, "cache", "du").stdout
    assert not any(record.id == cache_id for record in base_store.cache_mounts.records())

    run_build(base_store, context, tags=[tag], no_cache=True)
    assert text(base_store, tag, "/count").strip() == "1"


def test_cache_mount_owner_mode_seed_read_only_and_nested(base_store: Any, tmp_path: Path) -> None:
    unique = uuid.uuid4().hex[:8]
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE} AS seed\n"
                "RUN mkdir -p /s && echo seeded > /s/file\n"
                f"FROM {BASE_IMAGE}\n"
                f"RUN --mount=type=cache,target=/c,id=seed-{unique},from=seed,source=/s cat /c/file > /seeded\n"
                f"RUN --mount=type=cache,target=/o,id=own-{unique},mode=0750,uid=1234,gid=5678 "
                "stat -c '%a %u %g' /o > /owner\n"
                f"RUN --mount=type=cache,target=/r,id=own-{unique},ro (touch /r/x 2>/dev/null && echo rw || echo ro) > /ro\n"
                f"RUN --mount=type=cache,target=/n,id=nest-{unique} --mount=target=/n/ctx ls /n/ctx > /nested\n"
                f"RUN --mount=type=cache,target=/a,id=twice-{unique},sharing=locked "
                f"--mount=type=cache,target=/b,id=twice-{unique},sharing=locked touch /a/file && ls /b > /twice\n"
            ),
            "hello": "hi\n",
        },
    )
    tag = f"mounts/cache-attrs-{tmp_path.name}"
    run_build(base_store, context, tags=[tag])
    assert text(base_store, tag, "/seeded") == "seeded\n"
    assert text(base_store, tag, "/owner") == "750 1234 5678\n"
    assert text(base_store, tag, "/ro") == "ro\n"
    assert text(base_store, tag, "/nested").split() == ["Dockerfile", "hello"]
    assert text(base_store, tag, "/twice") == "file\n"  # one id twice in a step: one folder, held once


# -- tmpfs ------------------------------------------------------------------------------------------------------------


def test_tmpfs_mount_is_sized_and_never_in_the_layer(base_store: Any, tmp_path: Path) -> None:
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                "RUN --mount=type=tmpfs,target=/scratch,size=1m "
                "df -k /scratch | tail -1 | awk '{print $2}' > /size; echo data > /scratch/file; "
                "(dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null && echo fits || echo full) > /dd\n"
            )
        },
    )
    tag = f"mounts/tmpfs-{tmp_path.name}"
    run_build(base_store, context, tags=[tag])
    assert text(base_store, tag, "/size") == "1024\n"
    assert text(base_store, tag, "/dd") == "full\n"
    assert not any(path.startswith("/scratch") for path in image_files(base_store, tag))


# -- secrets ----------------------------------------------------------------------------------------------------------


def test_secrets_reach_the_step_and_nothing_else(base_store: Any, tmp_path: Path) -> None:
    file_value = f"pybuild-file-secret-{uuid.uuid4().hex}"
    env_value = f"pybuild-env-secret-{uuid.uuid4().hex}"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(file_value)
    context = write(
        tmp_path / "context",
        {
            "Dockerfile": (
                f"FROM {BASE_IMAGE}\n"
                "RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /file-digest; "
                "stat -c '%a %u %g' /run/secrets/tok > /file-mode; echo step-ran\n"
                "RUN --mount=type=secret,id=tok,target=/etc/tok,mode=0440,uid=1,gid=2 stat -c '%a %u %g' /etc/tok > /own\n"
                'RUN --mount=type=secret,id=envtok,env=TOKEN printf %s "$TOKEN" | sha256sum | cut -c1-64 > /env-digest; '
                "ls /run/secrets > /listing 2>&1 || true\n"
                "RUN --mount=type=secret,id=absent,env=ABSENT ls /run/secrets/absent > /absent 2>&1; "
                'echo "[$ABSENT]" >> /absent\n'
            )
        },
    )
    tag = f"mounts/secret-{tmp_path.name}"
    root = base_store.root
    built = pybuild(
        root,
        "build",
        "--progress=plain",
        "-t",
        tag,
        "--secret",
        f"id=tok,src={secret_file}",
        "--secret",
        "id=envtok,env=PYBUILD_TEST_SECRET",
        str(context),
        env={"PYBUILD_TEST_SECRET": env_value},
    )
    assert built.returncode == 0, built.stderr
    assert "step-ran" in built.stderr
    assert text(base_store, tag, "/file-digest").strip() == hashlib.sha256(file_value.encode()).hexdigest()
    assert text(base_store, tag, "/env-digest").strip() == hashlib.sha256(env_value.encode()).hexdigest()
    assert text(base_store, tag, "/file-mode") == "400 0 0\n"
    assert text(base_store, tag, "/own") == "440 1 2\n"
    assert "No such file" in text(base_store, tag, "/listing")  # an env-only secret is no file
    assert text(base_store, tag, "/absent").endswith("[]\n")  # an optional missing secret: nothing mounted, empty

    saved = tmp_path / "image.tar"
    assert pybuild(root, "save", "-o", str(saved), tag).returncode == 0
    secrets = (file_value.encode(), env_value.encode())
    # Closing any descriptor of meta.db drops every SQLite lock this process holds on it (POSIX locks are per
    # process), so this process's own connection is closed before the database files are read.
    base_store.close()
    leaks = [str(path) for path in [*_files_under(root), saved] if any(value in path.read_bytes() for value in secrets)]
    assert leaks == []
    assert not any(value in (built.stdout + built.stderr).encode() for value in secrets)


def _files_under(folder: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(folder):
        for name in names:
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                yield path


def test_a_required_secret_that_is_missing_fails_its_step(base_store: Any, tmp_path: Path) -> None:
    context = write(
        tmp_path, {"Dockerfile": f"FROM {BASE_IMAGE}\n\nRUN --mount=type=secret,id=api,required=true true\n"}
    )
    with pytest.raises(StepError) as caught:
        build(context, store=base_store)
    assert str(caught.value).startswith("Dockerfile:3: RUN --mount=type=secret,id=api,required=true true: ")
    assert caught.value.message == "secret api: not found"


# -- ssh --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssh_image(base_store: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The busybox base with the host's ssh-add and the libraries it loads."""
    ssh_add = shutil.which("ssh-add")
    if ssh_add is None:
        pytest.skip("ssh-add is not installed (openssh-client)")
    context = tmp_path_factory.mktemp("ssh-image")
    (context / "lib").mkdir()
    shutil.copy2(ssh_add, context / "ssh-add")
    libraries = subprocess.run(["ldd", ssh_add], capture_output=True, text=True, check=True).stdout
    for line in libraries.splitlines():
        path = next((word for word in line.split() if word.startswith("/")), None)
        if path is not None:
            shutil.copy2(path, context / "lib" / Path(path).name)
    (context / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nCOPY lib/ /lib64/\nCOPY lib/ /lib/x86_64-linux-gnu/\nCOPY ssh-add /usr/bin/ssh-add\n"
    )
    tag = "mounts/ssh-add:latest"
    build(context, tags=[tag], store=base_store)
    return tag


@pytest.fixture
def host_agent(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """A real ssh-agent holding a fresh key: (its socket, the key file, the key's fingerprint line)."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pybuild-test", "-f", str(key)], check=True)
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(key)], capture_output=True, text=True, check=True).stdout
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        while not socket_path.exists():
            assert agent.poll() is None, "ssh-agent exited"
            time.sleep(0.01)
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, stdin=subprocess.DEVNULL)
        yield socket_path, key, fingerprint.split()[1]
    finally:
        agent.terminate()
        agent.wait()


def _agent_keys(socket_path: Path) -> str:
    env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
    return subprocess.run(["ssh-add", "-l"], env=env, capture_output=True, text=True, check=False).stdout


def test_ssh_mount_talks_to_the_agent_read_only(
    base_store: Any, ssh_image: str, host_agent: tuple[Path, Path, str], tmp_path: Path, monkeypatch: Any
) -> None:
    socket_path, key, fingerprint = host_agent
    context = write(
        tmp_path,
        {
            "Dockerfile": (
                f"FROM {ssh_image}\n"
                "RUN --mount=type=ssh ssh-add -l > /keys; stat -c '%a %u' $SSH_AUTH_SOCK > /socket; "
                "ssh-add -D > /dev/null 2>&1; echo $? > /delete-status\n"
                "RUN --mount=type=ssh,id=keys,target=/agent,uid=1000,mode=0660 "
                "SSH_AUTH_SOCK=/agent ssh-add -l > /keys-from-file; stat -c '%a %u' /agent > /socket-own\n"
            )
        },
    )
    tag = f"mounts/ssh-{tmp_path.name}"
    monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
    run_build(base_store, context, tags=[tag], ssh=["default", f"keys={key}"])
    assert fingerprint in text(base_store, tag, "/keys")
    assert fingerprint in text(base_store, tag, "/keys-from-file")
    assert text(base_store, tag, "/socket") == "600 0\n"
    assert text(base_store, tag, "/socket-own") == "660 1000\n"
    assert text(base_store, tag, "/delete-status") != "0\n"  # the step may not remove the user's keys
    assert fingerprint in _agent_keys(socket_path)
    assert not any(path.startswith(("/run/buildkit", "/agent")) for path in image_files(base_store, tag))

    missing = write(
        tmp_path / "missing", {"Dockerfile": f"FROM {ssh_image}\nRUN --mount=type=ssh,id=other,required true\n"}
    )
    with pytest.raises(StepError, match='no SSH key "other" forwarded from the client'):
        build(missing, store=base_store, ssh=["default"])


def test_key_files_get_a_private_agent_that_stops_with_the_build(host_agent: tuple[Path, Path, str]) -> None:
    _, key, fingerprint = host_agent
    with SshAgents([SshSource("k", (str(key),))]) as agents:
        private = agents.socket("k")
        assert private is not None
        assert fingerprint in _agent_keys(Path(private))
    assert not os.path.exists(private)


# -- bad input --------------------------------------------------------------------------------------------------------


def _store_state(root: Path) -> tuple[Any, ...]:
    from buildkit_py.store import Store

    with Store(root) as store:
        return (
            sorted(str(record.key) for record in store.cache.records()),
            sorted(store.layers.sizes()),
            sorted((record.id, record.instance) for record in store.cache_mounts.records()),
            sorted(os.listdir(root / "cache-mounts")) if (root / "cache-mounts").exists() else [],
            sorted(name for name in os.listdir(root / "tmp") if "sandbox" not in name and "init" not in name),
        )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("RUN --mount=type=volume,target=/x true", 'unsupported mount type "volume"'),
        ("RUN --mount=type=cache,target=/x,colour=red true", "unexpected key 'colour' in 'colour=red'"),
        ("RUN --mount=type=cache,target=/x,uid=root true", "invalid value root for uid"),
        ("RUN --mount=type=tmpfs,target=/x,size=big true", "invalid value for size: big"),
        ("RUN --mount=type=secret,id=s,required true", "secret s: not found"),
        ("RUN --mount=type=ssh,required true", 'no SSH key "default" forwarded from the client'),
        ("RUN --mount=from=127.0.0.1:1/missing,target=/x true", "invalid from flag value 127.0.0.1:1/missing"),
        ("RUN --mount=source=nothere,target=/x true", "nothere"),
    ],
)
def test_bad_input_is_one_clear_message(base_store: Any, tmp_path: Path, line: str, message: str) -> None:
    root = base_store.root
    context = write(tmp_path, {"Dockerfile": f"FROM {BASE_IMAGE}\n# a comment\n{line}\n"})
    before = _store_state(root)
    result = pybuild(root, "build", str(context), env={"SSH_AUTH_SOCK": ""})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "Dockerfile:3" in result.stderr and message in result.stderr, result.stderr
    assert _store_state(root) == before


def test_a_missing_secret_file_is_refused_before_anything_runs(base_store: Any, tmp_path: Path) -> None:
    context = write(tmp_path, {"Dockerfile": f"FROM {BASE_IMAGE}\nRUN --mount=type=secret,id=s true\n"})
    result = pybuild(base_store.root, "build", "--secret", f"id=s,src={tmp_path}/nope", str(context))
    assert result.returncode == 1
    assert f"failed to stat {tmp_path}/nope: no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr
