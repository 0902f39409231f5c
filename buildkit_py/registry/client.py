"""HTTP for the distribution API over http.client: kept-alive connections, timeouts, auth retries, blob redirects.

One RegistryClient talks to one registry. It picks the scheme once (see insecure.py), keeps one connection per
(scheme, host) open between requests, answers a 401 challenge through its Authenticator and retries once, and follows
redirects only where asked (blob GETs, which registries send to a storage backend; the Authorization header is not
sent to another host). Request bodies are bytes or a range of a file, so a retry can send them again; every body byte
sent is counted, which is how the tests prove a push sent nothing.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

from ..errors import RegistryError
from .auth import AuthenticationError, Authenticator
from .credentials import Credentials, load_credentials
from .insecure import is_loopback, make_ssl_context, plain_http_allowed

__all__ = [
    "AuthenticationError",
    "FileBody",
    "NotFoundError",
    "RegistryClient",
    "Response",
    "TransportOptions",
    "registry_host",
]

_SEND_CHUNK = 1 << 20
_MAX_REDIRECTS = 5
_ERROR_BODY_LIMIT = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
DOCKER_HUB_HOST = "registry-1.docker.io"


class NotFoundError(RegistryError):
    """404: no such repository, manifest, blob or upload."""


@dataclass(frozen=True)
class TransportOptions:
    """--insecure allows plain http and unverified TLS for any registry; ca_cert adds a trusted CA."""

    insecure: bool = False
    ca_cert: Path | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class FileBody:
    """`length` bytes of `path` from `offset`: a request body that can be sent again."""

    path: Path
    offset: int
    length: int


Body = bytes | FileBody


def registry_host(registry: str) -> str:
    """The host to connect to for a reference's registry (docker.io is served by registry-1.docker.io)."""
    return DOCKER_HUB_HOST if registry == "docker.io" else registry


