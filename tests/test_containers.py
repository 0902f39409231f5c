"""Containers, daemonless: run/create/start/stop/rm/ps/logs/exec/commit/diff/cp/export/pause/volumes through the CLI,
each command a process of its own, on a store of the test's own with the busybox base built by pybuild."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from container_helpers import Pybuild, build_base, mounts_under, process_exists, unique, wait_until
from helpers import BASE_IMAGE

from buildkit_py.container.cgroups import freezer_cgroup, pid_namespace_members
from buildkit_py.container.detachkeys import parse_detach_keys

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, overlay)")


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pybuild]:
    root = tmp_path_factory.mktemp("containers-root")
    build_base(root, tmp_path_factory.mktemp("base"))
    pybuild = Pybuild(root)
    yield pybuild
    pybuild.remove_all()


def _record(pb: Pybuild, name: str) -> dict[str, object]:
    document = json.loads(pb.ok("container", "inspect", name))[0]
    assert isinstance(document, dict)
    return document


# -- run: output and exit codes ------------------------------------------------------------------------------------


def test_run_prints_output_and_returns_the_exit_code(pb: Pybuild) -> None:
    result = pb.run("run", "--rm", BASE_IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["true"], 0),
        (["no-such-command"], 127),
        (["/etc"], 126),
        (["sh", "-c", "sleep 30 & kill -9 $!; wait $!"], 137),
        (["sh", "-c", "sleep 30 & kill -TERM $!; wait $!"], 143),
    ],
)
def test_docker_exit_codes(pb: Pybuild, command: list[str], code: int) -> None:
    assert pb.run("run", "--rm", BASE_IMAGE, *command).returncode == code


def test_env_workdir_user_hostname_and_image_cmd(pb: Pybuild) -> None:
    out = pb.ok("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1000:1000", "--hostname", "box", BASE_IMAGE,
                "sh", "-c", 'echo "$A $(pwd) $(id -u):$(id -g) $(hostname) $HOME"')  # fmt: skip
    assert out == "1 /tmp 1000:1000 box /\n"
    env = pb.ok("run", "--rm", BASE_IMAGE, "env").splitlines()
    assert env[0].startswith("PATH=") and env[1].startswith("HOSTNAME=") and env[-1].startswith("HOME=")
    assert pb.run("run", "--rm", "-i", BASE_IMAGE, input=b"piped\n").stdout == ""  # CMD sh reads the script
    assert pb.run("run", "--rm", "-i", BASE_IMAGE, "cat", input=b"piped\n").stdout == "piped\n"


def test_entrypoint_override_and_init(pb: Pybuild) -> None:
    assert pb.ok("run", "--rm", "--entrypoint", "echo", BASE_IMAGE, "a", "b") == "a b\n"
    out = pb.ok("run", "--rm", "--init", BASE_IMAGE, "sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '")
    pid, init_cmdline = out.splitlines()
    assert pid != "1" and "sh" not in init_cmdline.split()[:1]


def test_hardening_is_the_sandbox_s(pb: Pybuild) -> None:
    out = pb.ok("run", "--rm", BASE_IMAGE, "sh", "-c",
                "grep CapBnd /proc/self/status; grep Seccomp: /proc/self/status; ls /proc/self/fd | wc -l; "
                "cat /proc/kcore | wc -c")  # fmt: skip
    lines = out.split("\n")
    assert lines[0].split()[1] == "00000000a80425fb"  # Docker's default capability set
    assert lines[1].split()[1] == "2"
    assert int(lines[2]) <= 4  # 0, 1, 2 and the one ls opens
    assert lines[3] == "0"


def test_read_only_rootfs_and_tmpfs(pb: Pybuild) -> None:
    result = pb.run("run", "--rm", "--read-only", "--tmpfs", "/scratch", BASE_IMAGE, "sh", "-c",
                    "echo x > /scratch/ok && echo x > /nope")  # fmt: skip
    assert result.returncode != 0 and "Read-only file system" in result.stderr


def test_network_modes(pb: Pybuild) -> None:
    assert "tap0" in pb.ok("run", "--rm", BASE_IMAGE, "cat", "/proc/net/dev")
    assert "tap0" not in pb.ok("run", "--rm", "--network", "none", BASE_IMAGE, "cat", "/proc/net/dev")
    assert pb.ok("run", "--rm", "--network", "host", BASE_IMAGE, "hostname").strip() == os.uname().nodename


def test_published_port_reaches_the_container(pb: Pybuild) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = unique()
    pb.ok("run", "-d", "--name", name, "-p", f"{port}:80", BASE_IMAGE, "sh", "-c",
          "echo served > /index.html; exec httpd -f -p 80 -h /")  # fmt: skip

    assert wait_until(lambda: b"served" in _fetch(port))
    assert f"0.0.0.0:{port}->80/tcp" in pb.ok("ps", "--filter", f"name={name}")
    pb.ok("rm", "-f", name)


def _fetch(port: int) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            return client.makefile("rb").read()
    except OSError:
        return b""


def test_random_host_ports_port_and_publish_all(pb: Pybuild) -> None:
    serve = "echo served > /index.html; httpd -p 8080 -h /; exec httpd -f -p 80 -h /"
    exposing, tag = unique(), f"exposing/{unique()}:1"
    pb.ok("create", "--name", exposing, BASE_IMAGE, "true")
    pb.ok("commit", "-c", "EXPOSE 8080 53/udp", exposing, tag)
    name = unique()
    pb.ok("run", "-d", "--name", name, "-p", "80", "-p", "127.0.0.1::81/udp", "-P", tag, "sh", "-c", serve)
    mappings = dict(line.split(" -> ") for line in pb.ok("port", name).splitlines())
    assert set(mappings) == {"80/tcp", "81/udp", "8080/tcp", "53/udp"}
    assert mappings["81/udp"].startswith("127.0.0.1:") and mappings["80/tcp"].startswith("0.0.0.0:")
    assert pb.ok("port", name, "80") == mappings["80/tcp"] + "\n"
    for private in ("80/tcp", "8080/tcp"):
        assert wait_until(lambda private=private: b"served" in _fetch(int(mappings[private].rpartition(":")[2])))
    assert pb.run("port", name, "82").returncode == 1
    record = _record(pb, name)
    assert record["HostConfig"]["PortBindings"]["80/tcp"] == [{"HostIp": "", "HostPort": ""}]  # type: ignore[index]
    given = record["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]  # type: ignore[index]
    assert f"0.0.0.0:{given}" == mappings["80/tcp"]
    pb.ok("stop", "-t", "0", name)
    assert pb.ok("port", name) == "" and pb.ok("ps", "-a", "--filter", f"name={name}", "--format", "{{.Ports}}") == "\n"
    pb.ok("rm", name, exposing)
    pb.ok("rmi", tag)


# -- lifecycle -----------------------------------------------------------------------------------------------------


def test_create_start_stop_restart_keep_the_read_write_layer(pb: Pybuild) -> None:
    name = unique()
    container_id = pb.ok("create", "--name", name, BASE_IMAGE, "sh", "-c", "echo run >> /count; cat /count").strip()
    assert _record(pb, name)["State"]["Status"] == "created"  # type: ignore[index]
    assert pb.ok("start", "-a", name) == "run\n"
    assert pb.ok("start", "-a", name) == "run\nrun\n"
    assert pb.ok("wait", name) == "0\n"
    assert pb.ok("logs", name) == "run\nrun\nrun\n"
    assert pb.ok("ps", "-aq", "--no-trunc", "--filter", f"name={name}").strip() == container_id
    pb.ok("rm", name)
    assert not (pb.root / "containers" / container_id).exists()
    assert pb.run("logs", name).returncode == 1


def test_ps_columns_and_filters(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, "-l", "team=a", BASE_IMAGE, "sleep", "30")
    table = pb.ok("ps").splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    row = next(line for line in table if line.endswith(name))
    assert '"sleep 30"' in row and "Up " in row and BASE_IMAGE in row
    assert pb.ok("ps", "--filter", "label=team=a", "--format", "{{.Names}}").split() == [name]
    assert pb.ok("ps", "--filter", "label=team=b", "-q") == ""
    pb.ok("stop", "-t", "0", name)
    assert pb.ok("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").startswith("Exited (137)")
    assert pb.ok("ps", "--filter", f"name={name}", "-q") == ""
    pb.ok("rm", name)


def test_stop_sends_the_stop_signal_then_kills_after_the_timeout(pb: Pybuild) -> None:
    graceful, stubborn = unique(), unique()
    pb.ok("run", "-d", "--name", graceful, "--init", BASE_IMAGE, "sleep", "60")
    pb.ok("stop", graceful)
    assert _record(pb, graceful)["State"]["ExitCode"] == 143  # type: ignore[index]
    pb.ok("run", "-d", "--name", stubborn, BASE_IMAGE, "sh", "-c", "trap '' TERM; while true; do sleep 1; done")
    pb.ok("stop", "-t", "1", stubborn)
    assert _record(pb, stubborn)["State"]["ExitCode"] == 137  # type: ignore[index]
    pb.ok("rm", graceful, stubborn)


def test_kill_with_a_signal_and_restart(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, "--init", BASE_IMAGE, "sleep", "60")
    pb.ok("kill", "-s", "USR1", name)
    assert pb.ok("wait", name) == "138\n"
    pb.ok("restart", name)
    assert _record(pb, name)["State"]["Status"] == "running"  # type: ignore[index]
    pb.ok("rm", "-f", name)


def test_logs_tail_timestamps_since_and_follow(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "--name", name, BASE_IMAGE, "sh", "-c", "echo one; echo two >&2; echo three")
    result = pb.run("logs", name)
    assert (result.stdout, result.stderr) == ("one\nthree\n", "two\n")
    # stdout and stderr are two pipes, so which of "three" and "two" was logged last is up to the scheduler
    last = json.loads(next((pb.root / "containers").glob("*/*-json.log")).read_text().splitlines()[-1])["log"]
    tail = pb.run("logs", "--tail", "1", name)
    assert tail.stdout + tail.stderr == last
    stamped = pb.run("logs", "-t", "--tail", "1", name)
    stamped_line = stamped.stdout + stamped.stderr
    assert stamped_line.endswith(f"Z {last}") and len(stamped_line.split()[0]) == 30
    assert pb.ok("logs", "--since", "1h", name) == "one\nthree\n"
    assert pb.ok("logs", "--until", "2000-01-01T00:00:00Z", name) == ""
    log = next((pb.root / "containers").glob("*/*-json.log"))
    entry = json.loads(log.read_text().splitlines()[0])
    assert set(entry) == {"log", "stream", "time"}
    pb.ok("rm", name)


def test_exec_joins_the_container(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, BASE_IMAGE, "sh", "-c", "echo made > /made; sleep 60")
    assert wait_until(lambda: pb.run("exec", name, "cat", "/made").stdout == "made\n")
    out = pb.ok("exec", "-e", "X=y", "-w", "/tmp", "-u", "1000", name, "sh", "-c",
                'echo "$X $(pwd) $(id -u) $(cat /proc/1/cmdline | tr "\\0" " ")"; grep CapBnd /proc/self/status')  # fmt: skip
    first, caps = out.splitlines()
    assert first.startswith("y /tmp 1000 ") and "sleep 60" in first
    assert caps.split()[1] == "00000000a80425fb"
    assert pb.run("exec", "-i", name, "cat", input=b"in\n").stdout == "in\n"
    assert pb.run("exec", name, "sh", "-c", "exit 5").returncode == 5
    assert pb.run("exec", name, "no-such-command").returncode == 127
    pb.ok("exec", "-d", name, "sh", "-c", "echo detached > /detached")
    assert wait_until(lambda: pb.run("exec", name, "cat", "/detached").stdout == "detached\n")
    pb.ok("rm", "-f", name)


# -- volumes and binds -------------------------------------------------------------------------------------------


def test_bind_mounts_and_named_volumes(pb: Pybuild, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from host\n")
    volume = unique("vol")
    out = pb.ok("run", "--rm", "-v", f"{host}:/h", "-v", f"{volume}:/etc", BASE_IMAGE, "sh", "-c",
                "cat /h/in; echo back > /h/out; ls /etc; echo kept > /etc/kept")  # fmt: skip
    assert out.startswith("from host\n") and "hostname" in out  # a new volume is filled from the image
    assert (host / "out").read_text() == "back\n"
    assert pb.ok("run", "--rm", "-v", f"{volume}:/data", BASE_IMAGE, "cat", "/data/kept") == "kept\n"
    assert pb.run("run", "--rm", "-v", f"{host}:/h:ro", BASE_IMAGE, "touch", "/h/x").returncode == 1
    assert volume in pb.ok("volume", "ls", "-q").split()
    pb.ok("volume", "rm", volume)
    assert volume not in pb.ok("volume", "ls", "-q").split()


def test_volume_in_use_is_kept_and_anonymous_volumes_go_with_rm_v(pb: Pybuild) -> None:
    name, volume = unique(), unique("vol")
    pb.ok("create", "--name", name, "-v", f"{volume}:/named", "-v", "/anonymous", BASE_IMAGE, "true")
    mounts = _record(pb, name)["Mounts"]
    anonymous = next(m["Name"] for m in mounts if m["Destination"] == "/anonymous")  # type: ignore[union-attr,index]
    assert "in use" in pb.run("volume", "rm", volume).stderr
    pb.ok("rm", "-v", name)
    volumes = pb.ok("volume", "ls", "-q").split()
    assert volume in volumes and anonymous not in volumes
    pb.ok("volume", "rm", volume)


# -- commit, diff, cp, export ------------------------------------------------------------------------------------


def test_commit_diff_cp_export(pb: Pybuild, tmp_path: Path) -> None:
    name, tag = unique(), f"committed/{unique()}:1"
    pb.ok("run", "--name", name, BASE_IMAGE, "sh", "-c", "mkdir /new; echo hi > /new/f; rm /bin/vi; touch /bin/x")
    assert pb.ok("diff", name).splitlines() == ["C /bin", "D /bin/vi", "A /bin/x", "A /new", "A /new/f"]
    image_id = pb.ok("commit", "-a", "Jane <jane@example.com>", "-m", "a message", "-c", 'CMD ["cat", "/new/f"]',
                     name, tag).strip()  # fmt: skip
    assert image_id.startswith("sha256:")
    assert pb.ok("run", "--rm", tag) == "hi\n"
    assert pb.run("run", "--rm", tag, "ls", "/bin/vi").returncode == 1
    history = pb.ok("history", "--no-trunc", tag)
    assert "a message" in history
    config = json.loads(pb.ok("inspect", tag))[0]
    assert config["Author"] == "Jane <jane@example.com>" and config["Config"]["Cmd"] == ["cat", "/new/f"]
    _assert_analyze_shows_the_commit(pb, tag, tmp_path)

    pb.ok("cp", f"{name}:/new", str(tmp_path))
    assert (tmp_path / "new" / "f").read_text() == "hi\n"
    (tmp_path / "up").write_text("uploaded\n")
    pb.ok("cp", str(tmp_path / "up"), f"{name}:/new/")
    assert pb.run("start", "-a", name).stdout == ""  # reruns on the same read-write layer: the upload is kept
    exported = tmp_path / "export.tar"
    pb.ok("export", "-o", str(exported), name)
    with tarfile.open(exported) as archive:
        names = set(archive.getnames())
        member = archive.extractfile("new/up")
        assert member is not None and member.read() == b"uploaded\n"
    assert {"new/f", "bin/x", ".dockerenv", "etc/hostname"} <= names and "bin/vi" not in names
    pb.ok("rm", name)


def _assert_analyze_shows_the_commit(pb: Pybuild, tag: str, tmp_path: Path) -> None:
    """The committed layer is the last: analyze names its author and message where a build layer has its step."""
    report = pb.ok("analyze", "--html", str(tmp_path / "report.html"), tag)
    committed = report.split("Committed layers:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    layers = json.loads(pb.ok("analyze", "--format", "json", "--no-file-list", tag))["layer"]
    last = len(layers) - 1
    assert committed[:2] == [f"  {last}. author:  Jane <jane@example.com>", "     message: a message"]
    assert committed[2].startswith("     command: sh -c ") and len(committed) == 3
    assert (layers[-1]["author"], layers[-1]["message"], layers[-1]["dockerfileLine"]) == (
        "Jane <jane@example.com>",
        "a message",
        "",
    )
    assert all((layer["author"], layer["message"]) == ("", "") for layer in layers[:-1])
    assert any(layer["dockerfileLine"] for layer in layers[:-1])  # the base's build layers keep their lines
    assert f"#{last} &quot;a message&quot; by Jane &lt;jane@example.com&gt;" in (tmp_path / "report.html").read_text()


def test_analyze_a_commit_on_a_built_image_keeps_its_base_and_lines(pb: Pybuild, tmp_path: Path) -> None:
    built, committed, name = f"built/{unique()}:1", f"committed/{unique()}:1", unique()
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo built > /built\n")
    pb.ok("build", "-q", "-t", built, str(tmp_path))
    pb.ok("run", "--name", name, built, "sh", "-c", "echo changed > /changed")
    pb.ok("commit", "-m", "on top", name, committed)
    before = json.loads(pb.ok("analyze", "--format", "json", "--no-file-list", built))
    after = json.loads(pb.ok("analyze", "--format", "json", "--no-file-list", committed))
    assert before["pybuild"]["baseLayers"] >= 1
    assert after["pybuild"]["baseLayers"] == before["pybuild"]["baseLayers"]
    assert [layer["dockerfileLine"] for layer in after["layer"]] == [
        *(layer["dockerfileLine"] for layer in before["layer"]),
        "",
    ]
    assert (after["layer"][-1]["author"], after["layer"][-1]["message"]) == ("", "on top")
    pb.ok("rm", name)
    pb.ok("rmi", committed, built)


def test_cp_refuses_to_follow_a_container_s_symlink_out(pb: Pybuild, tmp_path: Path) -> None:
    name = unique()
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    pb.ok("run", "--name", name, BASE_IMAGE, "sh", "-c", f"ln -s {tmp_path} /escape; ln -s / /rootlink")
    out = tmp_path / "out"
    out.mkdir()
    result = pb.run("cp", f"{name}:/escape/secret", str(out))
    assert result.returncode == 1 and not (out / "secret").exists()
    pb.ok("cp", str(tmp_path / "secret"), f"{name}:/rootlink/")
    assert secret.read_text() == "host secret\n"
    pb.ok("rm", name)


def test_cp_tar_streams_never_land_outside_the_container(pb: Pybuild, tmp_path: Path) -> None:
    """A hostile tar on stdin, into a running container whose folder holds symlinks out: every entry lands inside
    its root (names cleaned inside the folder, symlinks resolved inside the root), nothing on the host."""
    name = unique()
    outside = tmp_path / "outside"
    outside.mkdir()
    pb.ok("run", "-d", "--name", name, BASE_IMAGE, "sh", "-c",
          f"mkdir -p /dst; ln -s {outside} /dst/hostlink; ln -s ../../../../.. /dst/up; sleep 300")  # fmt: skip
    upload = io.BytesIO()
    with tarfile.open(fileobj=upload, mode="w") as archive:
        for entry, data in (("../../../one", b"1"), ("/abs/two", b"2"), ("hostlink/three", b"3"), ("up/four", b"4")):
            member = tarfile.TarInfo(entry)
            member.size, member.uid, member.gid = len(data), 1234, 4321
            archive.addfile(member, io.BytesIO(data))
        escape = tarfile.TarInfo("five")
        escape.type, escape.linkname = tarfile.LNKTYPE, "../../../../../etc/passwd"
        archive.addfile(escape)
    result = subprocess.run(
        pb.argv("cp", "-", f"{name}:/dst"), input=upload.getvalue(), capture_output=True, check=False
    )
    assert result.returncode == 1 and b"Error processing tar file" in result.stderr  # the link's target is missing
    seen = pb.ok("exec", name, "sh", "-c", f"cat /dst/one /dst/abs/two {outside}/three /four; stat -c %u:%g /dst/one")
    assert seen == "12341234:4321\n"
    assert list(outside.iterdir()) == [] and not Path("/four").exists() and not Path("/abs").exists()

    out = tmp_path / "out"
    out.mkdir()
    pb.ok("cp", f"{name}:/dst/one", str(out / "plain"))
    pb.ok("cp", "-a", f"{name}:/dst/one", str(out / "archived"))
    assert (out / "plain").stat().st_uid == os.getuid()
    assert ((out / "archived").stat().st_uid, (out / "archived").stat().st_gid) == (1234, 4321)  # Docker's docs
    followed = subprocess.run(pb.argv("cp", "-L", f"{name}:/dst/up", "-"), capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(followed)) as archive:  # the link climbs no higher than the root
        assert "/bin/busybox" in archive.getnames()
    pb.ok("rm", "-f", name)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [(None, b"\x10\x11"), ("ctrl-a,x", b"\x01x"), ("ctrl-@,ctrl-[,ctrl-_,DEL", b"\x00\x1b\x1f\x7f"), ("Q", b"Q")],
)
def test_detach_keys_in_docker_syntax(keys: str | None, expected: bytes) -> None:
    assert parse_detach_keys(keys) == expected


def test_detach_keys_without_a_terminal(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "-d", "-i", "--name", name, BASE_IMAGE, "cat")
    attached = subprocess.run(pb.argv("attach", "--detach-keys", "q", name), input=b"hello\nq", capture_output=True,
                              timeout=60, check=False)  # fmt: skip
    assert attached.returncode == 0
    assert wait_until(lambda: pb.ok("logs", name) == "hello\n")  # what came before the keys reached it
    assert pb.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").startswith("Up")
    for command in (["attach", "--detach-keys", "ctrl-1", name], ["exec", "--detach-keys", "ctrlq", name, "true"]):
        result = pb.run(*command)
        assert result.returncode == 1 and "Invalid escape keys" in result.stderr
    result = pb.run("run", "--rm", "--detach-keys", "nope", BASE_IMAGE, "true")
    assert result.returncode == 125 and "Invalid escape keys (nope) provided" in result.stderr
    pb.ok("rm", "-f", name)


def test_pause_and_unpause(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, BASE_IMAGE, "sh", "-c",
          "sleep 300 & while true; do date +%s%N > /tick; sleep 0.05; done")  # fmt: skip
    pb.ok("exec", "-d", name, "sleep", "301")
    init_pid = int(_record(pb, name)["State"]["Pid"])  # type: ignore[index,call-overload]
    assert wait_until(lambda: len(pid_namespace_members(init_pid)) >= 3)
    pb.ok("pause", name)
    assert pb.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").strip().endswith("(Paused)")
    cgroup = freezer_cgroup(_record(pb, name)["Id"])  # type: ignore[arg-type]
    assert cgroup is not None and set(pid_namespace_members(init_pid)) <= set(cgroup.pids())  # all of them frozen
    assert "is paused" in pb.run("exec", name, "true").stderr
    pb.ok("unpause", name)
    assert pb.ok("exec", name, "true") == ""
    assert "sh -c" in pb.ok("top", name)
    pb.ok("rm", "-f", name)


# -- daemonless, reliability -------------------------------------------------------------------------------------


def test_container_outlives_the_command_that_started_it(pb: Pybuild) -> None:
    name = unique()
    starter = pb.popen(
        "run", "--name", name, BASE_IMAGE, "sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done"
    )
    assert wait_until(lambda: "line 1" in pb.run("logs", name).stdout)
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    seen = pb.run("logs", name).stdout.count("line")
    follower = pb.popen("logs", "-f", name)
    assert wait_until(lambda: pb.run("logs", name).stdout.count("line") >= seen + 2)
    pb.ok("stop", "-t", "1", name)
    out, _ = follower.communicate(timeout=60)
    assert out.decode().count("line") >= seen + 2
    assert _record(pb, name)["State"]["Status"] == "exited"  # type: ignore[index]
    pb.ok("rm", name)


def test_rm_force_leaves_no_mount_and_no_process(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, "--tmpfs", "/t", BASE_IMAGE, "sh", "-c", "sleep 100 & sleep 100")
    record = _record(pb, name)
    container_id = str(record["Id"])
    assert process_exists(int(record["State"]["Pid"]))  # type: ignore[index]
    from buildkit_py.store import Store

    with Store(pb.root) as store:
        row = store.containers.get(container_id)
        assert row is not None
        recorded = [row.pid, row.monitor_pid]
    pb.ok("rm", "-f", name)
    assert wait_until(lambda: not any(process_exists(p) for p in recorded))
    assert mounts_under(pb.root) == []
    assert not (pb.root / "containers" / container_id).exists()


def test_a_killed_monitor_is_noticed(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, BASE_IMAGE, "sleep", "100")
    from buildkit_py.store import Store

    with Store(pb.root) as store:
        row = store.containers.find(name)
        monitor, init = row.monitor_pid, row.pid
    os.kill(monitor, signal.SIGKILL)
    assert wait_until(lambda: not process_exists(init))
    assert pb.ok("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").startswith("Exited (137)")
    assert pb.run("exec", name, "true").returncode == 1
    pb.ok("rm", name)


def test_twenty_containers_started_at_once(pb: Pybuild) -> None:
    names = [unique() for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda n: pb.run("run", "--name", n, BASE_IMAGE, "echo", n), names))
    assert [r.returncode for r in results] == [0] * 20
    assert [r.stdout for r in results] == [n + "\n" for n in names]
    listed = pb.ok("ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines()
    for n in names:
        assert any(line.startswith(n + " Exited (0)") for line in listed)
    pb.ok("rm", *names)


# -- bad input -----------------------------------------------------------------------------------------------------


def _containers(pb: Pybuild) -> list[str]:
    return pb.ok("ps", "-aq", "--no-trunc").split()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-image:1"], "No such image"),
        (["-v", "a:b:c:d", BASE_IMAGE], "invalid volume specification"),
        (["-v", "rel:relative", BASE_IMAGE], "must be absolute"),
        (["--mount", "type=bind,source=/no/such/path,target=/x", BASE_IMAGE], "bind source path does not exist"),
        (["--stop-signal", "NOPE", BASE_IMAGE], "Invalid signal: NOPE"),
        (["-p", "99999:80", BASE_IMAGE], "Invalid hostPort"),
        (["--name", "bad name!", BASE_IMAGE], "Invalid container name"),
    ],
)
def test_bad_run_input_is_refused_with_125_and_leaves_nothing(pb: Pybuild, args: list[str], message: str) -> None:
    before = _containers(pb)
    volumes = pb.ok("volume", "ls", "-q")
    result = pb.run("run", "--rm", *args, "true")
    assert result.returncode == 125 and message in result.stderr and "Traceback" not in result.stderr
    assert _containers(pb) == before and pb.ok("volume", "ls", "-q") == volumes


def test_name_taken_exec_stopped_commit_missing_bad_signal(pb: Pybuild) -> None:
    name = unique()
    pb.ok("create", "--name", name, BASE_IMAGE, "true")
    before = _containers(pb)
    taken = pb.run("run", "--name", name, BASE_IMAGE, "true")
    assert taken.returncode == 125 and "is already in use" in taken.stderr
    assert _containers(pb) == before
    stopped = pb.run("exec", name, "true")
    assert stopped.returncode == 1 and "is not running" in stopped.stderr
    missing = pb.run("commit", unique())
    assert missing.returncode == 1 and "No such container" in missing.stderr
    pb.ok("start", name)
    bad = pb.run("kill", "-s", "SIGNOPE", name)
    assert bad.returncode == 1 and "Invalid signal: SIGNOPE" in bad.stderr and "Traceback" not in bad.stderr
    pb.ok("rm", name)


def test_rmi_refuses_an_image_a_container_uses(pb: Pybuild) -> None:
    tag = f"used/{unique()}:1"
    pb.ok("tag", BASE_IMAGE, tag)
    name = unique()
    pb.ok("create", "--name", name, tag, "true")
    untagged = pb.run("rmi", tag)  # the image has two tags: untagging one of them is allowed, as in Docker
    assert untagged.returncode == 0 and "Untagged" in untagged.stdout
    only = f"only/{unique()}:1"
    image_id = pb.ok("commit", name, only).strip()
    user = unique()
    pb.ok("create", "--name", user, only, "true")
    refused = pb.run("rmi", only)
    assert refused.returncode == 1 and "is using its referenced image" in refused.stderr
    assert image_id.removeprefix("sha256:")[:12] in pb.ok("inspect", "-f", "{{.Id}}", only)
    assert "Untagged" in pb.ok("rmi", "-f", only)
    pb.ok("rm", user, name)


# -- run options: --env-file, --stop-signal/--stop-timeout, STOPSIGNAL, --mount, udp ports ---------------------------


def test_env_file_is_read_as_docker_reads_it(pb: Pybuild, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text(
        "\ufeffFIRST=bom stripped\n# a comment\n   # an indented comment\n\n"
        "PLAIN=value with spaces = and equals \n  INDENTED=kept\nFROM_CALLER\nNOT_IN_CALLER\nEMPTY=\nOVERRIDDEN=file\n"
    )
    caller = {key: value for key, value in os.environ.items() if key != "NOT_IN_CALLER"}
    caller["FROM_CALLER"] = "caller's value"
    result = pb.run("run", "--rm", "--env-file", str(env_file), "-e", "OVERRIDDEN=flag", BASE_IMAGE, "env", env=caller)
    assert result.returncode == 0, result.stderr
    variables = dict(line.partition("=")[::2] for line in result.stdout.splitlines())
    assert {
        key: variables.get(key) for key in ("FIRST", "PLAIN", "INDENTED", "FROM_CALLER", "EMPTY", "OVERRIDDEN")
    } == {
        "FIRST": "bom stripped",
        "PLAIN": "value with spaces = and equals ",
        "INDENTED": "kept",
        "FROM_CALLER": "caller's value",
        "EMPTY": "",
        "OVERRIDDEN": "flag",
    }
    assert "NOT_IN_CALLER" not in variables and not any(key.lstrip().startswith("#") for key in variables)

    bad = tmp_path / "bad"
    bad.write_text("BAD NAME=x\n")
    refused = pb.run("run", "--rm", "--env-file", str(bad), BASE_IMAGE, "true")
    assert refused.returncode == 125 and "variable 'BAD NAME' contains whitespaces" in refused.stderr
    missing = pb.run("run", "--rm", "--env-file", str(tmp_path / "missing"), BASE_IMAGE, "true")
    assert missing.returncode == 125 and "no such file or directory" in missing.stderr


def _run_ready(pb: Pybuild, *args: str) -> str:
    """A detached container whose script has set its traps once it has logged "ready"."""
    name = unique()
    pb.ok("run", "-d", "--name", name, *args)
    assert wait_until(lambda: "ready" in pb.ok("logs", name))
    return name


def _exit_code(pb: Pybuild, name: str) -> object:
    return _record(pb, name)["State"]["ExitCode"]  # type: ignore[index]


def test_stop_signal_and_stop_timeout_flags(pb: Pybuild) -> None:
    trapping = _run_ready(pb, "--stop-signal", "USR1", BASE_IMAGE, "sh", "-c",
                          "trap 'exit 7' USR1; echo ready; while true; do sleep 0.1; done")  # fmt: skip
    assert _record(pb, trapping)["Config"]["StopSignal"] == "SIGUSR1"  # type: ignore[index]
    pb.ok("stop", trapping)
    assert _exit_code(pb, trapping) == 7

    ignoring = _run_ready(pb, "--stop-timeout", "1", BASE_IMAGE, "sh", "-c",
                          "trap '' TERM; echo ready; while true; do sleep 0.1; done")  # fmt: skip
    assert _record(pb, ignoring)["Config"]["StopTimeout"] == 1  # type: ignore[index]
    pb.ok("stop", ignoring)  # no -t: the container's own timeout, then SIGKILL
    assert _exit_code(pb, ignoring) == 137

    # -1 waits as long as the process takes (Docker: no SIGKILL), so a slow handler's own exit code is recorded
    patient = _run_ready(pb, "--stop-timeout", "-1", BASE_IMAGE, "sh", "-c",
                         "trap 'sleep 2; exit 8' TERM; echo ready; while true; do sleep 0.1; done")  # fmt: skip
    pb.ok("stop", patient)
    assert _exit_code(pb, patient) == 8
    assert pb.run("run", "--rm", "--stop-signal", "NOPE", BASE_IMAGE, "true").returncode == 125
    pb.ok("rm", trapping, ignoring, patient)


def test_the_image_s_stopsignal_is_what_stop_sends(pb: Pybuild, tmp_path: Path) -> None:
    context, tag = tmp_path / "ctx", f"stopsignal/{unique()}:1"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nSTOPSIGNAL SIGUSR2\n")
    pb.ok("build", "-q", "-t", tag, str(context))
    script = "trap 'exit 9' USR2; trap 'exit 7' USR1; echo ready; while true; do sleep 0.1; done"
    from_image = _run_ready(pb, tag, "sh", "-c", script)
    assert _record(pb, from_image)["Config"]["StopSignal"] == "SIGUSR2"  # type: ignore[index]
    pb.ok("stop", from_image)
    assert _exit_code(pb, from_image) == 9
    overridden = _run_ready(pb, "--stop-signal", "SIGUSR1", tag, "sh", "-c", script)
    pb.ok("stop", overridden)
    assert _exit_code(pb, overridden) == 7
    pb.ok("rm", from_image, overridden)
    pb.ok("rmi", tag)


def test_mount_bind_volume_and_tmpfs(pb: Pybuild, tmp_path: Path) -> None:
    writable, readable = tmp_path / "rw", tmp_path / "ro"
    writable.mkdir()
    readable.mkdir()
    (writable / "in").write_text("from host\n")
    volume = unique("vol")
    out = pb.ok(
        "run", "--rm",
        "--mount", f"type=bind,source={writable},target=/h",
        "--mount", f"type=bind,src={readable},dst=/r,readonly",
        "--mount", f"type=volume,source={volume},target=/etc",
        "--mount", "type=volume,target=/anonymous",
        "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=700",
        BASE_IMAGE, "sh", "-c",
        "cat /h/in; echo back > /h/out; touch /r/x 2>/dev/null || echo ro-refused; ls /etc | grep -c hostname; "
        "echo kept > /etc/kept; grep ' /t ' /proc/mounts; stat -c %a /t; grep -c ' /anonymous ' /proc/mounts",
    )  # fmt: skip
    lines = out.splitlines()
    assert lines[:3] == ["from host", "ro-refused", "1"]  # the new volume was filled from the image's /etc
    assert lines[3].startswith("tmpfs /t tmpfs ") and "size=1024k" in lines[3]
    assert lines[4:] == ["700", "1"]
    assert (writable / "out").read_text() == "back\n" and not (readable / "x").exists()
    assert pb.ok("run", "--rm", "--mount", f"src={volume},dst=/data", BASE_IMAGE, "cat", "/data/kept") == "kept\n"
    empty = unique("vol")
    assert pb.ok("run", "--rm", "--mount", f"type=volume,src={empty},dst=/etc,volume-nocopy", BASE_IMAGE,
                 "ls", "/etc") == ""  # fmt: skip
    refusals = {
        f"type=bind,src={tmp_path / 'missing'},dst=/x": "bind source path does not exist",
        "type=npipe,src=x,dst=/x": "invalid mount type",
        "type=tmpfs,dst=relative": "must be absolute",
        f"type=tmpfs,src={volume},dst=/x": "Source must not be specified",
        "type=bind,dst=/x": "Source must not be empty",
        f"type=bind,src={readable},dst=/x,colour=blue": "unexpected key 'colour'",
        f"type=bind,src={readable},dst=/x,tmpfs-size=1m": "cannot mix 'tmpfs-*' options with mount type 'bind'",
        "type=volume,dst=/x,volume-opt=type=nfs": "volume-opt=type=nfs is not supported",
        "type=tmpfs,dst=/x,tmpfs-mode=rwx": "invalid tmpfs mode: rwx",
        "type=tmpfs,dst=/x,tmpfs-mode=-1": "invalid tmpfs mode: -1",
        f"type=bind,src={readable},dst=/x,bind-propagation=rshared": "bind-propagation=rshared is not supported",
    }
    for bad, message in refusals.items():
        result = pb.run("run", "--rm", "--mount", bad, BASE_IMAGE, "true")
        assert result.returncode == 125 and result.stderr.startswith("Error: ") and message in result.stderr, bad
    accepted = f"type=bind,src={readable},dst=/r,bind-propagation=rprivate,consistency=cached,ro"
    assert pb.ok("run", "--rm", "--mount", accepted, BASE_IMAGE, "ls", "/r") == ""
    pb.ok("volume", "rm", volume, empty)


def _python_in_the_container() -> list[str]:
    """Bind mounts that let the busybox image run this interpreter (at its own path, with the host's libraries)."""
    trees = {Path(sys.prefix), Path(sys.base_prefix).resolve(), Path("/usr")}
    outermost = sorted(tree for tree in trees if not any(other in tree.parents for other in trees))
    mounts = [word for tree in outermost for word in ("-v", f"{tree}:{tree}:ro")]
    for directory in ("/lib", "/lib64"):
        if Path(directory).is_dir():
            mounts += ["-v", f"{Path(directory).resolve()}:{directory}:ro"]
    return [*mounts, "--entrypoint", sys.executable]


UDP_ECHO = """
import socket
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("0.0.0.0", 5353))
print("ready", flush=True)
while True:
    data, sender = server.recvfrom(512)
    server.sendto(b"echo:" + data, sender)
"""


def test_udp_through_a_published_port(pb: Pybuild) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    python = _python_in_the_container()
    name = _run_ready(pb, "-p", f"{port}:5353/udp", "-p", "127.0.0.1::5353/udp", *python, BASE_IMAGE, "-c", UDP_ECHO)
    assert f"0.0.0.0:{port}->5353/udp" in pb.ok("ps", "--filter", f"name={name}")
    random_port = int(pb.ok("port", name).splitlines()[1].rpartition(":")[2])

    def exchange(client: socket.socket, target: int, payload: bytes) -> bool:
        client.sendto(payload, ("127.0.0.1", target))
        try:
            return client.recvfrom(512)[0] == b"echo:" + payload
        except OSError:
            return False  # a datagram sent before the container listened is lost: send again

    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second,
    ):
        for client in (first, second):
            client.settimeout(0.5)
        assert wait_until(lambda: exchange(first, port, b"one"))
        assert wait_until(lambda: exchange(second, port, b"two"))  # each client gets its own answers
        assert wait_until(lambda: exchange(first, random_port, b"three"))
    pb.ok("stop", "-t", "0", name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("0.0.0.0", port))  # the stopped container's monitor let the port go
    pb.ok("rm", name)


