"""Registry authentication: anonymous, Basic, and Bearer tokens from a token service.

A registry tells how to authenticate in a 401's `WWW-Authenticate` header:

    Basic realm="Registry Realm"
    Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull"

For Bearer, a token is fetched from the realm with `?service=S&scope=S1&scope=S2` (with Basic credentials when we
have some; anonymously otherwise) and cached per scope until it expires. The scheme learned from the first challenge
is used up front on later requests, so each scope costs one token request and no extra 401.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from ..errors import RegistryError
from .credentials import Credentials

__all__ = ["AuthenticationError", "Authenticator", "Challenge", "parse_challenges", "repository_scope"]

_DEFAULT_TOKEN_LIFETIME = 60
_EXPIRY_MARGIN = 10
_PARAM_RE = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)')

TokenFetcher = Callable[[str, Mapping[str, str]], tuple[int, bytes]]


class AuthenticationError(RegistryError):
    """401 or 403: missing or wrong credentials, or a token without the scope the request needs."""


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    params: Mapping[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="x",service="y", Basic realm="z"` -> two challenges (quoted values may hold commas)."""
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        match = re.compile(r"\s*([A-Za-z][\w-]*)\s*").match(header, position)
        if match is None:
            break
        scheme = match.group(1).lower()
        position = match.end()
        params: dict[str, str] = {}
        while position < len(header):
            param = _PARAM_RE.match(header, position)
            if param is None:
                break
            value = param.group(2) if param.group(2) is not None else param.group(3)
            params[param.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            position = param.end()
        challenges.append(Challenge(scheme, params))
    return challenges


def repository_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


class Authenticator:
    """Adds the Authorization header for a request with a given scope, learning the scheme from challenges."""

    def __init__(self, host: str, credentials: Credentials | None, fetch_token: TokenFetcher) -> None:
        self.host = host
        self.credentials = credentials
        self._fetch = fetch_token
        self._scheme: str | None = None
        self._bearer: Mapping[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self.token_requests = 0

    def learn(self, header: str) -> None:
        """Remember the scheme of a challenge without fetching anything yet."""
        for challenge in parse_challenges(header):
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                self._scheme, self._bearer = "bearer", challenge.params
                return
            if challenge.scheme == "basic":
                self._scheme = "basic"
                return

    def authorization(self, scope: str | None) -> str | None:
        """The header value for a request needing `scope`, fetching a token when the registry wants one."""
        if self._scheme == "basic":
            return self._basic()
        if self._scheme == "bearer":
            token = self._token(scope or "")
            return f"Bearer {token}" if token else None
        return None

    def on_challenge(self, header: str, scope: str | None) -> bool:
        """After a 401: True when a retry can succeed (a new scheme or a token for a wider scope was obtained)."""
        challenges = parse_challenges(header)
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.params.get("realm")), None)
        if bearer is not None:
            wanted = " ".join(
                s for s in dict.fromkeys([*(scope or "").split(), *bearer.params.get("scope", "").split()])
            )
            known = self._tokens.get(wanted)
            if self._scheme == "bearer" and known is not None and dict(self._bearer) == dict(bearer.params):
                return False  # the token we sent for this very scope was refused
            self._scheme, self._bearer = "bearer", bearer.params
            self._tokens.pop(wanted, None)
            return self._token(wanted, base_scope=scope or "") is not None
        if any(c.scheme == "basic" for c in challenges):
            if self._scheme == "basic" or self.credentials is None:
                return False
            self._scheme = "basic"
            return True
        return False

    def _basic(self) -> str | None:
        if self.credentials is None:
            return None
        raw = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _token(self, scope: str, base_scope: str | None = None) -> str | None:
        cached = self._tokens.get(scope)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        query: list[tuple[str, str]] = []
        if self._bearer.get("service"):
            query.append(("service", self._bearer["service"]))
        query.extend(("scope", part) for part in scope.split())
        realm = self._bearer["realm"]
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        headers: dict[str, str] = {}
        basic = self._basic()
        if basic is not None:
            headers["Authorization"] = basic
        self.token_requests += 1
        status, body = self._fetch(url, headers)
        if status in (401, 403):
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
            raise AuthenticationError(
                f"token service {realm} refused {who} for scope {scope or '(none)'}: HTTP {status}"
            )
        if status != 200:
            raise RegistryError(f"token service {realm} answered HTTP {status}")
        try:
            value = json.loads(body)
        except ValueError:
            raise RegistryError(f"token service {realm} answered with something that is not JSON") from None
        token = value.get("token") or value.get("access_token") if isinstance(value, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {realm} answered without a token")
        lifetime = value.get("expires_in") if isinstance(value.get("expires_in"), int) else _DEFAULT_TOKEN_LIFETIME
        expires = time.monotonic() + max(lifetime - _EXPIRY_MARGIN, 1)
        self._tokens[scope] = (token, expires)
        if base_scope is not None and base_scope != scope:
            self._tokens[base_scope] = (token, expires)
        return token
