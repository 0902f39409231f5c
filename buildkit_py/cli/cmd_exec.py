"""pybuild exec: run a command in a running container."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "exec",
        help="run a command in a running container",
        description="Run a command in a running container, in its namespaces and with its hardening.",
    )
    parser.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    parser.add_argument("-e", "--env", action="append", default=[], help="set an environment variable")
    parser.add_argument("-u", "--user", default=None, help="user[:group] (default: the container's)")
    parser.add_argument("-w", "--workdir", default=None, help="working directory (default: the container's)")
    parser.add_argument("--detach-keys", default=None, help="the keys that detach (default ctrl-p,ctrl-q)")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `exec` runs, not for `--help`
    from ..container.detachkeys import parse_detach_keys
    from ..container.execin import ExecFailed, ExecOptions, exec_in_container
    from ..container.lifecycle import find
    from ..container.options import _replace_or_append
    from ..container.process import ProcessConfig
    from ..container.spec import ContainerSpec

    if not args.command:
        error("exec needs a command")
        return 1
    try:
        detach_keys = parse_detach_keys(args.detach_keys)
        store = open_store(args)
        row = find(store, args.container)
        spec = ContainerSpec.from_json(row.spec)
        env = [
            item if "=" in item else f"{item}={os.environ[item]}"
            for item in args.env
            if "=" in item or item in os.environ
        ]
        base = list(spec.env) + (["TERM=xterm"] if args.tty and not spec.tty else [])
        config = ProcessConfig(
            args=tuple(args.command),
            env=tuple(_replace_or_append(base, env)),
            cwd=args.workdir or spec.cwd,
            user=spec.user if args.user is None else args.user,
            hostname=spec.hostname,
            tty=args.tty,
        )
        return exec_in_container(store, row, ExecOptions(config, args.interactive, args.detach, detach_keys))
    except ExecFailed as failure:
        error(failure)
        return failure.code
    except BuildError as failure:
        error(failure)
        return 1
