"""How long a registry request may take: an overall deadline, on top of the per-operation socket timeout.

A socket timeout bounds each read, write and connect; a registry that sends one byte every few seconds never trips
it, and would keep a pull waiting forever. So every request also runs within a deadline, and each socket operation
(see transport.py) waits at most until then:

- a request that moves no blob (ping, token, manifest, HEAD, mount, the start of an upload) must be answered, body
  included, within $PYBUILD_REGISTRY_TIMEOUT seconds (default 60);
- a blob transfer of `size` bytes (a blob GET, an upload's PUT or PATCH) gets size / $PYBUILD_REGISTRY_MIN_RATE
  seconds more (default 32 KiB/s: a 100 MiB layer may take 53 minutes, a 1 GiB one about 9 hours);
- no single connect, read or write waits longer than $PYBUILD_REGISTRY_TIMEOUT: a registry that goes silent fails
  long before its deadline.

A deadline covers the whole exchange: connecting and TLS, sending the body, the response headers, redirects, and
the body to its end. A token request on the way has a deadline of its own. Name resolution is not covered (the
resolver cannot be interrupted); the system resolver has timeouts of its own.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ..errors import RegistryError

__all__ = [
    "MIN_RATE_ENV",
    "TIMEOUT_ENV",
    "Deadline",
    "current_deadline",
    "default_min_rate",
    "default_timeout",
    "running_within",
]

TIMEOUT_ENV = "PYBUILD_REGISTRY_TIMEOUT"
MIN_RATE_ENV = "PYBUILD_REGISTRY_MIN_RATE"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MIN_RATE = 32 * 1024.0


def _positive_from_env(name: str, default: float, unit: str) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise RegistryError(f"${name} must be a positive number of {unit}, not {text!r}")
    return value


def default_timeout() -> float:
    return _positive_from_env(TIMEOUT_ENV, DEFAULT_TIMEOUT, "seconds")


def default_min_rate() -> float:
    return _positive_from_env(MIN_RATE_ENV, DEFAULT_MIN_RATE, "bytes per second")


@dataclass(frozen=True)
class Deadline:
    """`seconds` from when it was made; `expires` on the time.monotonic() clock."""

    seconds: float
    expires: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def passed(self) -> bool:
        return self.remaining() <= 0


_CURRENT: ContextVar[Deadline | None] = ContextVar("registry_deadline", default=None)


def current_deadline() -> Deadline | None:
    return _CURRENT.get()


@contextmanager
def running_within(deadline: Deadline) -> Iterator[None]:
    """Socket operations in this block wait at most until `deadline` (blocks nest: the inner one applies)."""
    token = _CURRENT.set(deadline)
    try:
        yield
    finally:
        _CURRENT.reset(token)
