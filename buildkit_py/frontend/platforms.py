"""The one platform pybuild builds for, and the automatic platform ARGs BuildKit defines in the global scope.

`BUILDPLATFORM`, `TARGETPLATFORM` and their parts are usable in FROM lines, and in a stage after `ARG NAME`, like
any global ARG (a `--build-arg` of the same name overrides one, as in BuildKit). Build and target are both
linux/amd64: a `--platform` or `FROM --platform` naming anything else is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..image.manifest import oci_architecture

__all__ = ["AUTOMATIC_ARGS", "PLATFORM", "automatic_args", "normalize_platform"]

PLATFORM = "linux/amd64"
AUTOMATIC_ARGS = (
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
)


def normalize_platform(text: str) -> str | None:
    """`os[/arch[/variant]]` as containerd normalises it (`linux/x86_64` is linux/amd64, `amd64` alone too);
    None when it is not linux/amd64."""
    parts = text.strip().lower().split("/")
    if len(parts) == 1 and _is_amd64(parts[0]):
        return PLATFORM
    if len(parts) not in (2, 3) or parts[0] != "linux" or not _is_amd64(parts[1]):
        return None
    if len(parts) == 3 and parts[2] not in ("", "v1"):
        return None
    return PLATFORM


def _is_amd64(architecture: str) -> bool:
    return oci_architecture(architecture) == ("amd64", "")


def automatic_args(target_stage: str, overrides: Mapping[str, str]) -> dict[str, str]:
    """BuildKit's `defaultArgs`: the platform ARGs for build and target, and TARGETSTAGE."""
    os_name, architecture = PLATFORM.split("/")
    values = {
        "BUILDPLATFORM": PLATFORM,
        "BUILDOS": os_name,
        "BUILDOSVERSION": "",
        "BUILDARCH": architecture,
        "BUILDVARIANT": "",
        "TARGETPLATFORM": PLATFORM,
        "TARGETOS": os_name,
        "TARGETOSVERSION": "",
        "TARGETARCH": architecture,
        "TARGETVARIANT": "",
        "TARGETSTAGE": target_stage or "default",
    }
    return {key: overrides.get(key, value) for key, value in values.items()}
