"""pybuild login / logout: store or remove a registry's credentials in Docker's config.json."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from ..errors import BuildError
from .common import add_transport_options, transport_options


def register(subparsers: Any) -> None:
    login = subparsers.add_parser(
        "login", help="log in to a registry", description="Check credentials with REGISTRY and store them."
    )
    login.add_argument("registry", metavar="REGISTRY")
    login.add_argument("-u", "--username", default=None)
    secret = login.add_mutually_exclusive_group()
    secret.add_argument("-p", "--password", default=None)
    secret.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add_transport_options(login)
    login.set_defaults(func=run_login)

    logout = subparsers.add_parser(
        "logout", help="log out from a registry", description="Remove REGISTRY's stored credentials."
    )
    logout.add_argument("registry", metavar="REGISTRY")
    logout.set_defaults(func=run_logout)


def _registry(text: str) -> str:
    """`https://host:5000/` or `host:5000` -> `host:5000`."""
    text = text.split("://", 1)[-1].rstrip("/")
    return text.split("/", 1)[0] or text


def run_login(args: argparse.Namespace) -> int:
    # lazy: the registry client (httpx) loads when the command runs, not for `--help`
    from ..registry.login import login

    username = args.username
    if args.password_stdin:
        if not username:
            raise BuildError("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    else:
        try:
            if username is None:
                username = input("Username: ") if sys.stdin.isatty() else ""
            password = args.password if args.password is not None else getpass.getpass("Password: ")
        except EOFError:  # no terminal, and standard input ended
            raise BuildError("login needs a username and a password") from None
    if args.password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    if not username or not password:
        raise BuildError("login needs a username and a password")
    path = login(_registry(args.registry), username, password, transport_options(args))
    print(f"Credentials saved in {path}", file=sys.stderr)
    print("Login Succeeded")
    return 0


def run_logout(args: argparse.Namespace) -> int:
    from ..registry.credentials import erase_credentials  # lazy: as in run_login

    registry = _registry(args.registry)
    if erase_credentials(registry):
        print(f"Removing login credentials for {registry}")
    else:
        print(f"Not logged in to {registry}")
    return 0