# -- start -i, attach, commit --pause --------------------------------------------------------------------------------


def test_start_interactive_attaches_stdin(pb: Pybuild) -> None:
    name = unique()
    pb.ok("create", "-i", "--name", name, BASE_IMAGE, "sh", "-c", 'read line; echo "got $line"; exit 4')
    result = pb.run("start", "-i", name, input=b"hello\n")
    assert (result.returncode, result.stdout) == (4, "got hello\n")
    pb.ok("rm", name)


def test_attach_no_stdin_keeps_our_input_from_the_container(pb: Pybuild) -> None:
    script = 'while [ ! -e /go ]; do echo waiting; sleep 0.1; done; read -t 2 line; echo "read=[$line]"'
    outputs = {}
    for flags in ((), ("--no-stdin",)):
        name = unique()
        pb.ok("run", "-d", "-i", "--name", name, BASE_IMAGE, "sh", "-c", script)
        attached = pb.popen("attach", *flags, name, stdin=subprocess.PIPE)
        assert attached.stdin is not None and attached.stdout is not None
        attached.stdin.write(b"typed\n")
        attached.stdin.flush()
        assert attached.stdout.readline() == b"waiting\n"  # attached: what we typed was offered before /go
        pb.ok("exec", name, "touch", "/go")
        outputs[flags] = attached.stdout.read().decode().replace("waiting\n", "")
        assert attached.wait(timeout=60) == 0
        pb.ok("rm", name)
    assert outputs == {(): "read=[typed]\n", ("--no-stdin",): "read=[]\n"}


