"""`pybuild login`: check credentials against the registry (GET /v2/, through its token service if it has one),
then save them."""

from __future__ import annotations

from pathlib import Path

from .client import RegistryClient, TransportOptions
from .credentials import Credentials, save_credentials

__all__ = ["login"]


def login(registry: str, username: str, password: str, options: TransportOptions | None = None) -> Path:
    """Raises AuthenticationError when the registry (or its token service) refuses the credentials."""
    credentials = Credentials(username, password)
    with RegistryClient(registry, options, credentials=credentials) as client:
        client.request("GET", "/v2/", scope=None).close()
    return save_credentials(registry, credentials)
