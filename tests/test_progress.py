"""The progress renderers: BuildKit-style plain lines, and tqdm bars that collapse to one line per step."""

from __future__ import annotations

import io

from buildkit_py.cli.progress import PlainProgress, TtyProgress, make_progress, quiet_progress
from buildkit_py.digest import digest_bytes
from buildkit_py.solver.progress import BuildMessage, StepCached, StepDone, StepFailed, StepOutput, StepStarted

OP = digest_bytes(b"op")


def test_plain_lines_are_numbered_and_output_is_never_truncated() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream)
    progress(StepCached(1, "[1/3] COPY a /a", OP))
    progress(StepStarted(2, "[2/3] RUN make", OP, reason="files changed: a"))
    long_line = "x" * 5000
    progress(StepOutput(2, f"first\n{long_line[:2000]}".encode()))
    progress(StepOutput(2, f"{long_line[2000:]}\nlast without newline".encode()))
    progress(StepDone(2, "[2/3] RUN make", OP, 1.25))
    progress(StepFailed(3, "[3/3] RUN test", OP, "Dockerfile:4: RUN test: exit status 1\n  4 | RUN test"))
    progress(BuildMessage("writing image"))
    lines = stream.getvalue().splitlines()
    assert lines[:3] == ["#1 [1/3] COPY a /a", "#1 CACHED", ""]
    assert lines[3:5] == ["#2 [2/3] RUN make", "#2 cache miss: files changed: a"]
    assert lines[5].startswith("#2 ") and lines[5].endswith(" first")
    assert lines[6].startswith("#2 ") and lines[6].endswith(" " + long_line)
    assert lines[7] == "#2 last without newline"
    assert lines[8] == "#2 DONE 1.2s"
    assert "#3 ERROR: Dockerfile:4: RUN test: exit status 1" in lines
    assert lines[-1] == "writing image"


def test_tty_bars_collapse_to_one_line_per_step() -> None:
    stream = io.StringIO()
    progress = TtyProgress(stream)
    progress(StepStarted(1, "[1/1] RUN make", OP))
    progress(StepOutput(1, b"building\n"))
    progress(StepDone(1, "[1/1] RUN make", OP, 0.5))
    text = stream.getvalue()
    assert "#1 building" in text
    assert "#1 [1/1] RUN make DONE 0.5s" in text


def test_auto_is_plain_off_a_terminal_and_quiet_prints_nothing() -> None:
    assert isinstance(make_progress("auto", io.StringIO()), PlainProgress)
    assert make_progress("quiet") is quiet_progress


def test_output_lines_end_at_carriage_returns_and_cannot_move_the_cursor() -> None:
    from buildkit_py.cli.steplines import StepLines

    lines = StepLines()
    assert lines.feed(b"half") == []
    assert lines.feed(b" line\n10%\r20%\r") == ["half line", "10%", "20%"]
    assert lines.feed(b"\n\nred \x1b[31mtext\x1b[0m\x1b[2K\x1b[1A\x1b]0;title\x07 done\x08\n") == [
        "",
        "red \x1b[31mtext\x1b[0m done\x1b[0m",
    ]
    assert lines.feed(b"crlf\r\nlast") == ["crlf"]
    assert lines.flush() == ["last"] and lines.flush() == []


def test_tty_view_shows_copy_counts_and_ends_with_whole_lines() -> None:
    from buildkit_py.solver.progress import StepTransfer

    stream = io.StringIO()
    progress = TtyProgress(stream, tick=0.01)
    progress(StepStarted(1, "[a 1/1] COPY data /data", OP))
    progress(StepStarted(2, "[b 1/1] RUN make", OP))
    progress(StepTransfer(1, 3, 300_000_000))
    live = stream.getvalue().rsplit("\x1b[J", 1)[-1]
    assert "#1 [a 1/1] COPY data /data" in live and "3 files, 300MB" in live and "#2 [b 1/1] RUN make" in live
    progress(StepOutput(2, b"half"))
    progress(StepTransfer(1, 8, 800_000_000))
    progress(StepDone(1, "[a 1/1] COPY data /data", OP, 4.0))
    progress(StepDone(2, "[b 1/1] RUN make", OP, 4.0))
    final = stream.getvalue().rsplit("\x1b[J", 1)[-1]
    assert final == "#2 half\n#2 [b 1/1] RUN make DONE 4.0s\n"
    assert "#1 [a 1/1] COPY data /data DONE 4.0s (8 files, 800MB)\n" in stream.getvalue()
