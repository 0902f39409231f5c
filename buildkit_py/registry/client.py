"""HTTP for the distribution API over httpx: pooled connections, proxies, deadlines, auth retries, blob redirects.

One RegistryClient talks to one registry. It picks the scheme once (see insecure.py), answers a 401 challenge
through its Authenticator and retries once, and follows redirects only where asked (blob GETs, which registries send
to a storage backend). Every request runs within a deadline (see deadline.py) and fails with a RegistryError naming
it when the deadline passes.

Credentials go only to the registry's origin (scheme, host and port of its base URL), and to the token realm its
challenge names, for the token request only (auth.py). A redirect target or an upload Location on another origin is
sent no Authorization header, as Docker's client does, and a 401 from another origin is never answered with
credentials. Cookies are neither kept nor sent.

Request bodies are bytes or a range of a file, so a retry can send them again; every body byte sent is counted,
which is how the tests prove a push sent nothing.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any, Self

import httpx

from .. import __version__
from ..errors import RegistryError
from .auth import AuthenticationError, Authenticator
from .credentials import Credentials, load_credentials
from .deadline import Deadline, current_deadline, default_min_rate, default_timeout, running_within
from .insecure import CA_CERT_ENV, is_loopback, plain_http_allowed
from .transport import Origin, RegistryTransport, origin_of

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
_TOKEN_BODY_LIMIT = 1 << 20
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEADERS = {"User-Agent": f"buildkit_py/{__version__}", "Accept-Encoding": "identity"}
DOCKER_HUB_HOST = "registry-1.docker.io"


class NotFoundError(RegistryError):
    """404: no such repository, manifest, blob or upload."""


class _UntrustedCertificate(RegistryError):
    """The server's TLS certificate failed verification (the probe answers it with --insecure)."""


@dataclass(frozen=True)
class TransportOptions:
    """--insecure allows plain http and unverified TLS for any registry; ca_cert adds a trusted CA.

    `timeout` and `min_rate` set the deadlines (deadline.py); by default from the environment."""

    insecure: bool = False
    ca_cert: Path | None = None
    timeout: float = field(default_factory=default_timeout)
    min_rate: float = field(default_factory=default_min_rate)

    def deadline(self, transfer_size: int = 0) -> Deadline:
        return Deadline.after(self.timeout + transfer_size / self.min_rate)


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


def _parse_url(text: str, base: httpx.URL | None = None) -> httpx.URL:
    try:
        return base.join(text) if base is not None else httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise RegistryError(f"invalid URL {text[:200]!r}") from None


def _untrusted_certificate(error: BaseException) -> ssl.SSLCertVerificationError | None:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 100 else f"{round(value, 1):g} s"


def _transport_error(
    method: str, url: httpx.URL, proxy: str | None, error: httpx.TransportError, timeout: float
) -> RegistryError:
    """A RegistryError naming the request (and the proxy it went through), and what went wrong on the wire."""
    what = f"{method} {url}" + (f" (through proxy {proxy})" if proxy else "")
    deadline = current_deadline()
    if isinstance(error, httpx.TimeoutException):
        if deadline is not None and deadline.passed():
            return RegistryError(f"{what}: no complete answer within {_seconds(deadline.seconds)}")
        return RegistryError(f"{what}: nothing received or sent for {_seconds(timeout)}")
    untrusted = _untrusted_certificate(error)
    if untrusted is not None:
        return _UntrustedCertificate(
            f"{what}: TLS certificate not trusted ({untrusted.verify_message}); "
            f"pass --ca-cert (or set ${CA_CERT_ENV}), or --insecure to skip verification"
        )
    return RegistryError(f"{what}: {error}")


