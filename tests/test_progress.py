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
