"""The httpx transport under RegistryClient: httpcore connection pools whose sockets keep the request's deadline.

Each socket operation waits at most until the deadline of the request it serves (deadline.py), so a registry that
drips its answer fails when the deadline passes. Writes go out in pieces of at most 64 KiB, so a registry that
drains a request body slowly is caught between two pieces.

A pool is picked per URL by the proxy the environment names for it and by whether TLS is verified (verification is
skipped only for an origin the client names, after --insecure). Proxies come from the environment: HTTPS_PROXY for
https URLs, HTTP_PROXY for http, ALL_PROXY (curl's) for both, lower-case names first; never for a loopback host
(localhost, 127.0.0.0/8, ::1), as in Docker's client, and not for the hosts in NO_PROXY (see bypasses_proxy). https
goes through a proxy in a CONNECT tunnel, so the proxy sees neither the credentials nor the content; plain http
(--insecure) is forwarded, and the proxy sees it all.
"""

from __future__ import annotations

import ipaddress
import ssl
import typing
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpcore
import httpx

from ..errors import RegistryError
from .deadline import current_deadline
from .insecure import CA_CERT_ENV, is_loopback, make_ssl_context, split_host_port

__all__ = ["Origin", "RegistryTransport", "bypasses_proxy", "origin_of"]

Origin = tuple[str, str, int]  # scheme, host, port: what a credential or a TLS exception is tied to

_WRITE_PIECE = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_CONNECTIONS = 20
_MAX_IDLE_CONNECTIONS = 10
_IDLE_SECONDS = 30.0


def origin_of(url: httpx.URL) -> Origin:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 0)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """`timeout` cut to what is left of the current deadline; `expired` raised when nothing is left."""
    deadline = current_deadline()
    if deadline is None:
        return timeout
    left = deadline.remaining()
    if left <= 0:
        raise expired(f"deadline of {deadline.seconds:g} s passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_PIECE):
            self._inner.write(buffer[start : start + _WRITE_PIECE], _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, bounded, local_address, socket_options))


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """httpcore's errors as httpx's: the client deals with one family (the httpcore error stays the cause)."""
    try:
        yield
    except httpcore.TimeoutException as error:
        raise httpx.TimeoutException(str(error) or type(error).__name__) from error
    except (
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.ProxyError,
        httpcore.UnsupportedProtocol,
        httpcore.ConnectionNotAvailable,
    ) as error:
        raise httpx.TransportError(str(error) or type(error).__name__) from error


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            with _as_httpx_errors():
                close()


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """NO_PROXY as curl reads it: `*`; a name that is the host or a parent domain of it (a leading dot changes
    nothing); with `:port`, for that port only; an address, or a network such as 10.0.0.0/8, holding the host."""
    for item in no_proxy.split(","):
        entry = item.strip().lower()
        if entry == "*":
            return True
        name, entry_port = split_host_port(entry)
        name = name.strip("[]").lstrip(".")
        if not name or (entry_port is not None and entry_port != port):
            continue
        if host == name or host.endswith("." + name) or _in_network(host, name):
            return True
    return False


def _in_network(host: str, network: str) -> bool:
    if "/" not in network:
        return False
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


class RegistryTransport(httpx.BaseTransport):
    def __init__(self, ca_cert: Path | None = None) -> None:
        self._ca_cert = ca_cert
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self._unverified: set[Origin] = set()
        self._proxies = urllib.request.getproxies_environment()
        self._pools: dict[tuple[str | None, bool], httpcore.ConnectionPool] = {}
        self._backend = _DeadlineBackend()

    def skip_verification(self, origin: Origin) -> None:
        """--insecure, after the registry's certificate failed: TLS to this origin (only) is no longer verified."""
        self._unverified.add(origin)

    def proxy_for(self, url: httpx.URL) -> str | None:
        """The proxy URL the environment names for `url`, or None to connect directly."""
        _, host, port = origin_of(url)
        if is_loopback(host) or bypasses_proxy(host, port, self._proxies.get("no", "")):
            return None
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        if not proxy:
            return None
        return proxy if "://" in proxy else f"http://{proxy}"

    def proxy_shown_for(self, url: httpx.URL) -> str | None:
        """The proxy for `url` as an error message may show it: without its credentials."""
        proxy = self.proxy_for(url)
        if proxy is None:
            return None
        try:
            return str(httpx.URL(proxy).copy_with(username=None, password=None))
        except (httpx.InvalidURL, ValueError, TypeError):
            return "(an unparsable proxy URL)"

    def _pool_for(self, url: httpx.URL) -> httpcore.ConnectionPool:
        proxy_url = self.proxy_for(url)
        verify = origin_of(url) not in self._unverified
        key = (proxy_url, verify)
        pool = self._pools.get(key)
        if pool is None:
            pool = httpcore.ConnectionPool(
                ssl_context=self._context(verify),
                proxy=_proxy(proxy_url) if proxy_url is not None else None,
                max_connections=_MAX_CONNECTIONS,
                max_keepalive_connections=_MAX_IDLE_CONNECTIONS,
                keepalive_expiry=_IDLE_SECONDS,
                network_backend=self._backend,
            )
            self._pools[key] = pool
        return pool

    def _context(self, verify: bool) -> ssl.SSLContext:
        context = self._contexts.get(verify)
        if context is None:
            try:
                context = self._contexts[verify] = make_ssl_context(self._ca_cert, verify=verify)
            except (OSError, ssl.SSLError) as error:
                raise RegistryError(
                    f"cannot load the CA certificate {self._ca_cert or '$' + CA_CERT_ENV}: {error}"
                ) from None
        return context

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pool_for(request.url)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=typing.cast(Iterable[bytes], request.stream),
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = pool.handle_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(typing.cast(Iterable[bytes], response.stream)),
            extensions=response.extensions,
        )

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def _proxy(url: str) -> httpcore.Proxy:
    try:
        parsed = httpx.Proxy(url)
    except (httpx.InvalidURL, ValueError) as error:
        raise RegistryError(f"invalid proxy URL in the environment: {error}") from None
    if parsed.url.scheme not in ("http", "https"):
        raise RegistryError(f"proxy {parsed.url}: only http and https proxies are supported")
    return httpcore.Proxy(
        url=httpcore.URL(
            scheme=parsed.url.raw_scheme, host=parsed.url.raw_host, port=parsed.url.port, target=parsed.url.raw_path
        ),
        auth=parsed.raw_auth,
        headers=parsed.headers.raw,
        ssl_context=parsed.ssl_context,
    )
