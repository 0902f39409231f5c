"""pybuild attach: attach our terminal (or stdio) to a running container; Ctrl-P Ctrl-Q (or --detach-keys) detaches."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BuildError
from .common import open_store
from .container_common import add_docker_bool, error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "attach",
        help="attach to a running container",
        description="Attach local standard input, output and error to a running container.",
    )
    parser.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    add_docker_bool(parser, "--sig-proxy", default=True, help="forward received signals")
    parser.add_argument("--detach-keys", default=None, help="the keys that detach (default ctrl-p,ctrl-q)")
    parser.add_argument("container", metavar="CONTAINER")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the container machinery (70 modules) loads when the command runs, not for `--help`
    from ..container.attach import relay, terminal_size
    from ..container.detachkeys import parse_detach_keys
    from ..container.lifecycle import RUNNING_STATES, connect, find, reconcile
    from ..container.spec import ContainerSpec

    try:
        detach_keys = parse_detach_keys(args.detach_keys)
        store = open_store(args)
        row = find(store, args.container)
    except BuildError as failure:
        error(failure)
        return 1
    if row.state not in RUNNING_STATES:
        error("You cannot attach to a stopped container, start it first")
        return 1
    spec = ContainerSpec.from_json(row.spec)
    stdin = spec.open_stdin and not args.no_stdin
    hello: dict[str, object] = {"stdout": True, "stderr": True, "stdin": stdin}
    if spec.tty:
        hello["size"] = terminal_size(0) or terminal_size(1)
    session = connect(store, row, hello)
    if session is None:
        error("You cannot attach to a stopped container, start it first")
        return 1
    try:
        code = relay(session.endpoint(), stdin, spec.tty, args.sig_proxy, detach_keys)
    finally:
        session.close()
    if code is None:
        current = store.containers.get(row.container_id)
        if current is not None and reconcile(store, current).state == "exited":
            return current.exit_code
        return 0
    return code
