"""Which schemes a registry may be reached over, and the TLS context for https.

Plain http is allowed only for loopback registries (127.0.0.0/8, ::1, localhost) or when the user asks with
--insecure; everything else is https verified against the system CA store, plus a CA the user names (--ca-cert or
$PYBUILD_CA_CERT) for test or private registries. Like Docker, a registry allowed plain http is tried over https first:
a registry that serves TLS keeps getting it, and a failed certificate check is never answered by dropping to http
unless --insecure was given.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path

__all__ = ["CA_CERT_ENV", "is_loopback", "make_ssl_context", "plain_http_allowed", "split_host_port"]

CA_CERT_ENV = "PYBUILD_CA_CERT"


def split_host_port(netloc: str) -> tuple[str, int | None]:
    """`host:5000` -> ("host", 5000); `[::1]:5000` -> ("::1", 5000); `host` -> ("host", None)."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port_text = rest.removeprefix(":")
        return host, int(port_text) if port_text else None
    host, sep, port_text = netloc.rpartition(":")
    if sep and port_text.isdigit() and ":" not in host:
        return host, int(port_text)
    return netloc, None


def is_loopback(netloc: str) -> bool:
    host, _ = split_host_port(netloc)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_allowed(netloc: str, insecure: bool) -> bool:
    return insecure or is_loopback(netloc)


def make_ssl_context(ca_cert: Path | None = None, verify: bool = True) -> ssl.SSLContext:
    """The system CA store, plus `ca_cert` (or $PYBUILD_CA_CERT) when given. verify=False only for --insecure."""
    context = ssl.create_default_context()
    extra = ca_cert if ca_cert is not None else os.environ.get(CA_CERT_ENV)
    if extra:
        context.load_verify_locations(cafile=str(extra))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
