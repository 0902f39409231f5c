"""Container names: Docker's rule for a given name, and a random `adjective_surname` when none is given."""

from __future__ import annotations

import random
import re

from ..errors import ContainerError

__all__ = ["check_name", "random_name"]

_VALID = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_ADJECTIVES = (
    "admiring", "brave", "calm", "clever", "dazzling", "eager", "elegant", "festive", "focused", "gallant",
    "happy", "hopeful", "jolly", "keen", "kind", "lucid", "modest", "nifty", "optimistic", "peaceful",
    "quirky", "relaxed", "serene", "sharp", "stoic", "tender", "trusting", "upbeat", "vibrant", "wizardly",
)  # fmt: skip
_SURNAMES = (
    "agnesi", "babbage", "bohr", "curie", "darwin", "dijkstra", "euler", "fermat", "galois", "hopper",
    "hypatia", "johnson", "kepler", "knuth", "lamarr", "lovelace", "meitner", "noether", "pascal", "ritchie",
    "shannon", "thompson", "turing", "wozniak", "yonath", "zhukovsky", "lumiere", "mirzakhani", "ramanujan", "tesla",
)  # fmt: skip


def check_name(name: str) -> str:
    if not _VALID.fullmatch(name):
        raise ContainerError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.removeprefix("/")


def random_name(attempt: int = 0) -> str:
    """A name to show, not a secret (Docker draws it with math/rand)."""
    name = f"{random.choice(_ADJECTIVES)}_{random.choice(_SURNAMES)}"
    return f"{name}{random.randrange(10)}" if attempt else name
