"""Build secrets (`pybuild build --secret id=x,src=FILE | id=x,env=VAR`): where each id's value comes from.

A secret's value is read only when a step that mounts it runs, and goes only to that step's sandbox (a file on
the sandbox's private tmpfs, or a variable of the step's process): never to the store, an op, a cache key, the
history or a message. Errors name the id and the source, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import SessionError
from ..gocsv import CsvError, csv_fields

__all__ = ["MAX_SECRET_BYTES", "SecretSource", "SecretStore", "parse_secret"]

MAX_SECRET_BYTES = 500 * 1024  # BuildKit's MaxSecretSize


@dataclass(frozen=True)
class SecretSource:
    """Where the secret `id` comes from: the file `path`, or the environment variable `env` of this process."""

    id: str
    path: str = ""
    env: str = ""


def parse_secret(text: str) -> SecretSource:
    """One `--secret` value, as buildctl and `docker build` read it: `id=x,src=FILE`, `id=x,env=VAR`,
    `id=x,type=file|env[,src=...]`. With neither `src` nor `env`, the variable named `id` if it is set, else the
    file named `id`."""
    secret_type = ""
    secret_id = path = env = ""
    try:
        fields = csv_fields(text)
    except CsvError as error:
        raise SessionError(f"invalid --secret {text!r}: failed to parse csv secret: {error}") from None
    for field in fields:
        key, equals, value = field.partition("=")
        if not equals:
            raise SessionError(f"invalid --secret {text!r}: field '{field}' must be a key=value pair")
        key = key.lower()
        if key == "type":
            if value not in ("file", "env"):
                raise SessionError(f'invalid --secret {text!r}: unsupported secret type "{value}"')
            secret_type = value
        elif key == "id":
            secret_id = value
        elif key in ("source", "src"):
            path = value
        elif key == "env":
            env = value
        else:
            raise SessionError(f"invalid --secret {text!r}: unexpected key '{key}' in '{field}'")
    if secret_type == "env" and not env:
        env, path = path, ""
    if not secret_id:
        raise SessionError(f"invalid --secret {text!r}: secret missing ID")
    return SecretSource(id=secret_id, path=path, env=env)


class SecretStore:
    """The secrets given to a build, by id. Files are checked when the build starts and read when a step needs them."""

    def __init__(self, sources: Iterable[SecretSource] = (), environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._sources: dict[str, SecretSource] = {}
        for source in sources:
            if not source.env and not source.path:
                found = source.id in self._environ
                source = SecretSource(source.id, env=source.id) if found else SecretSource(source.id, path=source.id)
            if source.path:
                _check_file(source)
            self._sources[source.id] = source

    def ids(self) -> frozenset[str]:
        return frozenset(self._sources)

    def get(self, secret_id: str) -> bytes | None:
        """The value of `secret_id`, or None when the build was given no such secret."""
        source = self._sources.get(secret_id)
        if source is None:
            return None
        if source.env:
            return self._environ.get(source.env, "").encode()
        try:
            with open(source.path, "rb") as stream:
                value = stream.read(MAX_SECRET_BYTES + 1)
        except OSError as error:
            raise SessionError(f"cannot read secret {secret_id} from {source.path}: {error.strerror}") from None
        if len(value) > MAX_SECRET_BYTES:
            raise SessionError(_too_big(secret_id))
        return value


def _check_file(source: SecretSource) -> None:
    try:
        size = os.stat(source.path).st_size
    except OSError as error:
        raise SessionError(f"failed to stat {source.path}: {(error.strerror or str(error)).lower()}") from None
    if size > MAX_SECRET_BYTES:
        raise SessionError(_too_big(source.id))


def _too_big(secret_id: str) -> str:
    return f"secret {secret_id} too big. max size {MAX_SECRET_BYTES // 1024}KB"
