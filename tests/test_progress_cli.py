"""Build progress as a user sees it: the plain log of two stages that run at once (every line keeps its `#N`, no two
lines are joined), and the terminal view in a real terminal (tmux), where a large COPY's byte counter moves and a
quiet step's timer ticks."""

from __future__ import annotations

import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_helpers import Pybuild, build_base, unique, wait_until
from helpers import BASE_IMAGE


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pybuild]:
    root = tmp_path_factory.mktemp("progress-root")
    build_base(root, tmp_path_factory.mktemp("base"))
    yield Pybuild(root)


def _noisy_stage(name: str) -> str:
    """A stage whose RUN writes what breaks naive logs: half lines finished later, carriage returns, cursor moves."""
    return (
        f"FROM {BASE_IMAGE} AS {name}\n"
        f"RUN for i in 1 2 3 4 5 6; do printf '{name}%s-start' $i; sleep 0.05; printf ' {name}%s-end\\n' $i; "
        f"printf '{name}%s-bar\\r' $i; printf '\\033[2K\\033[1A{name}%s-moved\\n' $i; done; printf '{name}-last'\n"
    )


def _expected_output(name: str) -> list[str]:
    lines = []
    for i in range(1, 7):
        lines += [f"{name}{i}-start {name}{i}-end", f"{name}{i}-bar", f"{name}{i}-moved"]
    return [*lines, f"{name}-last"]


def test_plain_log_of_parallel_stages_keeps_every_prefix(pb: Pybuild, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "big").write_bytes(b"\0" * 3_000_000)
    (context / "Dockerfile").write_text(
        _noisy_stage("a")
        + _noisy_stage("b")
        + f"FROM {BASE_IMAGE}\nCOPY --from=a /bin/busybox /a\nCOPY --from=b /bin/busybox /b\nCOPY big /big\n"
    )
    result = pb.run("build", "--progress=plain", "--no-cache", "-t", unique("progress") + ":1", str(context))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    step_line = re.compile(
        r"#(?P<number>\d+) (?:"
        r"\[[^\]]+\] (?:RUN|COPY) .*"  # the step's name
        r"|cache miss: cache disabled \(--no-cache\)"
        r"|\d+\.\d{3} (?P<output>.*)"  # an output line with its time
        r"|(?P<last>[ab]-last)"  # the output's unended last line, printed when the step ends
        r"|copied \d+ files?, [\d.]+[kMG]?B"
        r"|DONE \d+\.\ds"
        r")"
    )
    outputs: dict[str, list[str]] = {}
    numbers: set[str] = set()
    for line in lines:
        if not line or line.startswith(("writing image sha256:", "naming to ")):
            continue
        match = step_line.fullmatch(line)
        assert match is not None, f"a line without its #N, or two lines joined: {line!r}\n{result.stderr}"
        numbers.add(match["number"])
        text = match["output"] or match["last"]
        if text is not None:
            outputs.setdefault(match["number"], []).append(text)
    assert sorted(outputs.values()) == [_expected_output("a"), _expected_output("b")], result.stderr
    assert len(numbers) == 5
    assert "copied 1 file, 3.00MB" in result.stderr
    done = [line for line in lines if " DONE " in line]
    assert len(done) == 5
    for index, line in enumerate(lines):
        if " DONE " in line:
            assert index + 1 == len(lines) or lines[index + 1] == "", "a DONE line is followed by a blank line"


class Tmux:
    """A tmux server of the test's own (`-L`), running one command in a pane of known size."""

    def __init__(self) -> None:
        self.socket = f"pybuild-progress-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def start(self, command: list[str], width: int = 150) -> None:
        line = " ".join(shlex.quote(word) for word in command) + "; echo exit=$?; sleep 600"
        self("new-session", "-d", "-x", str(width), "-y", "50", line)

    def screen(self) -> str:
        return self("capture-pane", "-p")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux()
    yield session
    session.kill()


_COPY_LIVE = re.compile(r"#(\d+) \[[^\]]+\] COPY data /data +(\d+) files?, ([\d.]+[kMG]?B) +\S+/s +(\d\d:\d\d)")
_SLEEP_LIVE = re.compile(r"#(\d+) \[quiet [^\]]+\] RUN sleep 4 +(\d\d):(\d\d)")


def test_terminal_view_shows_bytes_moving_and_a_ticking_timer(pb: Pybuild, tmux: Tmux, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    (context / "data").mkdir(parents=True)
    for index in range(8):
        with open(context / "data" / f"part{index}", "wb") as part:
            part.truncate(100_000_000)  # 800 MB in all, sparse here, written out in full by the COPY
    (context / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE} AS quiet\nRUN sleep 4\n"
        f"FROM {BASE_IMAGE}\nCOPY data /data\nCOPY --from=quiet /bin/busybox /quiet\n"
    )
    tmux.start(pb.argv("build", "--no-cache", "-t", unique("progress") + ":1", str(context)))
    seen_bytes: set[str] = set()
    seen_timers: set[str] = set()

    def copying_moved_and_timer_ticked() -> bool:
        screen = tmux.screen()
        seen_bytes.update(match[2] for match in _COPY_LIVE.findall(screen))
        seen_timers.update(f"{match[1]}:{match[2]}" for match in _SLEEP_LIVE.findall(screen))
        return len(seen_bytes) >= 2 and len(seen_timers) >= 2

    assert wait_until(copying_moved_and_timer_ticked, seconds=180, step=0.01), (seen_bytes, seen_timers, tmux.screen())
    assert wait_until(lambda: "exit=" in tmux.screen(), seconds=180), tmux.screen()
    screen = [line for line in tmux.screen().splitlines() if line.strip()]
    assert screen[-1] == "exit=0", screen
    for line in screen[:-1]:
        assert re.match(r"#\d+ ", line) or line.startswith(("writing image", "naming to", "Successfully")), line
    assert any(
        re.fullmatch(r"#\d+ \[\S+ 2/3\] COPY data /data DONE \d+\.\ds \(8 files, 800MB\)", line) for line in screen
    )
    assert any(re.fullmatch(r"#\d+ \[quiet 2/2\] RUN sleep 4 DONE \d+\.\ds", line) for line in screen)
