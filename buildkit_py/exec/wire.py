"""What a sandbox reports back to the executor: one small JSON document, never code.

The sandbox's own process writes it after the step's processes are gone, on a pipe they never held. Even so it is
read as untrusted data: a size cap, a closed set of kinds, and errors rebuilt only as classes named here, from plain
strings and numbers. An answer that does not fit is an ExecError, never an exception of the reader's choosing.

    {"kind": "exit", "status": 0}
    {"kind": "ok"}
    {"kind": "error", "class": "StepError", "message": "...", "location": {...}, "instruction": "COPY", ...}

A file sandbox (COPY, ADD) also reports how far it got, on a pipe of its own: one line of two decimal numbers per
report, files and bytes placed so far (`12 6291456\n`). The reader keeps the last well-formed line and drops anything
else; a line can carry nothing but two numbers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import (
    BuildError,
    ContextError,
    DockerfileError,
    ExecError,
    InstructionError,
    LayerError,
    SourceLocation,
    StepError,
)
from .users import UserNotFound

__all__ = [
    "MAX_ANSWER_BYTES",
    "CountsReader",
    "SandboxAnswer",
    "decode_answer",
    "encode_counts",
    "encode_error",
    "encode_exit",
    "encode_ok",
]

MAX_ANSWER_BYTES = 1 << 20
_PLAIN_ERRORS: dict[str, type[BuildError]] = {
    "ExecError": ExecError,
    "UserNotFound": UserNotFound,
    "ContextError": ContextError,
    "LayerError": LayerError,
}
_DOCKERFILE_ERRORS: dict[str, type[DockerfileError]] = {"StepError": StepError, "InstructionError": InstructionError}


@dataclass(frozen=True)
class SandboxAnswer:
    """`kind` is "exit" (with `status`) or "ok"; an "error" answer is raised by decode_answer instead."""

    kind: str
    status: int = 0


def encode_exit(status: int) -> bytes:
    return json.dumps({"kind": "exit", "status": status}).encode()


def encode_ok() -> bytes:
    return b'{"kind": "ok"}'


def _message_of(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"
    return f"{type(exc).__name__}: {exc}"


def encode_error(exc: BaseException) -> bytes:
    """A BuildError the reader knows keeps its class and fields; anything else becomes an ExecError."""
    document: dict[str, Any]
    name = type(exc).__name__
    if isinstance(exc, DockerfileError) and _DOCKERFILE_ERRORS.get(name) is type(exc):
        location = exc.location
        document = {
            "kind": "error",
            "class": name,
            "message": exc.message,
            "instruction": exc.instruction,
            "location": None
            if location is None
            else {
                "file": location.file,
                "start_line": location.start_line,
                "end_line": location.end_line,
                "text": location.text,
            },
        }
        if isinstance(exc, StepError):
            document["exit_status"] = exc.exit_status
            document["output_tail"] = list(exc.output_tail)
    elif isinstance(exc, BuildError) and _PLAIN_ERRORS.get(name) is type(exc):
        document = {"kind": "error", "class": name, "message": str(exc)}
    else:
        document = {"kind": "error", "class": "ExecError", "message": f"sandbox: {_message_of(exc)}"}
    return json.dumps(document).encode()


def _field(document: dict[str, Any], name: str, kind: type, optional: bool = False) -> Any:
    value = document.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ExecError(f"the sandbox sent a malformed answer (field {name!r})")
    return value


def _location(value: Any) -> SourceLocation | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ExecError("the sandbox sent a malformed answer (field 'location')")
    return SourceLocation(
        file=_field(value, "file", str),
        start_line=_field(value, "start_line", int),
        end_line=_field(value, "end_line", int),
        text=_field(value, "text", str),
    )


def _error(document: dict[str, Any]) -> BuildError:
    name = _field(document, "class", str)
    message = _field(document, "message", str)
    plain = _PLAIN_ERRORS.get(name)
    if plain is not None:
        return plain(message)
    if name == "StepError":
        tail = _field(document, "output_tail", list)
        if not all(isinstance(line, str) for line in tail):
            raise ExecError("the sandbox sent a malformed answer (field 'output_tail')")
        return StepError(
            message,
            _location(document.get("location")),
            _field(document, "instruction", str),
            exit_status=_field(document, "exit_status", int, optional=True),
            output_tail=tuple(tail),
        )
    if name == "InstructionError":
        return InstructionError(message, _location(document.get("location")), _field(document, "instruction", str))
    raise ExecError(f"the sandbox sent an unknown error class {name[:64]!r}")


def decode_answer(data: bytes) -> SandboxAnswer:
    """The answer in `data`; raises the error it carries, or ExecError when it is not a well-formed answer."""
    if len(data) > MAX_ANSWER_BYTES:
        raise ExecError(f"the sandbox sent an answer of {len(data)} bytes, more than {MAX_ANSWER_BYTES}")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ExecError("the sandbox sent an answer that is not JSON") from None
    if not isinstance(document, dict):
        raise ExecError("the sandbox sent a malformed answer")
    kind = document.get("kind")
    if kind == "exit":
        return SandboxAnswer("exit", _field(document, "status", int))
    if kind == "ok":
        return SandboxAnswer("ok")
    if kind == "error":
        raise _error(document)
    raise ExecError("the sandbox sent an answer of unknown kind")


_COUNTS_LINE = re.compile(rb"(\d{1,18}) (\d{1,18})")
_MAX_COUNTS_LINE = 40


def encode_counts(files: int, size: int) -> bytes:
    """A progress line: files and bytes placed so far. Shorter than PIPE_BUF, so one write is never split."""
    return b"%d %d\n" % (files, size)


class CountsReader:
    """The executor's side of the progress pipe: `feed` what was read, get the latest (files, bytes) it held."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> tuple[int, int] | None:
        *lines, rest = (self._partial + data).split(b"\n")
        self._partial = rest if len(rest) <= _MAX_COUNTS_LINE else b""
        latest = None
        for line in lines:
            match = _COUNTS_LINE.fullmatch(line)
            if match is not None:
                latest = (int(match.group(1)), int(match.group(2)))
        return latest
