"""Registry credentials in Docker's config.json: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.

    {"auths": {"127.0.0.1:5000": {"auth": "<base64 of user:password>"}, "https://index.docker.io/v1/": {...}}}

Reading accepts the keys Docker writes (a bare host, or a URL such as `https://host/v1/`) and the `auth` field or
separate `username`/`password`. Writing (login, logout) keeps every other key of the file, and replaces the file
atomically (temp file in the same folder, mode 0600, fsync, rename): a crash never leaves half a config, and the
credentials are never readable by others, not even for a moment.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import RegistryError

__all__ = ["Credentials", "config_path", "erase_credentials", "load_credentials", "save_credentials"]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


def config_path() -> Path:
    folder = os.environ.get("DOCKER_CONFIG")
    return Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"


def _auth_key(registry: str) -> str:
    """The `auths` key Docker uses for a registry."""
    return DOCKER_HUB_KEY if registry in _HUB_NAMES else registry


def _key_host(key: str) -> str:
    """`https://host:5000/v1/` -> `host:5000`; a bare host stays as it is."""
    if "://" in key:
        key = urlsplit(key).netloc
    return key.split("/", 1)[0]


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise RegistryError(f"cannot read {path}: {error}") from None
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError as error:
        raise RegistryError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise RegistryError(f"{path} does not hold a JSON object")
    return value


def _decode(entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            text = base64.b64decode(encoded, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = text.partition(":")
        return Credentials(username, password) if sep else None
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user:
        return Credentials(user, secret)
    return None


def load_credentials(registry: str, path: Path | None = None) -> Credentials | None:
    """The stored credentials for `registry` (a reference's registry, e.g. `docker.io` or `127.0.0.1:5000`)."""
    auths = _read_config(path or config_path()).get("auths")
    if not isinstance(auths, dict):
        return None
    wanted = _auth_key(registry)
    if wanted in auths:
        return _decode(auths[wanted])
    host = _key_host(wanted)
    for key, entry in auths.items():
        if isinstance(key, str) and (_key_host(key) == host or (host in _HUB_NAMES and _key_host(key) in _HUB_NAMES)):
            return _decode(entry)
    return None


def _write_config(path: Path, config: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(config, file, indent="\t")
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, 0o600)
        os.rename(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def save_credentials(registry: str, credentials: Credentials, path: Path | None = None) -> Path:
    path = path or config_path()
    config = _read_config(path)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = config["auths"] = {}
    key = _auth_key(registry)
    for other in [k for k in auths if k != key and _key_host(k) == _key_host(key)]:
        del auths[other]  # an older spelling of the same registry would shadow nothing but confuse
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    auths[key] = {"auth": token}
    _write_config(path, config)
    return path


def erase_credentials(registry: str, path: Path | None = None) -> bool:
    """Remove the registry's entry; False when there was none."""
    path = path or config_path()
    config = _read_config(path)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return False
    host = _key_host(_auth_key(registry))
    matching = [key for key in auths if isinstance(key, str) and _key_host(key) == host]
    if not matching:
        return False
    for key in matching:
        del auths[key]
    _write_config(path, config)
    return True
