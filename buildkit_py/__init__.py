"""buildkit_py: a Dockerfile-compatible image build engine.

    result = buildkit_py.build("path/to/context", tags=["app:1"], build_args={"V": "2"})

Names are loaded on first use, so that the sandbox processes, which import this package, start quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

from .dataclass_cache import install as _install_dataclass_cache

_install_dataclass_cache()

__version__ = "0.1.0"

_EXPORTS = {
    "build": "builder",
    "explain": "builder",
    "check": "builder",
    "CheckResult": "checking",
    "plan_build": "builder",
    "BuildResult": "builder",
    "Store": "store",
    "default_root": "store",
    "Digest": "digest",
    "ImageConfig": "image.config",
    "ContainerConfig": "image.config",
    "parse_dockerfile": "frontend.parser",
    "BuildError": "errors",
    "DockerfileError": "errors",
    "StepError": "errors",
    "StoreError": "errors",
    "ImageNotFound": "errors",
}

__all__ = [
    "BuildError",
    "BuildResult",
    "CheckResult",
    "ContainerConfig",
    "Digest",
    "DockerfileError",
    "ImageConfig",
    "ImageNotFound",
    "StepError",
    "Store",
    "StoreError",
    "build",
    "check",
    "default_root",
    "explain",
    "parse_dockerfile",
    "plan_build",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'buildkit_py' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
