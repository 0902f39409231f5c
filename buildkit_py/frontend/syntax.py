"""The `# syntax=` directive and the `BUILDKIT_SYNTAX` build argument: which frontend reads the Dockerfile.

pybuild has one frontend, its own, which follows `docker/dockerfile:1`. A Dockerfile that names a 1.x release of
`docker/dockerfile` (any registry spelling of Docker Hub, `-labs` included) gets it; one that names any other
frontend image is refused, naming the image, since pybuild cannot run a frontend image. `BUILDKIT_SYNTAX` wins
over the directive, as in BuildKit, and `dockerfile.v0` there means the built-in frontend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import DockerfileSyntaxError, SourceLocation
from .parser import ParsedDockerfile

__all__ = ["SYNTAX_BUILD_ARG", "check_syntax", "is_own_frontend"]

SYNTAX_BUILD_ARG = "BUILDKIT_SYNTAX"
_BUILT_IN = "dockerfile.v0"
_OWN_FRONTEND = re.compile(
    r"(?:(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/)?"
    r"docker/dockerfile(?:-upstream)?"
    r"(?::(?:latest|labs|1(?:\.[0-9]+){0,2}(?:-labs)?))?"
    r"(?:@sha256:[0-9a-f]{64})?"
)


def is_own_frontend(reference: str) -> bool:
    """Whether `reference` names a frontend pybuild's own stands for."""
    return reference == _BUILT_IN or _OWN_FRONTEND.fullmatch(reference) is not None


def _refusal(reference: str, where: str) -> str:
    return (
        f"unsupported frontend image {reference!r} in {where}: pybuild builds with its own Dockerfile frontend, "
        "which follows docker/dockerfile:1 (use that, or remove it)"
    )


def check_syntax(parsed: ParsedDockerfile, build_args: Mapping[str, str]) -> None:
    """Raise DockerfileSyntaxError when the Dockerfile asks for a frontend other than pybuild's own."""
    if SYNTAX_BUILD_ARG in build_args:
        reference = build_args[SYNTAX_BUILD_ARG].strip().split(" ", 1)[0]
        if not is_own_frontend(reference):
            raise DockerfileSyntaxError(_refusal(reference, f"the build argument {SYNTAX_BUILD_ARG}"))
        return
    value = parsed.directives.get("syntax")
    if value is None:
        return
    reference = value.split(" ", 1)[0]
    if not is_own_frontend(reference):
        line = parsed.directive_lines.get("syntax", 1)
        location = SourceLocation(parsed.filename, line, line, f"# syntax={value}")
        raise DockerfileSyntaxError(_refusal(reference, "the syntax directive"), location)
