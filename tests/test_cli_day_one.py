"""What a Docker user meets on day one, run as the CLI runs: the flags and forms they type, no traceback for any bad
input, output files that are never swapped for a device or fifo, Docker's answers on edge cases, explanations that
match the build, and sizes that match Docker's."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, base_context

from buildkit_py.image.stored import image_config
from buildkit_py.store import Store

TESTS = Path(__file__).resolve().parent


def pybuild(
    root: Path, *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        cwd=cwd,
        check=False,
    )
    completed = subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    )
    assert "Traceback" not in completed.stderr, completed.stderr
    return completed


def _rootfs_tar(tmp_path: Path) -> Path:
    folder = tmp_path / "rootfs"
    (folder / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", folder / "bin" / "busybox")
    os.symlink("busybox", folder / "bin" / "sh")
    tar_path = tmp_path / "rootfs.tar"
    with tarfile.open(tar_path, "w") as archive:
        archive.add(folder, arcname=".")
    return tar_path


@pytest.fixture()
def imported(tmp_path: Path) -> tuple[Path, str]:
    """A store with one image made by `import` (no build, no root needed)."""
    root = tmp_path / "store"
    assert pybuild(root, "import", str(_rootfs_tar(tmp_path)), "day-one/imported:1").returncode == 0
    return root, "day-one/imported:1"


@pytest.fixture()
def fresh_store(tmp_path: Path) -> Store:
    """A store of its own with the busybox base, for tests that prune."""
    from buildkit_py.builder import build

    store = Store(tmp_path / "fresh")
    build(base_context(tmp_path), tags=[BASE_IMAGE], store=store)
    return store


def _context(folder: Path, dockerfile: str, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


# -- 2. no traceback, ever ---------------------------------------------------------------------------------------------


def test_every_command_with_bad_arguments_ends_without_a_traceback(imported: tuple[Path, str], tmp_path: Path) -> None:
    root, image = imported
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    unreachable = "http://127.0.0.1:9"  # nothing listens there: a registry call fails at once
    env = {
        **os.environ,
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        **{name: unreachable for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
    }
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    result = subprocess.run(
        [sys.executable, str(TESTS / "bad_arguments.py"), str(root), str(scratch), image],
        cwd=scratch,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        start_new_session=True,  # no controlling terminal: a password prompt reads the empty stdin
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    failures = json.loads(result.stdout)
    assert failures == []
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_output_paths_are_checked_and_never_replaced_when_not_regular_files(
    imported: tuple[Path, str], tmp_path: Path
) -> None:
    root, image = imported
    missing = pybuild(root, "save", "-o", "/missing/dir/x.tar", image)
    assert missing.returncode == 1 and "the folder '/missing/dir' does not exist" in missing.stderr
    folder = pybuild(root, "save", "-o", str(tmp_path), image)
    assert folder.returncode == 1 and "it is a directory" in folder.stderr
    html = pybuild(root, "analyze", "--html", "/missing/dir/r.html", image)
    assert html.returncode == 1 and "cannot write HTML report" in html.stderr

    assert pybuild(root, "save", "-o", "/dev/null", image).returncode == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = io.BytesIO()
    reader = threading.Thread(target=lambda: received.write(fifo.read_bytes()))
    reader.start()
    saved = pybuild(root, "save", "-o", str(fifo), image)
    reader.join()
    assert saved.returncode == 0 and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    received.seek(0)
    with tarfile.open(fileobj=received) as archive:
        assert "manifest.json" in archive.getnames()

    # A regular file is replaced whole (a new inode), through a symlink that stays a symlink.
    target = tmp_path / "archive.tar"
    target.write_bytes(b"old")
    link = tmp_path / "link.tar"
    link.symlink_to(target)
    inode = target.stat().st_ino
    assert pybuild(root, "save", "-o", str(link), image).returncode == 0
    assert link.is_symlink() and target.stat().st_ino != inode and tarfile.is_tarfile(target)
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".partial")]


def test_bad_store_roots_and_a_damaged_database_are_clear_errors(tmp_path: Path) -> None:
    for root, message in (
        (Path("/etc/hostname"), "cannot use /etc/hostname as the store's root"),
        (Path("/proc/nonexistent"), "cannot use /proc/nonexistent as the store's root"),
    ):
        result = pybuild(root, "images")
        assert result.returncode == 1 and message in result.stderr
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "meta.db").write_bytes(b"this is not a database" * 100)
    result = pybuild(damaged, "images")
    assert result.returncode == 1 and f"{damaged / 'meta.db'} is damaged" in result.stderr


def test_login_without_a_terminal_or_input_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "login", "registry.invalid"],
        env={**os.environ, "DOCKER_CONFIG": str(tmp_path)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        check=False,
    )
    assert result.returncode == 1 and "login needs a username and a password" in result.stderr
    assert "Traceback" not in result.stderr


def test_flag_values_that_make_no_sense_are_refused(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    context = _context(tmp_path / "c", f"FROM {BASE_IMAGE}\n")
    for flags, message in (
        (["--jobs", "0"], "--jobs must be at least 1, not 0"),
        (["--jobs=-3"], "--jobs must be at least 1, not -3"),
        (["--jobs", "many"], "--jobs takes a whole number of steps"),
        (["--build-arg", "=x"], "the name before '=' is empty"),
        (["--label", "=x"], "the name before '=' is empty"),
        (["--add-host", "nohost"], "bad format for add-host"),
        (["--add-host", "db:999.1.1.1"], "invalid IP address in add-host"),
    ):
        result = pybuild(root, "build", *flags, str(context))
        assert result.returncode == 2 and message in result.stderr, (flags, result.stderr)


def test_output_files_are_checked_before_the_build_runs(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    context = _context(tmp_path / "c", f"FROM {BASE_IMAGE}\nRUN echo built > /built\n")
    for flags, message in (
        (["--iidfile", "/missing/dir/iid"], "cannot write --iidfile '/missing/dir/iid'"),
        (["-o", "type=local,dest=/etc/hostname/out"], "'/etc/hostname' is not a directory"),
        (["-o", "type=tar,dest=/missing/dir/out.tar"], "the folder '/missing/dir' does not exist"),
        (["--graph", str(tmp_path)], "it is a directory"),
    ):
        result = pybuild(root, "build", "-t", "day-one/never-built", *flags, str(context))
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "#1" not in result.stderr  # refused before any step ran
    assert pybuild(root, "inspect", "day-one/never-built").returncode == 1
    iid = pybuild(root, "build", "-q", "--iidfile", "/dev/null", str(context))
    assert iid.returncode == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_text_that_is_not_utf8_and_hostile_expansions(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    context = tmp_path / "names"
    (context / os.fsdecode(b"d\xe9r")).mkdir(parents=True)
    (context / os.fsdecode(b"d\xe9r") / os.fsdecode(b"f\xff")).write_text("x\n")
    (context / "Dockerfile").write_bytes(f'FROM {BASE_IMAGE}\nLABEL name="caf\xe9"\nCOPY . /x/\n'.encode("latin-1"))
    built = pybuild(root, "build", "-q", "-t", "day-one/latin1", str(context))
    assert built.returncode == 0, built.stderr
    labels = json.loads(pybuild(root, "inspect", "day-one/latin1").stdout)[0]["Config"]["Labels"]
    assert labels == {"name": "caf\ufffd"}  # what Docker's JSON holds for the byte 0xe9
    for command in (["analyze", "day-one/latin1"], ["history", "day-one/latin1"], ["build", "--explain", str(context)]):
        assert pybuild(root, *command).returncode == 0

    depth = 5000
    deep = _context(tmp_path / "deep", f"FROM {BASE_IMAGE}\nENV B=1\nENV C={'${B:-' * depth}x{'}' * depth}\n")
    result = pybuild(root, "build", str(deep))
    assert result.returncode == 1 and "nested more than 64 deep" in result.stderr
    doubling = "".join("ENV A=${A}${A}\n" for _ in range(30))
    grows = _context(tmp_path / "grows", f"FROM {BASE_IMAGE}\nENV A=ab\n{doubling}")
    result = pybuild(root, "build", str(grows))
    assert result.returncode == 1 and "the expansion is longer than 1048576 characters" in result.stderr


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_while_a_layer_is_stored_is_a_clear_error(small_disk: Path, tmp_path: Path) -> None:
    from buildkit_py.builder import build

    root = small_disk / "root"
    build(base_context(tmp_path), tags=[BASE_IMAGE], store=Store(root))
    # The step fills the disk (and succeeds); storing its layer then finds no room, not even for the recipe.
    big = _context(tmp_path / "big", f"FROM {BASE_IMAGE}\nRUN dd if=/dev/zero of=/fill bs=64k 2>/dev/null; true\n")
    result = pybuild(root, "build", str(big))
    assert result.returncode == 1 and "no space left to store the step's layer" in result.stderr
    small = _context(tmp_path / "small-build", f"FROM {BASE_IMAGE}\nRUN echo fits > /fits\n")
    assert pybuild(root, "build", "-q", str(small)).returncode == 0  # the store is still usable


# -- 1. the flags and forms Docker users type -----------------------------------------------------------------------


def test_build_without_the_build_word(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    context = _context(tmp_path / "c", f"FROM {BASE_IMAGE}\nLABEL form=no-build-word\n")
    assert pybuild(root, "-q", "-t", "day-one/no-word", str(context)).returncode == 0
    assert pybuild(root, "-q", "-t", "day-one/dot", ".", cwd=context).returncode == 0
    for name in ("day-one/no-word", "day-one/dot"):
        assert json.loads(pybuild(root, "inspect", name).stdout)[0]["Config"]["Labels"] == {"form": "no-build-word"}
    unknown = pybuild(root, "imgaes")
    assert unknown.returncode == 2 and "invalid choice: 'imgaes'" in unknown.stderr


def test_platform_labels_hosts_and_unused_build_args(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    context = _context(
        tmp_path / "c", f"FROM {BASE_IMAGE}\nARG USED\nRUN cat /etc/hosts > /hosts.txt && cat /hosts.txt\n"
    )
    for platform in (["--platform", "linux/amd64"], ["--platform=linux/amd64"]):
        assert pybuild(root, "build", "-q", *platform, "--build-arg", "USED=1", str(context)).returncode == 0
    other = pybuild(root, "build", "--platform", "linux/arm64", str(context))
    assert other.returncode == 1 and "pybuild builds linux/amd64 images only" in other.stderr

    built = pybuild(
        root,
        "build",
        "--progress=plain",
        "--no-cache",
        "-t",
        "day-one/flags",
        "--label",
        "team=build tools",
        "--label",
        "empty",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "v6:::1",
        "--add-host",
        "me:host-gateway",
        "--build-arg",
        "USED=1",
        "--build-arg",
        "NOT_USED=2",
        str(context),
    )
    assert built.returncode == 0, built.stderr
    assert "[Warning] One or more build-args [NOT_USED] were not consumed" in built.stderr
    assert re.search(r"10\.1\.2\.3\tdb$", built.stderr, re.MULTILINE)
    assert re.search(r"::1\tv6$", built.stderr, re.MULTILINE)
    gateway = re.search(r" (\S+)\tme$", built.stderr, re.MULTILINE)
    assert gateway is not None and gateway.group(1) != "host-gateway"
    labels = json.loads(pybuild(root, "inspect", "day-one/flags").stdout)[0]["Config"]["Labels"]
    assert labels == {"team": "build tools", "empty": ""}


def test_context_from_stdin_as_tar_compressed_tar_or_dockerfile(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    context = _context(tmp_path / "c", f"FROM {BASE_IMAGE}\nCOPY hello.txt /\n", **{"hello.txt": "from a tar\n"})
    ids = set()
    for mode in ("w", "w:gz", "w:bz2", "w:xz"):
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode=mode) as archive:  # type: ignore[call-overload]
            archive.add(context, arcname=".")
        result = pybuild(root, "build", "-q", "-", stdin=stream.getvalue())
        assert result.returncode == 0, result.stderr
        ids.add(result.stdout.strip())
    assert len(ids) == 1  # the same context, whatever the compression: the same image
    (context / "Other.dockerfile").write_text(f"FROM {BASE_IMAGE}\nLABEL from=other\n")
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as archive:
        archive.add(context, arcname=".")
    other = pybuild(root, "build", "-q", "-t", "day-one/other", "-f", "Other.dockerfile", "-", stdin=stream.getvalue())
    assert other.returncode == 0, other.stderr
    assert json.loads(pybuild(root, "inspect", "day-one/other").stdout)[0]["Config"]["Labels"] == {"from": "other"}

    text = f"FROM {BASE_IMAGE}\nRUN echo from stdin > /stdin.txt\n".encode()
    assert pybuild(root, "build", "-q", "-t", "day-one/stdin-text", "-", stdin=text).returncode == 0
    copies = pybuild(root, "build", "-", stdin=f"FROM {BASE_IMAGE}\nCOPY hello.txt /\n".encode())
    assert copies.returncode == 1 and "hello.txt" in copies.stderr  # the context is empty
    both = pybuild(root, "build", "-f", "-", "-", stdin=text)
    assert both.returncode == 1 and "can't use stdin for both build context and dockerfile" in both.stderr


def test_a_failing_run_exits_with_its_own_status(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    context = _context(tmp_path / "c", f"FROM {BASE_IMAGE}\nRUN exit 3\n")
    result = pybuild(root, "build", str(context))
    assert result.returncode == 3 and "exit status 3" in result.stderr
    missing = pybuild(root, "build", str(tmp_path / "nothing-here"))
    assert missing.returncode == 1


def test_pull_flag_resolves_the_base_image_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry_fixtures import make_image, run_registry, sha256, tar_bytes

    from buildkit_py.registry import RegistryClient, push_image

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    with run_registry(tmp_path / "registry", None) as registry:
        name = f"{registry.host}/day-one/base:1"
        first, second = tar_bytes({"etc/version": b"1\n"}), tar_bytes({"etc/version": b"2\n"})

        def publish(layer: bytes, store_name: str) -> None:
            store = Store(tmp_path / store_name)
            make_image(store, [layer], tag=name)
            with RegistryClient(registry.host) as client:
                push_image(store, name, client=client)

        publish(first, "publisher-1")
        root = tmp_path / "builder"
        context = _context(tmp_path / "c", f"FROM {name}\nLABEL built=on-the-registry-image\n")

        def base_layer(*flags: str) -> object:
            iidfile = tmp_path / "iid"
            assert pybuild(root, "build", "-q", "--iidfile", str(iidfile), *flags, str(context)).returncode == 0
            return image_config(Store(root), iidfile.read_text()).diff_ids[0]  # type: ignore[arg-type]

        assert base_layer() == sha256(first)
        publish(second, "publisher-2")
        assert base_layer() == sha256(first)  # the store's copy, as Docker's classic builder uses it
        assert base_layer("--pull") == sha256(second)


# -- 3. Docker's answers on edge cases ------------------------------------------------------------------------------


def test_edge_cases_answered_as_docker_answers_them(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    empty = _context(tmp_path / "empty", "FROM scratch\n")
    result = pybuild(root, "build", str(empty))
    assert result.returncode == 1 and "No image was generated. Is your Dockerfile empty?" in result.stderr
    assert pybuild(root, "build", "-q", "--label", "a=b", str(empty)).returncode == 0  # a LABEL step makes one

    volume = _context(tmp_path / "volume", f"FROM {BASE_IMAGE}\nRUN touch /foo\nVOLUME /foo\n")
    result = pybuild(root, "build", str(volume))
    assert result.returncode == 1 and "cannot mount volume over existing file, file exists /foo" in result.stderr

    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "dockerfile").write_text(f"FROM {BASE_IMAGE}\nLABEL from=lower-case\n")
    assert pybuild(root, "build", "-q", "-t", "day-one/lower", str(lower)).returncode == 0

    ports = _context(tmp_path / "ports", f'FROM {BASE_IMAGE}\nARG P="80 443/udp"\nEXPOSE $P 8080\n')
    assert pybuild(root, "build", "-q", "-t", "day-one/ports", str(ports)).returncode == 0
    config = json.loads(pybuild(root, "inspect", "day-one/ports").stdout)[0]["Config"]
    assert config["ExposedPorts"] == {"80/tcp": {}, "443/udp": {}, "8080/tcp": {}}

    cmd = _context(tmp_path / "cmd", f'FROM {BASE_IMAGE}\nCMD []\nENTRYPOINT ["/bin/echo"]\n')
    assert pybuild(root, "build", "-q", "-t", "day-one/cmd", str(cmd)).returncode == 0
    config = json.loads(pybuild(root, "inspect", "day-one/cmd").stdout)[0]["Config"]
    assert config["Cmd"] is None and config["Entrypoint"] == ["/bin/echo"]


def test_rmi_keeps_images_others_are_built_on(fresh_store: Store, tmp_path: Path) -> None:
    root = fresh_store.root
    parent = _context(tmp_path / "parent", f"FROM {BASE_IMAGE}\nRUN echo p > /p\n")
    assert pybuild(root, "build", "-q", "-t", "day-one/parent", str(parent)).returncode == 0
    child = _context(tmp_path / "child", "FROM day-one/parent\nRUN echo c > /c\n")
    assert pybuild(root, "build", "-q", "-t", "day-one/child", str(child)).returncode == 0
    parent_id = fresh_store.resolve("day-one/parent")

    for flags in ([], ["-f"]):
        refused = pybuild(root, "rmi", *flags, str(parent_id))
        assert refused.returncode == 1
        assert (
            f"conflict: unable to delete {parent_id.short} (cannot be forced) - image has dependent child images"
            in refused.stderr
        )
    untagged = pybuild(root, "rmi", "day-one/parent")
    assert untagged.returncode == 0 and untagged.stdout.splitlines() == ["Untagged: day-one/parent:latest"]
    assert fresh_store.images.has(parent_id)
    assert parent_id.short not in pybuild(root, "images").stdout  # an intermediate image, as Docker hides it
    assert parent_id.short in pybuild(root, "images", "-a").stdout

    removed = pybuild(root, "rmi", "day-one/child")
    assert removed.returncode == 0 and f"Deleted: {parent_id}" in removed.stdout
    assert not fresh_store.images.has(parent_id)
    assert fresh_store.images.has(fresh_store.resolve(BASE_IMAGE))


# -- 4. explanations that match what happens --------------------------------------------------------------------------


def test_explain_honours_no_cache_and_names_the_filter(base_store: object, tmp_path: Path) -> None:
    root = base_store.root  # type: ignore[attr-defined]
    context = _context(
        tmp_path / "c",
        f"FROM {BASE_IMAGE} AS build\nRUN echo b > /b\nFROM {BASE_IMAGE}\nCOPY --from=build /b /b\nRUN cat /b\n",
    )
    assert pybuild(root, "build", "-q", str(context)).returncode == 0
    assert pybuild(root, "build", "--explain", str(context)).stdout.splitlines()[-1].endswith(": cached")
    no_cache = pybuild(root, "build", "--explain", "--no-cache", str(context)).stdout.splitlines()
    assert no_cache and all(line.endswith("cache disabled (--no-cache)") for line in no_cache)
    filtered = pybuild(root, "build", "--explain", "--no-cache-filter", "build", str(context)).stdout.splitlines()
    assert filtered[0].endswith("RUN echo b > /b: cache disabled for stage 'build' (--no-cache-filter)")
    assert filtered[1].endswith("parent step #1 was rebuilt") and filtered[2].endswith("parent step #2 was rebuilt")


def test_cache_prune_all_says_what_it_removed(fresh_store: Store, tmp_path: Path) -> None:
    root = fresh_store.root
    context = _context(tmp_path / "c", f"FROM {BASE_IMAGE}\nRUN echo one > /one\nRUN echo two > /two\n")
    assert pybuild(root, "build", "-q", "-t", "day-one/kept", str(context)).returncode == 0
    pruned = pybuild(root, "cache", "prune", "--all", "--force")
    assert pruned.returncode == 0
    removed = re.search(
        r"^Removed (\d+) cache records \(their steps run again on the next build\)", pruned.stdout, re.MULTILINE
    )
    assert removed is not None and int(removed.group(1)) >= 3
    assert pruned.stdout.rstrip().endswith("Total reclaimed space: 0B")  # every layer belongs to an image
    explained = pybuild(root, "build", "--explain", str(context)).stdout
    assert "cached" not in explained


# -- 7. sizes people can trust ---------------------------------------------------------------------------------------


def _content_bytes(folder: Path) -> int:
    """Docker's measure of an unpacked tree: lstat sizes of everything but directories, each inode once."""
    seen: set[int] = set()
    total = 0
    for directory, subdirs, files in os.walk(folder):
        for name in [*files, *(d for d in subdirs if os.path.islink(os.path.join(directory, d)))]:
            info = os.lstat(os.path.join(directory, name))
            if info.st_ino not in seen and info.st_size:
                seen.add(info.st_ino)
                total += info.st_size
    return total