def test_attach_sig_proxy_false_leaves_the_container_running(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, "--init", BASE_IMAGE, "sh", "-c", "while true; do echo tick; sleep 0.2; done")
    for flag in ("--sig-proxy=false", "--sig-proxy"):  # Docker's bool flag: alone it means true
        attached = pb.popen("attach", flag, name)
        assert attached.stdout is not None and attached.stdout.readline() == b"tick\n"
        attached.send_signal(signal.SIGINT)
        attached.wait(timeout=60)
        status = pb.ok("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}")
        if flag == "--sig-proxy=false":
            assert status.startswith("Up"), status
    assert wait_until(lambda: pb.ok("wait", name) == "130\n")  # the proxied SIGINT stopped it
    pb.ok("rm", name)


def test_commit_pause_flag(pb: Pybuild) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, BASE_IMAGE, "sh", "-c", "echo made > /made; echo ready; sleep 300")
    assert wait_until(lambda: "ready" in pb.ok("logs", name))
    tags = [f"paused/{unique()}:1" for _ in range(4)]
    for flag, tag in zip(("--pause", "--pause=true", "--pause=false", "-p=false"), tags, strict=True):
        pb.ok("commit", flag, name, tag)
        assert pb.ok("exec", name, "echo", "alive", timeout=30) == "alive\n"  # not left frozen
        assert pb.ok("run", "--rm", tag, "cat", "/made") == "made\n"
    assert pb.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").startswith("Up")
    assert "(Paused)" not in pb.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    pb.ok("rm", "-f", name)
    pb.ok("rmi", *tags)


