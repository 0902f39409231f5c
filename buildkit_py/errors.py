"""The errors buildkit_py raises, one tree:

    BuildError                      anything that stops a build or a store command
    ├── DockerfileError             about a Dockerfile; carries a SourceLocation
    │   ├── DockerfileSyntaxError   the text cannot be parsed
    │   ├── InstructionError        parsed, but an instruction is invalid (bad flag, unknown stage, ...)
    │   ├── ExpansionError          ${VAR:?msg} and malformed variable references
    │   └── StepError               a step failed while it ran (RUN exit status, missing COPY source)
    ├── ContextError                the build context (missing, a path escaping it)
    ├── SessionError                a secret or ssh agent given to the build (--secret, --ssh) is unusable
    ├── ExecError                   the sandbox itself failed (namespaces, mounts), not the user's command
    ├── StoreError                  the local store
    │   ├── DigestMismatch          content does not hash to the digest it was stored or sent under
    │   ├── InvalidDigest           a string that is not "algo:hex"
    │   ├── ImageNotFound           no image by that name or id
    │   ├── ContainerNotFound       no container by that name or id (no volume by that name)
    │   └── ConflictError           a compare-and-swap update lost a race
    ├── ContainerError              a container command that cannot be carried out (not running, bad option)
    ├── LayerError                  a layer tar that is corrupt, truncated or hostile
    ├── OutputError                 a file the command was asked to write (-o, --iidfile, --html) cannot be written
    ├── RegistryError               an OCI registry answered with an error
    ├── CacheError                  a cache that travels (--cache-to, --cache-from)
    │   ├── CacheSpecError          a --cache-to or --cache-from flag that cannot be followed
    │   ├── CacheImportError        an imported cache that is missing, corrupt, or from a newer pybuild
    │   └── CacheExportError        writing or pushing the cache failed
    │       └── CarriedLayerError   a layer carried forward from an imported cache cannot be read there
    └── NotReproducible             `build --verify`: a rebuild without the cache gave another image

Every DockerfileError prints as `Dockerfile:7: RUN make: exit status 2` followed by the source line(s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .digest import Digest

__all__ = [
    "BuildError",
    "CacheError",
    "CacheExportError",
    "CacheImportError",
    "CacheSpecError",
    "CarriedLayerError",
    "ConflictError",
    "ContainerError",
    "ContainerNotFound",
    "ContextError",
    "DigestMismatch",
    "DockerfileError",
    "DockerfileSyntaxError",
    "ExecError",
    "ExpansionError",
    "ImageNotFound",
    "InstructionError",
    "InvalidDigest",
    "LayerError",
    "NotReproducible",
    "OutputError",
    "RegistryError",
    "SessionError",
    "SourceLocation",
    "StepError",
    "StoreError",
]


@dataclass(frozen=True)
class SourceLocation:
    """Where an instruction stands: file name, 1-based first and last line, and the original text."""

    file: str
    start_line: int
    end_line: int
    text: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.start_line}"


class BuildError(Exception):
    """Base of every error buildkit_py raises on purpose."""


class DockerfileError(BuildError):
    def __init__(self, message: str, location: SourceLocation | None = None, instruction: str = "") -> None:
        self.message = message
        self.location = location
        self.instruction = instruction
        super().__init__(self.render())

    def render(self) -> str:
        if self.location is None:
            return self.message
        head = f"{self.location}: "
        if self.instruction:
            head += f"{self.instruction}: "
        text = f"{head}{self.message}"
        if self.location.text:
            source = "\n".join(
                f"  {self.location.start_line + offset:>4} | {line}"
                for offset, line in enumerate(self.location.text.splitlines())
            )
            text += "\n" + source
        return text


class DockerfileSyntaxError(DockerfileError):
    pass


class InstructionError(DockerfileError):
    pass


class ExpansionError(DockerfileError):
    pass


class StepError(DockerfileError):
    def __init__(
        self,
        message: str,
        location: SourceLocation | None = None,
        instruction: str = "",
        exit_status: int | None = None,
        output_tail: tuple[str, ...] = (),
    ) -> None:
        self.exit_status = exit_status
        self.output_tail = output_tail
        super().__init__(message, location, instruction)

    def render(self) -> str:
        text = super().render()
        if self.output_tail:
            text += "\n  last output:\n" + "\n".join(f"    {line}" for line in self.output_tail)
        return text


class ContextError(BuildError):
    pass


class SessionError(BuildError):
    pass


class ExecError(BuildError):
    pass


class StoreError(BuildError):
    pass


class DigestMismatch(StoreError):
    pass


class InvalidDigest(StoreError):
    pass


class ImageNotFound(StoreError):
    pass


class ConflictError(StoreError):
    pass


class ContainerNotFound(StoreError):
    pass


class ContainerError(BuildError):
    pass


class LayerError(BuildError):
    pass


class OutputError(BuildError):
    pass


class RegistryError(BuildError):
    pass


class CacheError(BuildError):
    pass


class CacheSpecError(CacheError):
    pass


class CacheImportError(CacheError):
    pass


class CacheExportError(CacheError):
    pass


class CarriedLayerError(CacheExportError):
    """The export drops the records that need `diff_id` and tries again."""

    def __init__(self, message: str, diff_id: Digest) -> None:
        super().__init__(message)
        self.diff_id = diff_id


class NotReproducible(BuildError):
    pass


def at_location(error: BuildError, location: SourceLocation | None, instruction: str) -> BuildError:
    """`error` tied to the step it came from: a DockerfileError gains the location it lacked; any other BuildError
    (a missing context file, a failed sandbox) becomes a StepError that names the step."""
    if location is None:
        return error
    if isinstance(error, DockerfileError):
        if error.location is None:
            error.location = location
            error.instruction = error.instruction or instruction
            error.args = (error.render(),)
        return error
    located = StepError(str(error), location, instruction)
    located.__cause__ = error
    return located
