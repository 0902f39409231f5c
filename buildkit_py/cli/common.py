"""What several commands share: the store named by --root, a registry's transport flags, help for a bare group."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..registry.client import TransportOptions
    from ..store import Store


def open_store(args: argparse.Namespace) -> Store:
    from ..store import Store, default_root  # lazy: `--help` and a flag error open no store (sqlite3)

    return Store(args.root or default_root())


def add_transport_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain http and unverified TLS for this registry (loopback registries may use http anyway)",
    )
    parser.add_argument(
        "--ca-cert", type=Path, default=None, help="also trust this CA certificate (PEM); default $PYBUILD_CA_CERT"
    )


def transport_options(args: argparse.Namespace) -> TransportOptions:
    """What `add_transport_options` read."""
    from ..registry.client import TransportOptions  # lazy: only registry commands load the registry client (httpx)

    return TransportOptions(insecure=args.insecure, ca_cert=args.ca_cert)


def help_without_command(parser: argparse.ArgumentParser) -> None:
    """A command group run without its subcommand (`pybuild cache`) prints its help and fails."""

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 1

    parser.set_defaults(func=usage)