def test_sizes_images_df_du_and_prunes(fresh_store: Store, tmp_path: Path) -> None:
    root = fresh_store.root
    context = _context(
        tmp_path / "c",
        f"FROM {BASE_IMAGE} AS helper\nRUN head -c 300000 /dev/urandom > /noise\n"
        f"FROM {BASE_IMAGE}\nRUN head -c 200000 /dev/urandom > /data && ln /data /hard && ln -s /data /soft\n"
        "COPY --from=helper /noise /noise\n",
    )
    assert pybuild(root, "build", "-q", "-t", "day-one/sized", str(context)).returncode == 0
    listed = json.loads(pybuild(root, "images", "--format", "json", "day-one/sized").stdout)[0]
    config = image_config(fresh_store, fresh_store.resolve("day-one/sized"))
    expected = sum(_content_bytes(fresh_store.snapshots.path(diff_id)) for diff_id in config.diff_ids)
    assert listed["Size"] == expected  # 200000 once for /data and /hard, 5 for /soft's target, the noise, busybox

    from buildkit_py.store.gc import system_df

    usage = system_df(fresh_store)
    counted = usage.images.size + usage.build_cache.size
    tars = sum(fresh_store.layers.sizes().values())
    assert counted == tars + _content_bytes(root / "snapshots")  # every layer tar and every snapshot, nothing twice

    du = pybuild(root, "cache", "du").stdout
    run_line = next(line for line in du.splitlines() if "RUN head -c 200000" in line)
    assert run_line.split()[1] == "false" and not re.search(r"\s0B\s", run_line)  # used by the image, still sized

    dangling = _context(tmp_path / "d", f"FROM {BASE_IMAGE}\nRUN head -c 100000 /dev/urandom > /gone\n")
    dangling_id = pybuild(root, "build", "-q", str(dangling)).stdout.strip()
    pruned = pybuild(root, "image", "prune", "-f")
    assert pruned.stdout.startswith("Deleted Images:\ndeleted: " + dangling_id)
    assert "day-one/sized" in pybuild(root, "images").stdout
    answer_no = pybuild(root, "system", "prune", "-a", stdin=b"n\n")
    assert answer_no.stdout.startswith("WARNING! This will remove:\n  - all images without at least one container")
    assert "day-one/sized" in pybuild(root, "images").stdout
    everything = pybuild(root, "system", "prune", "-a", "-f")
    assert "untagged: day-one/sized:latest" in everything.stdout
    assert "Deleted build cache objects:" in everything.stdout
    assert pybuild(root, "images", "-q", "-a").stdout == ""
    assert not list((root / "snapshots").iterdir())


