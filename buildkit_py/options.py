"""What a build is asked to do: everything `pybuild build` takes from its flags, as one value.

Kept apart from builder.py, and free of heavy imports, so that the CLI can make one and a no-op rebuild can be
recognised (fastpath.py) without loading the frontend, the solver or the executor."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ContextError

if TYPE_CHECKING:
    from .frontend.named_contexts import NamedContext
    from .registry.client import TransportOptions
    from .remotecache.spec import CacheExport, CacheImport
    from .session import SecretSource, SshSource

__all__ = ["SOURCE_DATE_EPOCH", "BuildOptions", "read_dockerfile"]

SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how: everything `pybuild build` takes from its flags.

    `allow` grants entitlements a Dockerfile asks for: `network.host` (`RUN --network=host`) and
    `security.insecure` (`RUN --security=insecure`). `labels` are added to the image as Docker's `--label` adds them;
    `pull` resolves every base image from its registry even when the store has one by that name; `add_hosts` are
    (name, address) lines of every RUN's /etc/hosts, the address may be `host-gateway`; `platform` is what
    `--platform` asked for: only the platform pybuild builds is accepted. `cache_from` and `cache_to` are caches that travel (BuildKit's
    `--cache-from` and `--cache-to`, see remotecache/spec.py). A build arg `SOURCE_DATE_EPOCH` makes the image
    reproducible: its dates are that time, and the file times of the layers it makes are clamped to it. `secrets` and
    `ssh` are what `RUN --mount=type=secret` and `type=ssh` reach (`--secret`, `--ssh`); they name files, variables
    and sockets, never hold a secret's value."""

    context: Path
    dockerfile: str | Path | None = None
    dockerfile_text: bytes | None = None
    tags: tuple[str, ...] = ()
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    no_cache: bool = False
    no_cache_stages: tuple[str, ...] = ()
    network: str = "default"
    allow: frozenset[str] = frozenset()
    jobs: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    pull: bool = False
    add_hosts: tuple[tuple[str, str], ...] = ()
    platform: str = ""  # --platform: linux/amd64 is the only one pybuild builds
    build_contexts: Mapping[str, NamedContext] = field(
        default_factory=dict
    )  # --build-context NAME=DIR|docker-image://REF
    cache_from: tuple[CacheImport, ...] = ()
    cache_to: tuple[CacheExport, ...] = ()
    registry: TransportOptions | None = None  # how registry caches are reached (--insecure, --ca-cert)
    secrets: tuple[SecretSource, ...] = ()
    ssh: tuple[SshSource, ...] = ()


def read_dockerfile(
    context: Path, dockerfile: str | Path | None, dockerfile_text: bytes | None
) -> tuple[bytes, Path | None, str]:
    """The Dockerfile's bytes, its path (None when read from stdin) and the name errors show."""
    if dockerfile_text is not None:
        return dockerfile_text, None, "Dockerfile"
    path = Path(dockerfile) if dockerfile is not None else context / "Dockerfile"
    if dockerfile is None and not os.path.lexists(path) and os.path.lexists(context / "dockerfile"):
        path = context / "dockerfile"  # the docker CLI's fallback when only the lower-case name exists
    if not path.is_absolute() and dockerfile is not None and not path.exists():
        path = context / path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ContextError(f"failed to read Dockerfile: open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise ContextError(f"failed to read Dockerfile: {path} is a directory") from None
    name = (
        os.path.relpath(path, context)
        if path.is_relative_to(context.resolve()) or not path.is_absolute()
        else str(path)
    )
    return data, path, name if not name.startswith("..") else str(path)
