"""What the container commands share: `run`/`create` options, Docker's error output and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ..errors import BuildError

EXIT_OWN_ERROR = 125  # docker run/create: the error is pybuild's (bad option, unknown image), not the command's


_BOOL_WORDS = {"1": True, "t": True, "T": True, "true": True, "True": True, "TRUE": True}  # Go's strconv.ParseBool
_BOOL_WORDS |= {"0": False, "f": False, "F": False, "false": False, "False": False, "FALSE": False}


def add_docker_bool(parser: argparse.ArgumentParser, *names: str, default: bool, help: str) -> None:
    """A boolean flag as Docker's CLI has it: `--pause` alone is true, `--pause=false` sets it, and it never takes
    the next word (`commit --pause CONTAINER`). argparse matches a whole `--pause=false` against the option strings
    before it splits at "=", so each NAME=WORD is an option of its own."""
    dest = names[-1].lstrip("-").replace("-", "_")
    usage = f"{help} (default {str(default).lower()}; {names[-1]}=false to turn it off)"
    parser.add_argument(*names, dest=dest, action="store_const", const=True, default=default, help=usage)
    for word, value in _BOOL_WORDS.items():
        spelled = [f"{name}={word}" for name in names]
        parser.add_argument(*spelled, dest=dest, action="store_const", const=value, help=argparse.SUPPRESS)


def add_create_options(parser: argparse.ArgumentParser) -> None:
    """The options `run` and `create` share (Docker's names; `-h` is --hostname there, so help is --help only)."""
    add = parser.add_argument
    add("--help", action="help", help="show this help message and exit")
    add("-i", "--interactive", action="store_true", help="keep stdin open (attached in the foreground)")
    add("-t", "--tty", action="store_true", help="allocate a terminal")
    add("--name", help="the container's name")
    add("--rm", dest="auto_remove", action="store_true", help="remove the container when it exits")
    add("-e", "--env", action="append", default=[], help="set an environment variable (NAME=VALUE, or NAME)")
    add("--env-file", action="append", default=[], help="read environment variables from a file")
    add("-w", "--workdir", default="", help="working directory inside the container")
    add("-u", "--user", default=None, help="user[:group] to run as")
    add("--entrypoint", default=None, help="override the image's ENTRYPOINT")
    add("-h", "--hostname", default="", help="the container's host name")
    add("-p", "--publish", action="append", default=[], help="publish a port: [[IP:][HOST]:]CONTAINER[/udp]")
    add("-P", "--publish-all", action="store_true", help="publish every port the image exposes, on random ports")
    add("-v", "--volume", action="append", default=[], help="HOST:CTR[:ro], NAME:CTR[:ro] or /CTR")
    add("--mount", action="append", default=[], help="type=bind|volume|tmpfs,source=...,target=...[,readonly]")
    add("--tmpfs", action="append", default=[], help="a tmpfs: /path[:size=64m,mode=1777]")
    add("--network", "--net", default="default", help="default (own namespace, outbound access), none or host")
    add("--read-only", action="store_true", help="mount the container's root read-only")
    add("--init", action="store_true", help="run a small init as PID 1 that reaps zombies and forwards signals")
    add("--stop-signal", default="", help="the signal `stop` sends (default: the image's, else SIGTERM)")
    add("--stop-timeout", type=int, default=None, help="seconds `stop` waits before SIGKILL (default 10)")
    add("-l", "--label", action="append", default=[], help="set a label (KEY=VALUE)")
    add("image", metavar="IMAGE")
    add("command", nargs=argparse.REMAINDER, metavar="COMMAND")


def run_option_fields(args: argparse.Namespace, attach_stdin: bool = False) -> dict[str, object]:
    """The fields of `container.options.RunOptions` from `run`/`create` flags, as plain data (`run` sends them to
    its monitor, which creates the container)."""
    return {
        "command": list(args.command),
        "entrypoint": args.entrypoint,
        "env": list(args.env),
        "env_files": list(args.env_file),
        "workdir": args.workdir,
        "user": args.user,
        "hostname": args.hostname,
        "ports": list(args.publish),
        "volumes": list(args.volume),
        "mounts": list(args.mount),
        "tmpfs": list(args.tmpfs),
        "network": args.network,
        "read_only": args.read_only,
        "init": args.init,
        "stop_signal": args.stop_signal,
        "stop_timeout": args.stop_timeout,
        "labels": list(args.label),
        "tty": args.tty,
        "interactive": args.interactive,
        "auto_remove": args.auto_remove,
        "attach_stdin": attach_stdin,
        "publish_all": args.publish_all,
    }


def run_options(args: argparse.Namespace, attach_stdin: bool = False) -> Any:
    from ..container.options import RunOptions  # lazy: only `run` and `create` parse run options

    return RunOptions.from_fields(run_option_fields(args, attach_stdin))


def error(message: object) -> None:
    print(f"Error: {message}", file=sys.stderr)


def for_each(names: list[str], action: Callable[[str], object]) -> int:
    """Docker's multi-container commands: act on each, report each failure, fail if any did."""
    status = 0
    for name in names:
        try:
            action(name)
        except BuildError as failure:
            error(failure)
            status = 1
    return status


def print_pruned(heading: str, removed: list[tuple[str, int]]) -> None:
    """Docker's prune report: the heading and one name a line when anything went, then the space reclaimed."""
    from ..units import docker_size  # lazy: `run` loads this module and never prints a size

    if removed:
        print(heading)
        for name, _ in removed:
            print(name)
        print()
    print(f"Total reclaimed space: {docker_size(sum(size for _, size in removed), precision=4)}")