class Response:
    """A response whose body is read (or drained) before its connection serves another request."""

    def __init__(self, raw: http.client.HTTPResponse, connection: http.client.HTTPConnection, url: str) -> None:
        self._raw = raw
        self._connection = connection
        self.url = url
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size) if size >= 0 else self._raw.read()

    def read_limited(self, limit: int) -> bytes:
        """The whole body, or RegistryError when it is larger than `limit` (a manifest or config must be small)."""
        data = self._raw.read(limit + 1)
        if len(data) > limit:
            self.close()
            raise RegistryError(f"{self.url}: response body larger than {limit} bytes")
        return data

    def iter_chunks(self, size: int = _SEND_CHUNK) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._raw.read(size)
            except (OSError, http.client.HTTPException) as error:
                self._connection.close()
                raise RegistryError(f"{self.url}: download failed: {error or type(error).__name__}") from None
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        """Finish the body so the connection can be reused; a large unread body closes the connection instead."""
        if self._raw.isclosed():
            return
        try:
            rest = self._raw.read(_ERROR_BODY_LIMIT + 1)
        except (OSError, http.client.HTTPException):
            rest = b"x" * (_ERROR_BODY_LIMIT + 1)
        if len(rest) > _ERROR_BODY_LIMIT or not self._raw.isclosed():
            self._connection.close()
        self._raw.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RegistryClient:
    def __init__(
        self,
        registry: str,
        options: TransportOptions | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.registry = registry
        self.host = registry_host(registry)
        self.options = options or TransportOptions()
        creds = credentials if credentials is not None else load_credentials(registry)
        self.auth = Authenticator(self.host, creds, self._fetch_token)
        self._scheme: str | None = None
        self._verify_tls = True
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self.bytes_sent = 0  # request body bytes actually written to sockets
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status), for diagnostics and tests

    # -- connections ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self, scheme: str, netloc: str, fresh: bool = False) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        existing = self._connections.pop(key, None)
        if existing is not None and not fresh:
            self._connections[key] = existing
            return existing
        if existing is not None:
            existing.close()
        connection: http.client.HTTPConnection
        if scheme == "https":
            # Verification is only ever off for the registry itself, after --insecure and a failed check.
            verify = self._verify_tls or netloc != self.host
            context = make_ssl_context(self.options.ca_cert, verify=verify)
            connection = http.client.HTTPSConnection(netloc, timeout=self.options.timeout, context=context)
        elif scheme == "http":
            if not plain_http_allowed(netloc, self.options.insecure):
                raise RegistryError(f"refusing plain http to {netloc}: only loopback registries, or with --insecure")
            connection = http.client.HTTPConnection(netloc, timeout=self.options.timeout)
        else:
            raise RegistryError(f"unsupported URL scheme {scheme!r}")
        self._connections[key] = connection
        return connection

    @property
    def base_url(self) -> str:
        if self._scheme is None:
            self._scheme = self._probe_scheme()
        return f"{self._scheme}://{self.host}"

    def _probe_scheme(self) -> str:
        """https, unless the registry may be reached over plain http and does not speak TLS."""
        if not plain_http_allowed(self.host, self.options.insecure):
            return "https"
        try:
            self._scheme = "https"
            self._ping()
            return "https"
        except ssl.SSLCertVerificationError as error:
            if not self.options.insecure:
                raise RegistryError(
                    f"{self.host}: TLS certificate not trusted ({error.verify_message}); pass --ca-cert, "
                    "or --insecure to skip verification"
                ) from None
            self._verify_tls = False
            self._connection("https", self.host, fresh=True)
            self._ping()
            return "https"
        except (TimeoutError, ssl.SSLError, ConnectionError, http.client.HTTPException):
            self._connections.pop(("https", self.host), None)
            return "http"

    def _ping(self) -> None:
        """GET /v2/: learns the auth challenge, so later requests can authenticate before the first 401."""
        response = self._send("GET", f"https://{self.host}/v2/", {}, None)
        challenge = response.header("WWW-Authenticate")
        response.close()
        if response.status == 401 and challenge:
            self.auth.learn(challenge)

    # -- requests ------------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str | None,
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        follow_redirects: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        """Send a request (`path` relative to the registry, or an absolute URL such as an upload location) and return
        the response when its status is one of `ok`; RegistryError (AuthenticationError, NotFoundError) otherwise."""
        try:
            return self._request(method, path, scope, headers, body, follow_redirects, ok)
        except ssl.SSLCertVerificationError as error:
            raise RegistryError(
                f"{method} {path}: TLS certificate of {self.host} not trusted ({error.verify_message}); "
                "pass --ca-cert (or set $PYBUILD_CA_CERT)"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            raise RegistryError(f"{method} {path} on {self.host}: {error or type(error).__name__}") from None

    def _request(
        self,
        method: str,
        path: str,
        scope: str | None,
        headers: Mapping[str, str] | None,
        body: Body | None,
        follow_redirects: bool,
        ok: tuple[int, ...],
    ) -> Response:
        url = self.url(path)
        request_headers = dict(headers or {})
        for attempt in range(2):
            authorization = self.auth.authorization(scope)
            if authorization is not None:
                request_headers["Authorization"] = authorization
            response = self._send(method, url, request_headers, body)
            redirects = 0
            while follow_redirects and response.status in _REDIRECTS and redirects < _MAX_REDIRECTS:
                location = response.header("Location")
                response.close()
                if not location:
                    raise RegistryError(f"{method} {url}: redirect without a Location")
                target = urljoin(response.url, location)
                target_headers = dict(request_headers)
                if urlsplit(target).netloc != self.host:
                    target_headers.pop("Authorization", None)
                response = self._send(method, target, target_headers, None)
                redirects += 1
            if response.status == 401 and attempt == 0:
                challenge = response.header("WWW-Authenticate") or ""
                response.close()
                if self.auth.on_challenge(challenge, scope):
                    continue
                raise AuthenticationError(f"{method} {url}: authentication required ({self._auth_hint()})")
            break
        if response.status in ok:
            return response
        raise self._error(method, url, response)

    def _auth_hint(self) -> str:
        if self.auth.credentials is None:
            return f"no credentials for {self.registry}: run `pybuild login {self.registry}`"
        return f"the credentials for {self.registry} were refused"

    def _error(self, method: str, url: str, response: Response) -> RegistryError:
        try:
            detail = response.read(_ERROR_BODY_LIMIT)
        finally:
            response.close()
        message = _error_message(detail) or f"HTTP {response.status} {response.reason}"
        text = f"{method} {url}: {message}"
        if response.status == 401:
            return AuthenticationError(f"{text} ({self._auth_hint()})")
        if response.status == 403:
            return AuthenticationError(text)
        if response.status == 404:
            return NotFoundError(text)
        return RegistryError(text)

    def _send(self, method: str, url: str, headers: Mapping[str, str], body: Body | None) -> Response:
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        for attempt in range(2):
            connection = self._connection(parts.scheme, parts.netloc, fresh=attempt > 0)
            reused = connection.sock is not None
            try:
                connection.putrequest(method, target, skip_accept_encoding=True)
                for name, value in headers.items():
                    connection.putheader(name, value)
                length = 0 if body is None else len(body) if isinstance(body, bytes) else body.length
                if body is not None or method in ("POST", "PUT", "PATCH"):
                    connection.putheader("Content-Length", str(length))
                connection.endheaders()
                if body is not None:
                    self._send_body(connection, body)
                raw = connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle kept-alive connection: send again on a new one
                raise
            except (OSError, http.client.HTTPException):
                connection.close()
                raise
            self.requests.append((method, target, raw.status))
            return Response(raw, connection, url)
        raise AssertionError("unreachable")

    def _send_body(self, connection: http.client.HTTPConnection, body: Body) -> None:
        if isinstance(body, bytes):
            connection.send(body)
            self.bytes_sent += len(body)
            return
        with open(body.path, "rb") as file:
            file.seek(body.offset)
            remaining = body.length
            while remaining > 0:
                chunk = file.read(min(_SEND_CHUNK, remaining))
                if not chunk:
                    raise RegistryError(f"{body.path} is shorter than expected")
                connection.send(chunk)
                self.bytes_sent += len(chunk)
                remaining -= len(chunk)

    def _fetch_token(self, url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """GET a token endpoint (no registry auth, no redirects); the same TLS and plain-http rules apply."""
        parts = urlsplit(url)
        if parts.scheme == "http" and not (self.options.insecure or is_loopback(parts.netloc)):
            raise RegistryError(f"refusing to send credentials over plain http to {parts.netloc}")
        response = self._send("GET", url, headers, None)
        try:
            return response.status, response.read_limited(1 << 20)
        finally:
            response.close()


def _error_message(detail: bytes) -> str:
    """The distribution API's `{"errors": [{"code", "message", "detail"}]}` as one line."""
    try:
        value: Any = json.loads(detail)
    except ValueError:
        return detail.decode(errors="replace").strip()[:200]
    errors = value.get("errors") if isinstance(value, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors:
        if isinstance(error, dict):
            parts.append(f"{error.get('code', 'UNKNOWN')}: {error.get('message', '')}".strip())
    return "; ".join(parts)
