"""pybuild run: create a container from an image and start it, in the foreground or detached (-d)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import ContainerError
from .container_common import add_create_options, add_docker_bool, error, run_option_fields


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a command in a new container",
        description="Run a command in a new container (daemonless: a small monitor process per container).",
        add_help=False,
    )
    parser.add_argument("-d", "--detach", action="store_true", help="run in the background and print the id")
    add_docker_bool(parser, "--sig-proxy", default=True, help="forward received signals to the container")
    parser.add_argument("--detach-keys", default=None, help="the keys that detach (default ctrl-p,ctrl-q)")
    add_create_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: already loaded by main's fork_early; kept out of `pybuild --help`
    from ..container.spawn import fork_monitor, take_early_monitor

    monitor = take_early_monitor() or fork_monitor()  # forked first: see container/spawn.py
    monitor.root = args.root

    # lazy: loaded once the monitor is forked, so that the fork comes first
    from ..container.detachkeys import parse_detach_keys

    try:
        detach_keys = parse_detach_keys(args.detach_keys)
    except ContainerError as failure:
        monitor.close()
        error(failure)
        return 125

    # lazy: as parse_detach_keys, after the fork
    from ..container.attach import relay, terminal_size
    from ..container.session import StartFailed

    attached_stdin = args.interactive and not args.detach
    hello: dict[str, object] = {}
    if not args.detach:
        hello = {"stdout": True, "stderr": True, "stdin": attached_stdin}
        if args.tty:
            hello["size"] = terminal_size(0) or terminal_size(1)
    try:
        session, container_id = monitor.run(args.image, args.name, run_option_fields(args, attached_stdin), hello)
    except StartFailed as failure:
        error(failure)
        return failure.code
    if args.detach:
        session.close()
        print(container_id)
        return 0
    try:
        code = relay(session.endpoint(), attached_stdin, args.tty, args.sig_proxy, detach_keys)
    finally:
        session.close()
    if code is None:
        return 0
    sys.stdout.flush()
    return code