class Response:
    """A streamed response; every read keeps the deadline of the request it answers."""

    def __init__(
        self, raw: httpx.Response, method: str, url: httpx.URL, proxy: str | None, deadline: Deadline, timeout: float
    ) -> None:
        self._raw = raw
        self._proxy = proxy
        self._chunks = raw.iter_raw()
        self._pending = b""
        self._method = method
        self._deadline = deadline
        self._timeout = timeout
        self.url = url
        self.status = raw.status_code
        self.reason = raw.reason_phrase
        self.headers = raw.headers

    def header(self, name: str) -> str | None:
        value: str | None = self.headers.get(name)
        return value

    def location(self) -> str | None:
        """The Location header as an absolute URL: a relative one is relative to this response's URL."""
        location = self.header("Location")
        return str(_parse_url(location, self.url)) if location else None

    def _next_chunk(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        try:
            with running_within(self._deadline):
                return next(self._chunks, b"")
        except httpx.TransportError as error:
            self._discard()
            with running_within(self._deadline):
                raise _transport_error(self._method, self.url, self._proxy, error, self._timeout) from None

    def read_up_to(self, limit: int) -> bytes:
        """At most `limit` bytes of the body."""
        parts: list[bytes] = []
        size = 0
        while size < limit and (chunk := self._next_chunk()):
            if size + len(chunk) > limit:
                chunk, self._pending = chunk[: limit - size], chunk[limit - size :]
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    def read_limited(self, limit: int) -> bytes:
        """The whole body, or RegistryError when it is larger than `limit` (a manifest or config must be small)."""
        data = self.read_up_to(limit + 1)
        if len(data) > limit:
            self._discard()
            raise RegistryError(f"{self.url}: response body larger than {limit} bytes")
        return data

    def iter_chunks(self) -> Iterator[bytes]:
        while chunk := self._next_chunk():
            yield chunk

    def close(self) -> None:
        """Finish a small body so the connection can serve another request; a large one closes the connection."""
        if not self._raw.is_closed:
            try:
                self.read_up_to(_ERROR_BODY_LIMIT)
            except RegistryError:
                pass
        self._discard()

    def _discard(self) -> None:
        """Close, giving up the connection when the body was not read to its end."""
        try:
            self._raw.close()
        except httpx.TransportError:
            pass

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
        self._transport = RegistryTransport(self.options.ca_cert)
        self._http = httpx.Client(
            transport=self._transport,
            trust_env=False,  # the transport reads the proxy variables itself
            follow_redirects=False,
            timeout=httpx.Timeout(self.options.timeout),
            headers=_HEADERS,
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        )
        self.bytes_sent = 0  # request body bytes handed to the connection
        self.on_sent: Callable[[int], None] | None = None  # told `bytes_sent` after each chunk of a body
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status), for diagnostics and tests

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the registry's origin -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._scheme is None:
            self._scheme = self._probe_scheme()
        return f"{self._scheme}://{self.host}"

    @property
    def origin(self) -> Origin:
        return origin_of(_parse_url(self.base_url))

    def _probe_scheme(self) -> str:
        """https, unless the registry may be reached over plain http and does not speak TLS."""
        if not plain_http_allowed(self.host, self.options.insecure):
            return "https"
        https = _parse_url(f"https://{self.host}/v2/")
        try:
            self._ping(https)
        except _UntrustedCertificate:
            if not self.options.insecure:
                raise
            self._transport.skip_verification(origin_of(https))
            self._ping(https)
        except RegistryError:
            return "http"
        return "https"

    def _ping(self, url: httpx.URL) -> None:
        """GET /v2/: learns the auth challenge, so later requests can authenticate before the first 401."""
        with running_within(self.options.deadline()), self._send("GET", url, {}, None) as response:
            challenge = response.header("WWW-Authenticate")
        if response.status == 401 and challenge:
            self.auth.learn(challenge)

    # -- requests ------------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return str(_parse_url(path, _parse_url(self.base_url + "/")))

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
        transfer_size: int = 0,
    ) -> Response:
        """Send a request (`path` relative to the registry, or an absolute URL such as an upload location) and return
        the response when its status is one of `ok`; RegistryError (AuthenticationError, NotFoundError) otherwise.

        The whole exchange, reading the response's body included, must end within the deadline for a transfer of
        `transfer_size` bytes (a blob GET gives its size; a body's own length is added)."""
        url = _parse_url(self.url(path))  # first, so that the scheme probe does not eat into the deadline
        body_size = 0 if body is None else len(body) if isinstance(body, bytes) else body.length
        with running_within(self.options.deadline(transfer_size + body_size)):
            return self._request(method, url, scope, headers or {}, body, follow_redirects, ok)

    def _request(
        self,
        method: str,
        url: httpx.URL,
        scope: str | None,
        headers: Mapping[str, str],
        body: Body | None,
        follow_redirects: bool,
        ok: tuple[int, ...],
    ) -> Response:
        for attempt in range(2):
            response = self._exchange(method, url, scope, headers, body)
            redirects = 0
            while follow_redirects and response.status in _REDIRECTS and redirects < _MAX_REDIRECTS:
                location = response.location()
                response.close()
                if not location:
                    raise RegistryError(f"{method} {response.url}: redirect without a Location")
                response = self._exchange(method, _parse_url(location), scope, headers, None)
                redirects += 1
            if response.status == 401 and attempt == 0 and origin_of(response.url) == self.origin:
                challenge = response.header("WWW-Authenticate") or ""
                response.close()
                if self.auth.on_challenge(challenge, scope):
                    continue
                raise AuthenticationError(f"{method} {url}: authentication required ({self._auth_hint()})")
            break
        if response.status in ok:
            return response
        raise self._error(method, response)

    def _exchange(
        self, method: str, url: httpx.URL, scope: str | None, headers: Mapping[str, str], body: Body | None
    ) -> Response:
        """One request, with the registry's Authorization header only when `url` is on the registry's origin."""
        sent = {name: value for name, value in headers.items() if name.lower() != "authorization"}
        if origin_of(url) == self.origin:
            authorization = self.auth.authorization(scope)
            if authorization is not None:
                sent["Authorization"] = authorization
        return self._send(method, url, sent, body)

    def _auth_hint(self) -> str:
        if self.auth.credentials is None:
            return f"no credentials for {self.registry}: run `pybuild login {self.registry}`"
        return f"the credentials for {self.registry} were refused"

    def _error(self, method: str, response: Response) -> RegistryError:
        try:
            detail = response.read_up_to(_ERROR_BODY_LIMIT)
        finally:
            response.close()
        message = _error_message(detail) or f"HTTP {response.status} {response.reason}"
        text = f"{method} {response.url}: {message}"
        if response.status in (401, 403) and origin_of(response.url) != self.origin:
            return AuthenticationError(
                f"{text} (the credentials for {self.registry} are not sent to {response.url.netloc.decode()})"
            )
        if response.status == 401:
            return AuthenticationError(f"{text} ({self._auth_hint()})")
        if response.status == 403:
            return AuthenticationError(text)
        if response.status == 404:
            return NotFoundError(text)
        return RegistryError(text)

    def _send(self, method: str, url: httpx.URL, headers: Mapping[str, str], body: Body | None) -> Response:
        """One HTTP exchange up to the response headers, within the current deadline."""
        if url.scheme not in ("http", "https"):
            raise RegistryError(f"{method} {url}: unsupported URL scheme {url.scheme!r}")
        if url.scheme == "http" and not plain_http_allowed(url.host, self.options.insecure):
            raise RegistryError(
                f"refusing plain http to {url.netloc.decode()}: only loopback registries, or with --insecure"
            )
        request_headers = dict(headers)
        content: Iterator[bytes] | None = None
        if body is not None or method in ("POST", "PUT", "PATCH"):
            length = 0 if body is None else len(body) if isinstance(body, bytes) else body.length
            request_headers["Content-Length"] = str(length)
            content = self._body_chunks(body) if body is not None else None
        deadline = current_deadline() or self.options.deadline()
        proxy = self._transport.proxy_shown_for(url)
        with running_within(deadline):
            try:
                request = self._http.build_request(method, url, headers=request_headers, content=content)
                raw = self._http.send(request, stream=True)
            except httpx.TransportError as error:
                raise _transport_error(method, url, proxy, error, self.options.timeout) from None
        self.requests.append((method, url.raw_path.decode(), raw.status_code))
        return Response(raw, method, url, proxy, deadline, self.options.timeout)

    def _body_chunks(self, body: Body) -> Iterator[bytes]:
        if isinstance(body, bytes):
            for start in range(0, len(body), _SEND_CHUNK):
                chunk = body[start : start + _SEND_CHUNK]
                yield chunk
                self._sent(len(chunk))
            return
        try:
            with open(body.path, "rb") as file:
                file.seek(body.offset)
                remaining = body.length
                while remaining > 0:
                    chunk = file.read(min(_SEND_CHUNK, remaining))
                    if not chunk:
                        raise RegistryError(f"{body.path} is shorter than expected")
                    yield chunk
                    self._sent(len(chunk))
                    remaining -= len(chunk)
        except OSError as error:
            raise RegistryError(f"cannot read {body.path}: {error.strerror or error}") from None

    def _sent(self, size: int) -> None:
        self.bytes_sent += size
        if self.on_sent is not None:
            self.on_sent(self.bytes_sent)

    def _fetch_token(self, url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """GET a token endpoint (no registry auth, no redirects) within a deadline of its own; the same TLS and
        plain-http rules apply, and credentials go over plain http only to a loopback realm or with --insecure."""
        target = _parse_url(url)
        if target.scheme == "http" and not (self.options.insecure or is_loopback(target.host)):
            raise RegistryError(f"refusing to send credentials over plain http to {target.netloc.decode()}")
        with running_within(self.options.deadline()), self._send("GET", target, headers, None) as response:
            return response.status, response.read_limited(_TOKEN_BODY_LIMIT)


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