# -- rename, container prune, volume create/inspect/prune -------------------------------------------------------------


def test_rename(pb: Pybuild) -> None:
    name, renamed, other = unique(), unique(), unique()
    pb.ok("run", "-d", "--name", name, BASE_IMAGE, "sleep", "300")
    pb.ok("create", "--name", other, BASE_IMAGE, "true")
    pb.ok("rename", name, renamed)
    assert _record(pb, renamed)["Name"] == f"/{renamed}"
    assert pb.ok("exec", renamed, "echo", "found") == "found\n"
    assert pb.ok("ps", "--filter", f"name={renamed}", "--format", "{{.Names}}").split() == [renamed]
    assert pb.run("inspect", name).returncode == 1
    for args in ((renamed, other), (renamed, renamed), (name, unique()), (renamed, "bad name!")):
        result = pb.run("rename", *args)
        assert result.returncode == 1 and result.stderr.startswith("Error: "), (args, result.stderr)
    assert _record(pb, renamed)["Name"] == f"/{renamed}"
    pb.ok("rm", "-f", renamed, other)


def test_container_prune_removes_only_stopped_containers(pb: Pybuild) -> None:
    stopped, created, running = unique(), unique(), unique()
    stopped_id = pb.ok("run", "-d", "--name", stopped, BASE_IMAGE, "true").strip()
    assert pb.ok("wait", stopped) == "0\n"
    created_id = pb.ok("create", "--name", created, BASE_IMAGE, "true").strip()
    running_id = pb.ok("run", "-d", "--name", running, BASE_IMAGE, "sleep", "300").strip()
    lines = pb.ok("container", "prune", "-f").splitlines()
    assert lines[0] == "Deleted Containers:" and {stopped_id, created_id} <= set(lines[1:])
    assert lines[-2] == "" and re.fullmatch(r"Total reclaimed space: [0-9.]+[kMG]?B", lines[-1])
    assert running_id not in lines
    assert pb.run("inspect", stopped).returncode == 1 and pb.run("inspect", created).returncode == 1
    assert not (pb.root / "containers" / stopped_id).exists()
    assert pb.ok("ps", "-q", "--no-trunc", "--filter", f"name={running}").strip() == running_id
    pb.ok("rm", "-f", running)


