"""`pybuild`: a thin command line over the library, with Docker's conventions and exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import BuildError

# Each command lives in cli/cmd_<name>.py with `register(subparsers)`, which sets `func(args) -> int` as default.
COMMAND_MODULES = (
    "build",
    "images",
    "history",
    "inspect",
    "tag",
    "rmi",
    "save",
    "load",
    "import_",
    "push",
    "pull",
    "login",
    "analyze",
    "diff",
    "cache",
    "system",
    "graph",
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pybuild",
        description="Build, store and ship OCI images from Dockerfiles.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="store folder (default: $PYBUILD_ROOT, else /var/lib/pybuild as root, ~/.local/share/pybuild otherwise)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.cmd_{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.cmd_{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        status: int = args.func(args)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