def _tar_stream(*members: tuple[str, bytes, bytes, str]) -> io.BytesIO:
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w:gz") as archive:
        for name, data, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    stream.seek(0)
    return stream


def test_a_hostile_stdin_context_lands_beneath_its_folder(tmp_path: Path) -> None:
    from buildkit_py.errors import ContextError
    from buildkit_py.stdin_context import context_from_stream

    outside = tmp_path / "outside"
    outside.mkdir()
    regular = tarfile.REGTYPE
    work = tmp_path / "work"
    work.mkdir()
    received = context_from_stream(
        _tar_stream(
            ("Dockerfile", b"FROM scratch\n", regular, ""),
            ("../../escaped-by-dots", b"x", regular, ""),
            ("/escaped-by-absolute-name", b"x", regular, ""),
        ),
        work,
    )
    assert received.dockerfile_text is None
    names = sorted(str(path.relative_to(received.folder)) for path in received.folder.rglob("*"))
    assert names == ["Dockerfile", "escaped-by-absolute-name", "escaped-by-dots"]
    assert not (tmp_path / "escaped-by-dots").exists()

    # A symlink out of the context resolves inside it, where nothing is: refused, and nothing lands outside.
    through_link = _tar_stream(
        ("link", b"", tarfile.SYMTYPE, str(outside)), ("link/through-the-link", b"x", regular, "")
    )
    (tmp_path / "work2").mkdir()
    with pytest.raises(ContextError, match="the build context on stdin is not a valid archive"):
        context_from_stream(through_link, tmp_path / "work2")
    assert list(outside.iterdir()) == []

    (tmp_path / "text").mkdir()
    text = context_from_stream(io.BytesIO(b"FROM scratch\n"), tmp_path / "text")
    assert text.dockerfile_text == b"FROM scratch\n" and list(text.folder.iterdir()) == []