def test_volume_create_inspect_and_prune(pb: Pybuild) -> None:
    named, used = unique("vol"), unique("vol")
    assert pb.ok("volume", "create", "-l", "team=a", "--label", "empty=", named) == f"{named}\n"
    anonymous = pb.ok("volume", "create").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous)
    document = json.loads(pb.ok("volume", "inspect", named))
    assert len(document) == 1 and document[0]["Name"] == named and document[0]["Driver"] == "local"
    assert document[0]["Labels"] == {"team": "a", "empty": ""} and Path(document[0]["Mountpoint"]).is_dir()
    assert pb.ok("volume", "create", named) == f"{named}\n"  # as Docker: creating it again is not an error
    missing = pb.run("volume", "inspect", named, "no-such-volume")
    assert missing.returncode == 1 and "no-such-volume" in missing.stderr
    assert [volume["Name"] for volume in json.loads(missing.stdout)] == [named]
    assert pb.run("volume", "create", "bad/name").returncode == 1

    container = unique()
    pb.ok("create", "--name", container, "-v", f"{used}:/data", BASE_IMAGE, "true")
    pb.ok("run", "--rm", "-v", f"{anonymous}:/data", BASE_IMAGE, "sh", "-c", "head -c 1234 /dev/zero > /data/f")
    assert anonymous in pb.ok("volume", "ls", "-q").split()  # --rm takes only volumes mounted without a name
    pruned = pb.ok("volume", "prune", "-f").splitlines()
    assert pruned[0] == "Deleted Volumes:" and anonymous in pruned and named not in pruned and used not in pruned
    assert pruned[-2] == "" and re.fullmatch(r"Total reclaimed space: [0-9.]+kB", pruned[-1])  # at least our 1234 B
    pruned = pb.ok("volume", "prune", "-f", "--all").splitlines()
    assert named in pruned and used not in pruned
    volumes = pb.ok("volume", "ls", "-q").split()
    assert used in volumes and named not in volumes and anonymous not in volumes
    pb.ok("rm", container)
    pb.ok("volume", "rm", used)
