"""The same container sessions against Docker and pybuild, on one image (built by pybuild, `docker load`ed): output
and exit codes of `run`, volumes and binds, `logs`, `ps` columns, `diff` lists, `commit` (then run in Docker),
`export` contents. Every name is unique, and everything made in Docker is removed."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from container_helpers import Pybuild, build_base, unique

DOCKER = "/usr/bin/docker"
pytestmark = [
    pytest.mark.docker,
]

DOCKERFILE = """\
FROM pybuild-test/busybox:latest
RUN printf 'root:x:0:0:root:/root:/bin/sh\\napp:x:1000:1000:app:/home/app:/bin/sh\\n' > /etc/passwd && \\
    printf 'root:x:0:\\napp:x:1000:\\n' > /etc/group && mkdir -p /home/app /root /data && echo seed > /data/seed
ENV GREETING=hello
WORKDIR /srv
"""


@dataclass
class Engines:
    pb: Pybuild
    image: str
    docker_names: list[str]
    docker_images: list[str]
    docker_volumes: list[str]

    def docker(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, input=input, timeout=300, check=False)

    def both(self, *args: str) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        return self.docker(*args), self.pb.run(*args)

    def load(self, tag: str) -> None:
        saved = subprocess.run(self.pb.argv("save", tag), capture_output=True, check=True).stdout
        subprocess.run([DOCKER, "load"], input=saved, capture_output=True, check=True)
        self.docker_images.append(tag)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    root = tmp_path_factory.mktemp("vs-docker-root")
    build_base(root, tmp_path_factory.mktemp("base"))
    context = tmp_path_factory.mktemp("ctx")
    (context / "Dockerfile").write_text(DOCKERFILE)
    pb = Pybuild(root)
    image = f"pybuild-test/containers-{unique('img')}:1"
    pb.ok("build", "-q", "-t", image, str(context))
    found = Engines(pb, image, [], [], [])
    found.load(image)
    yield found
    for name in found.docker_names:
        found.docker("rm", "-f", "-v", name)
    for tag in found.docker_images:
        found.docker("rmi", "-f", tag)
    for volume in found.docker_volumes:
        found.docker("volume", "rm", "-f", volume)
    pb.remove_all()


@pytest.mark.parametrize(
    "command",
    [
        ["echo", "hello world"],
        ["pwd"],
        ["-w", "/tmp", "pwd"],
        ["id"],
        ["-u", "app", "id"],
        ["-u", "1000:1000", "sh", "-c", "id; echo $HOME"],
        ["-e", "GREETING=bye", "-e", "EXTRA=1", "sh", "-c", "echo $GREETING $EXTRA; env | grep -v HOSTNAME | sort"],
        ["--entrypoint", "echo", "x"],
        ["sh", "-c", "exit 3"],
        ["no-such-command"],
        ["sh", "-c", "sleep 30 & kill -9 $!; wait $!"],
        ["sh", "-c", "sleep 30 & kill -TERM $!; wait $!"],
        ["cat", "/data/seed"],
        ["sh", "-c", "stat -c '%A %U %n' /proc /sys /dev /dev/pts /dev/shm; ls /dev; cat /etc/hosts | head -1"],
    ],
)
def test_run_output_and_exit_code(engines: Engines, command: list[str]) -> None:
    docker, ours = engines.both("run", "--rm", *_with_image(command, engines.image))
    assert ours.returncode == docker.returncode, (docker.stderr, ours.stderr)
    assert _normal(ours.stdout) == _normal(docker.stdout)


def _with_image(command: list[str], image: str) -> list[str]:
    """Options first, then the image, then the command: `-w /tmp pwd` -> `-w /tmp IMAGE pwd`."""
    options: list[str] = []
    words = list(command)
    while words and words[0].startswith("-"):
        option = words.pop(0)
        options.append(option)
        if option in ("-w", "-u", "-e", "--entrypoint", "-v"):
            options.append(words.pop(0))
    return [*options, image, *words]


def _normal(text: str) -> str:
    # dates and sizes of /proc, /sys, /dev listings differ by machine and moment, not by engine
    return re.sub(r"\w{3}\s+\d+\s+\d\d:\d\d", "DATE", text)


def test_volumes_and_bind_mounts(engines: Engines, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from host\n")
    volume = unique("vol")
    engines.docker_volumes.append(volume)
    script = "cat /h/in; ls -la /data | tail -n +2 | awk '{print $1, $3, $NF}'; echo kept > /data/kept"
    docker, ours = (
        runner("run", "--rm", "-v", f"{host}:/h:ro", "-v", f"{volume}:/data", engines.image, "sh", "-c", script)
        for runner in (engines.docker, engines.pb.run)
    )
    assert (ours.returncode, ours.stdout) == (docker.returncode, docker.stdout)
    docker, ours = (
        runner("run", "--rm", "-v", f"{volume}:/v", engines.image, "cat", "/v/kept", "/v/seed")
        for runner in (engines.docker, engines.pb.run)
    )
    assert (ours.returncode, ours.stdout) == (docker.returncode, docker.stdout) == (0, "kept\nseed\n")
    engines.pb.ok("volume", "rm", volume)


def test_logs_ps_diff_commit_export(engines: Engines, tmp_path: Path) -> None:
    name = unique()
    engines.docker_names.append(name)
    script = "echo out; echo err >&2; mkdir /new; echo hi > /new/f; rm /bin/vi; echo x >> /etc/group; exit 2"
    docker, ours = engines.both("run", "--name", name, engines.image, "sh", "-c", script)
    assert (ours.returncode, ours.stdout, ours.stderr) == (docker.returncode, docker.stdout, docker.stderr)

    docker, ours = engines.both("logs", name)
    assert (ours.stdout, ours.stderr) == (docker.stdout, docker.stderr) == ("out\n", "err\n")

    docker, ours = engines.both("ps", "-a", "--filter", f"name={name}")
    docker_rows, our_rows = (
        re.split(r"\s{2,}", line) for line in (docker.stdout.splitlines()[1], ours.stdout.splitlines()[1])
    )
    assert docker.stdout.split("\n")[0].split() == ours.stdout.split("\n")[0].split()
    assert our_rows[2] == docker_rows[2]  # COMMAND
    assert our_rows[-1] == docker_rows[-1] == name
    assert any(cell.startswith("Exited (2)") for cell in our_rows)

    docker, ours = engines.both("diff", name)
    assert sorted(ours.stdout.splitlines()) == sorted(docker.stdout.splitlines())  # Docker's order varies run to run

    tag = f"pybuild-test/committed-{unique('img')}:1"
    engines.pb.ok("commit", "-a", "Tester", "-m", "the message", "-c", 'CMD ["cat", "/new/f"]', name, tag)
    engines.load(tag)
    assert engines.docker("run", "--rm", tag).stdout == "hi\n"
    assert engines.docker("run", "--rm", tag, "ls", "/bin/vi").returncode != 0
    history = engines.docker("history", "--no-trunc", "--format", "{{.Comment}}", tag).stdout
    assert history.splitlines()[0] == "the message"
    assert engines.docker("inspect", "-f", "{{.Author}}", tag).stdout.strip() == "Tester"

    exported: dict[str, set[str]] = {}
    for engine, runner in (("docker", engines.docker), ("pybuild", engines.pb.run)):
        path = tmp_path / f"{engine}.tar"
        assert runner("export", "-o", str(path), name).returncode == 0
        with tarfile.open(path) as archive:
            exported[engine] = {member.name.rstrip("/") for member in archive.getmembers()}
    assert exported["pybuild"] == exported["docker"]


def _tar_entries(data: bytes) -> list[tuple[str, str, int, int, int, str, bytes]]:
    """What a `cp ... -` stream holds, as both engines must agree on it: names, types, modes, owners, links, bytes."""
    entries = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        for member in archive:
            content = b""
            if member.isreg():
                extracted = archive.extractfile(member)
                assert extracted is not None
                content = extracted.read()
            kind = "dir" if member.isdir() else "sym" if member.issym() else "link" if member.islnk() else "file"
            entries.append(
                (member.name.rstrip("/"), kind, member.mode & 0o7777, member.uid, member.gid, member.linkname, content)
            )
    return entries


def _tree(root: Path) -> list[tuple[str, int, int, int, str, bytes]]:
    found = []
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        link = os.readlink(path) if path.is_symlink() else ""
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        found.append((str(path.relative_to(root)), info.st_mode, info.st_uid, info.st_gid, link, content))
    return found


def test_cp_tar_streams_and_paths(engines: Engines, tmp_path: Path) -> None:
    name = unique()
    engines.docker_names.append(name)
    script = (
        "mkdir -p /d/e /dst /dst2; echo x > /d/e/f; chown 1000:1000 /d/e/f; chmod 640 /d/e/f; ln -s e /d/l; "
        "ln -s /d/e/f /lnk; ln -s / /dst/escape"
    )
    docker, ours = engines.both("run", "--name", name, engines.image, "sh", "-c", script)
    assert ours.returncode == docker.returncode == 0, (docker.stderr, ours.stderr)

    def streams(*args: str) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
        docker = subprocess.run([DOCKER, *args], capture_output=True, timeout=300, check=False)
        ours = subprocess.run(engines.pb.argv(*args), capture_output=True, timeout=300, check=False)
        return docker, ours

    for flags, source in [([], "/d"), ([], "/d/."), ([], "/d/l/"), ([], "/d/e/f"), ([], "/lnk"), (["-L"], "/lnk")]:
        docker_out, our_out = streams("cp", *flags, f"{name}:{source}", "-")
        assert our_out.returncode == docker_out.returncode == 0, (source, docker_out.stderr, our_out.stderr)
        assert _tar_entries(our_out.stdout) == _tar_entries(docker_out.stdout), (flags, source)
    docker_out, our_out = streams("cp", f"{name}:/nope", "-")
    assert our_out.returncode == docker_out.returncode == 1

    upload = tmp_path / "upload.tar"
    with tarfile.open(upload, "w") as archive:
        for entry_name, data in (("top/f", b"uploaded\n"), ("escape/through-the-link", b"stays inside\n")):
            member = tarfile.TarInfo(entry_name)
            member.size, member.uid, member.gid, member.mode = len(data), 1234, 1234, 0o640
            archive.addfile(member, io.BytesIO(data))
    for engine_argv in ([DOCKER], engines.pb.argv()):
        with open(upload, "rb") as stdin:
            done = subprocess.run(
                [*engine_argv, "cp", "-", f"{name}:/dst"], stdin=stdin, capture_output=True, check=False
            )
        assert done.returncode == 0, done.stderr
    for landed in ("/dst", "/through-the-link"):  # a symlink in the container resolves inside its root
        docker_out, our_out = streams("cp", f"{name}:{landed}", "-")
        assert our_out.returncode == docker_out.returncode == 0, (landed, docker_out.stderr, our_out.stderr)
        assert _tar_entries(our_out.stdout) == _tar_entries(docker_out.stdout), landed
    assert not Path("/through-the-link").exists()
    docker_out, our_out = streams("cp", "-", f"{name}:/d/e/f")
    assert our_out.returncode == docker_out.returncode == 1

    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / "sub" / "g").write_text("local\n")
    os.chown(local / "sub" / "g", 4321, 4321)
    for flags in ([], ["-a"]):
        docker, ours = engines.both("cp", *flags, str(local), f"{name}:/dst2")
        assert ours.returncode == docker.returncode == 0, (docker.stderr, ours.stderr)
        docker_out, our_out = streams("cp", f"{name}:/dst2", "-")
        assert _tar_entries(our_out.stdout) == _tar_entries(docker_out.stdout), flags
    for engine, runner in (("docker", engines.docker), ("pybuild", engines.pb.run)):
        (tmp_path / engine).mkdir()
        assert runner("cp", f"{name}:/d", str(tmp_path / engine)).returncode == 0
        assert runner("cp", f"{name}:/d/.", str(tmp_path / engine / "content")).returncode == 0
        assert runner("cp", f"{name}:/d/e/f", str(tmp_path / engine / "renamed")).returncode == 0
    assert _tree(tmp_path / "pybuild") == _tree(tmp_path / "docker")
