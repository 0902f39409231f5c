"""What the user lends a build beyond its context: secrets (`--secret`) and ssh agents (`--ssh`).

BuildKit calls this the session: steps reach these through it while they run, and nothing of it is stored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .secrets import SecretSource, SecretStore, parse_secret
from .ssh import AgentForwarder, SshAgents, SshSource, parse_ssh

__all__ = [
    "AgentForwarder",
    "BuildSession",
    "SecretSource",
    "SecretStore",
    "SshAgents",
    "SshSource",
    "open_session",
    "parse_secret",
    "parse_ssh",
]


@dataclass(frozen=True)
class BuildSession:
    secrets: SecretStore = field(default_factory=SecretStore)
    ssh: SshAgents = field(default_factory=SshAgents)


@contextmanager
def open_session(secrets: tuple[SecretSource, ...] = (), ssh: tuple[SshSource, ...] = ()) -> Iterator[BuildSession]:
    """The session of one build: secret files are checked now, private ssh agents run until the end."""
    store = SecretStore(secrets)
    with SshAgents(ssh) as agents:
        yield BuildSession(secrets=store, ssh=agents)
