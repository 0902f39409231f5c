"""COPY and ADD count what they place, in the file sandbox, and report it on a pipe of their own as plain numbers;
no step's process ever holds that pipe."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from helpers import BASE_IMAGE

from buildkit_py.digest import digest_bytes
from buildkit_py.exec.executor import RootfsSpec, SourceTree
from buildkit_py.exec.linux import LinuxExecutor
from buildkit_py.exec.wire import CountsReader, encode_counts
from buildkit_py.solver.ops import Chown, CopyAction
from buildkit_py.solver.progress import ProgressEvent, StepOutput, StepTransfer


def test_counts_are_read_as_two_numbers_a_line_and_nothing_else() -> None:
    reader = CountsReader()
    assert encode_counts(3, 4096) == b"3 4096\n"
    assert reader.feed(b"1 10\n2 2") is not None
    assert reader.feed(b"0\n") == (2, 20)
    assert reader.feed(b"cos\nsystem\n(S'touch x'\ntR.\n-1 5\n3 x\n") is None
    assert reader.feed(b"9" * 100 + b"\n4 40\n") == (4, 40)
    assert reader.feed(b'{"kind": "exit", "status": 0}\n') is None


def test_the_file_sandbox_reports_files_and_bytes(tmp_path: Path) -> None:
    context = tmp_path / "context"
    (context / "data" / "deep").mkdir(parents=True)
    (context / "data" / "a").write_bytes(b"a" * 1000)
    (context / "data" / "deep" / "b").write_bytes(b"b" * 20_000_000)
    (context / "data" / "link").symlink_to("a")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, size in (("x", 300), ("y", 4000)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"t" * size))
    (context / "files.tar").write_bytes(archive.getvalue())
    root = tmp_path / "rootfs"
    for name in ("lower", "upper", "work"):
        (root / name).mkdir(parents=True)
    executor = LinuxExecutor(tmp_path / "state")
    source = digest_bytes(b"context")
    reports: list[tuple[int, int]] = []
    try:
        executor.apply_file_actions(
            RootfsSpec((root / "lower",), root / "upper", root / "work"),
            (
                CopyAction(source, "data", "/app/", chown=Chown("0", "0")),
                CopyAction(source, "files.tar", "/unpacked/", attempt_unpack=True),
            ),
            {str(source): SourceTree(folder=context)},
            lambda files, size: reports.append((files, size)),
        )
    finally:
        executor.close()
    assert reports[-1] == (5, 1000 + 20_000_000 + 4300)  # a, b, the link; x and y from the archive
    assert reports == sorted(reports)
    assert (root / "upper/app/deep/b").stat().st_size == 20_000_000


def test_a_run_after_a_copy_still_holds_fds_0_to_2_only(base_store: object, tmp_path: Path) -> None:
    from buildkit_py.builder import build

    context = tmp_path / "context"
    context.mkdir()
    (context / "file").write_bytes(b"x" * 100_000)
    (context / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nCOPY file /file\n"
        "RUN ls -l /proc/self/fd/ | sed -n 's/.* \\([0-9]*\\) -> \\(.*\\)/fd \\1 \\2/p'\n"
    )
    events: list[ProgressEvent] = []
    build(context, store=base_store, no_cache=True, progress=events.append)  # type: ignore[arg-type]
    text = b"".join(event.data for event in events if isinstance(event, StepOutput)).decode()
    assert [line.split()[1] for line in text.splitlines() if line.startswith("fd ")] == ["0", "1", "2"], text
    transfers = [event for event in events if isinstance(event, StepTransfer)]
    assert (transfers[-1].files, transfers[-1].bytes) == (1, 100_000)
