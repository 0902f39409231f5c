"""pybuild run: create a container from an image and start it, in the foreground or detached (-d)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import EXIT_OWN_ERROR, add_create_options, error, run_options


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a command in a new container",
        description="Run a command in a new container (daemonless: a small monitor process per container).",
        add_help=False,
    )
    parser.add_argument("-d", "--detach", action="store_true", help="run in the background and print the id")
    parser.add_argument(
        "--sig-proxy", default="true", choices=("true", "false"), help="forward received signals to the container"
    )
    add_create_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..container.attach import relay, terminal_size
    from ..container.lifecycle import StartFailed, create_container, start_container
    from ..container.monitor import fork_monitor
    from ..store import default_root

    attached_stdin = args.interactive and not args.detach
    monitor = fork_monitor(args.root or default_root())  # before the store is open: see fork_monitor
    try:
        store = open_store(args)
        row = create_container(store, args.image, run_options(args, attach_stdin=attached_stdin), args.name)
    except BuildError as failure:
        monitor.close()
        error(failure)
        return EXIT_OWN_ERROR
    hello: dict[str, object] = {}
    if not args.detach:
        hello = {"stdout": True, "stderr": True, "stdin": attached_stdin}
        if args.tty:
            hello["size"] = terminal_size(0) or terminal_size(1)
    try:
        session = start_container(store, row, hello, monitor)
    except StartFailed as failure:
        error(failure)
        return failure.code
    except BuildError as failure:
        error(failure)
        return EXIT_OWN_ERROR
    if args.detach:
        session.close()
        print(row.container_id)
        return 0
    try:
        code = relay(session.endpoint(), attached_stdin, args.tty, args.sig_proxy == "true")
    finally:
        session.close()
    if code is None:
        return 0
    sys.stdout.flush()
    return code
