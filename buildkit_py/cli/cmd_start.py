"""pybuild start: start stopped containers; with -a, stay attached to the (one) container's output."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "start", help="start containers", description="Start one or more stopped containers."
    )
    parser.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr and forward signals")
    parser.add_argument("-i", "--interactive", action="store_true", help="attach the container's stdin")
    parser.add_argument("--detach-keys", default=None, help="the keys that detach (default ctrl-p,ctrl-q)")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when `start` runs, not for `--help`
    from ..container.attach import relay, terminal_size
    from ..container.detachkeys import parse_detach_keys
    from ..container.lifecycle import RUNNING_STATES, StartFailed, find, start_container
    from ..container.spawn import fork_monitor
    from ..container.spec import ContainerSpec

    try:
        detach_keys = parse_detach_keys(args.detach_keys)
    except BuildError as failure:
        error(failure)
        return 1
    attach = args.attach or args.interactive
    if attach and len(args.containers) > 1:
        error("you cannot start and attach multiple containers at once")
        return 1
    monitors = [fork_monitor(args.root) for _ in args.containers]  # before the store opens: see container/spawn.py
    store = open_store(args)
    status = 0
    for name, monitor in zip(args.containers, monitors, strict=True):
        try:
            row = find(store, name)
            if row.state in RUNNING_STATES:
                monitor.close()
                if not attach:
                    print(name)
                continue
            spec = ContainerSpec.from_json(row.spec)
            hello: dict[str, object] = {}
            if attach:
                hello = {"stdout": True, "stderr": True, "stdin": args.interactive and spec.open_stdin}
                if spec.tty:
                    hello["size"] = terminal_size(0) or terminal_size(1)
            session = start_container(store, row, hello, monitor)
        except StartFailed as failure:
            error(failure)
            status = failure.code if attach else 1
            continue
        except BuildError as failure:
            monitor.close()
            error(failure)
            status = 1
            continue
        if not attach:
            session.close()
            print(name)
            continue
        try:
            code = relay(session.endpoint(), bool(hello["stdin"]), spec.tty, not spec.tty, detach_keys)
        finally:
            session.close()
        return 0 if code is None else code
    return status
