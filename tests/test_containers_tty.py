"""Terminals, driven as a person would: `run -it`, `exec -it` and `attach` in tmux (send-keys, capture-pane), with
Ctrl-C reaching the container's process and Ctrl-P Ctrl-Q detaching. Each test runs its own tmux server."""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from container_helpers import Pybuild, build_base, unique, wait_until
from helpers import BASE_IMAGE


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pybuild]:
    root = tmp_path_factory.mktemp("tty-root")
    build_base(root, tmp_path_factory.mktemp("base"))
    pybuild = Pybuild(root)
    yield pybuild
    pybuild.remove_all()


class Tmux:
    def __init__(self) -> None:
        self.socket = f"pybuild-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def start(self, command: list[str]) -> None:
        line = " ".join(shlex.quote(word) for word in command) + "; echo exit=$?; sleep 600"
        self("new-session", "-d", "-x", "120", "-y", "40", line)

    def screen(self) -> str:
        return self("capture-pane", "-p")

    def shows(self, text: str) -> bool:
        return wait_until(lambda: text in self.screen(), seconds=20)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux()
    yield session
    session.kill()


def test_run_it_ctrl_c_and_detach_then_attach(pb: Pybuild, tmux: Tmux) -> None:
    name = unique()
    tmux.start(pb.argv("run", "-it", "--name", name, BASE_IMAGE, "sh"))
    assert tmux.shows("/ #")
    tmux("send-keys", "tty; echo TERM=$TERM; stty size", "Enter")
    assert tmux.shows("TERM=xterm")
    screen = tmux.screen()
    assert "/dev/pts/0" in screen and "40 120" in screen
    tmux("send-keys", "sleep 60", "Enter")
    assert tmux.shows("# sleep 60")
    time.sleep(0.5)  # pacing, not an assertion: let the shell start sleep before the interrupt
    tmux("send-keys", "C-c")
    assert tmux.shows("^C")
    tmux("send-keys", "echo after-interrupt", "Enter")
    assert tmux.shows("\nafter-interrupt")
    tmux("send-keys", "C-p", "C-q")
    assert tmux.shows("exit=0")
    assert pb.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").startswith("Up")
    tmux.kill()

    again = Tmux()
    try:
        again.start(pb.argv("attach", name))

        def prompt() -> bool:
            again("send-keys", "Enter")  # the shell answers a new line with its prompt once we are attached
            return "/ #" in again.screen()

        assert wait_until(prompt, step=0.3)
        again("send-keys", "echo reattached", "Enter")
        assert again.shows("\nreattached")
        again("send-keys", "exit 4", "Enter")
        assert again.shows("exit=4")
    finally:
        again.kill()
    assert pb.ok("wait", name) == "4\n"
    pb.ok("rm", name)


def test_exec_it(pb: Pybuild, tmux: Tmux) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, BASE_IMAGE, "sleep", "300")
    tmux.start(pb.argv("exec", "-it", name, "sh"))
    assert tmux.shows("/ #")
    tmux("send-keys", "tty; cat /proc/1/cmdline; echo", "Enter")
    assert tmux.shows("sleep300")
    tmux("send-keys", "sleep 60", "Enter")
    assert wait_until(lambda: "sleep 60" in pb.ok("top", name))  # Ctrl-C before it runs would reach the shell
    tmux("send-keys", "C-c")
    tmux("send-keys", "exit 6", "Enter")
    assert tmux.shows("exit=6")
    pb.ok("rm", "-f", name)


def test_attach_without_tty_ctrl_c_stops_the_container(pb: Pybuild, tmux: Tmux) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, "--init", BASE_IMAGE, "sh", "-c", "while true; do echo tick; sleep 0.2; done")
    tmux.start(pb.argv("attach", name))
    assert tmux.shows("tick")
    tmux("send-keys", "C-c")
    assert tmux.shows("exit=130")
    assert wait_until(lambda: pb.ok("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").startswith(
        "Exited (130)"
    ))  # fmt: skip
    pb.ok("rm", name)


def test_detach_keys_for_run_and_attach(pb: Pybuild, tmux: Tmux) -> None:
    name = unique()
    tmux.start(pb.argv("run", "-it", "--detach-keys", "ctrl-a,x", "--name", name, BASE_IMAGE, "sh"))
    assert tmux.shows("/ #")
    tmux("send-keys", "C-p", "C-q", "echo still-attached", "Enter")  # the default keys are just keys now
    assert tmux.shows("\nstill-attached")
    tmux("send-keys", "C-a", "x")
    assert tmux.shows("exit=0")
    assert pb.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").startswith("Up")
    tmux.kill()

    again = Tmux()
    try:
        again.start(pb.argv("attach", "--detach-keys", "ctrl-x", name))

        def prompt() -> bool:
            again("send-keys", "Enter")
            return "/ #" in again.screen()

        assert wait_until(prompt, step=0.3)
        again("send-keys", "C-x")
        assert again.shows("exit=0")
    finally:
        again.kill()
    assert pb.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").startswith("Up")
    pb.ok("rm", "-f", name)


def test_start_interactive_with_a_terminal(pb: Pybuild, tmux: Tmux) -> None:
    name = unique()
    pb.ok("create", "-it", "--name", name, BASE_IMAGE, "sh")
    tmux.start(pb.argv("start", "-i", name))
    assert tmux.shows("/ #")
    tmux("send-keys", "tty; echo started-$((40 + 2))", "Enter")
    assert tmux.shows("started-42")
    assert "/dev/pts/0" in tmux.screen()
    tmux("send-keys", "exit 3", "Enter")
    assert tmux.shows("exit=3")
    assert pb.ok("wait", name) == "3\n"
    pb.ok("rm", name)


def test_attach_sig_proxy_false_ctrl_c_detaches_only_us(pb: Pybuild, tmux: Tmux) -> None:
    name = unique()
    pb.ok("run", "-d", "--name", name, "--init", BASE_IMAGE, "sh", "-c", "while true; do echo tick; sleep 0.2; done")
    tmux.start(pb.argv("attach", "--sig-proxy=false", name))
    assert tmux.shows("tick")
    tmux("send-keys", "C-c")
    assert tmux.shows("exit=")
    assert pb.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").startswith("Up")
    pb.ok("rm", "-f", name)
