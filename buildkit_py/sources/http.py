"""ADD's downloads: a URL's content into the store, revalidated on the next build instead of downloaded again.

- The first download stores the content as a blob and records the URL with the response's ETag and Last-Modified;
  a later build sends them back (If-None-Match, If-Modified-Since) and a 304 reuses the stored content. A pinned
  checksum that the stored content already has needs no request at all.
- The file is named as Docker's classic builder names it: the last element of the URL's path, else the filename of
  the Content-Disposition header; BuildKit's `__unnamed__` when neither says. Its time is Last-Modified (BuildKit),
  else when it was downloaded.
- Requests go through the registry client's transport: the same proxies from the environment (not for loopback),
  the same TLS trust, and the same deadlines ($PYBUILD_REGISTRY_TIMEOUT for the answer and for any silence, plus
  size / $PYBUILD_REGISTRY_MIN_RATE for the body), so a server that never answers or drips fails the step.
- Nothing half-written is kept: the body goes to a temp file, is hashed on the way and checked against the
  checksum, and only then becomes a blob; the record is written after its blob.
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from .. import __version__
from ..digest import Digest
from ..errors import BuildError, StepError
from ..registry.deadline import Deadline, default_min_rate, default_timeout, running_within
from ..registry.transport import RegistryTransport
from ..store import Store
from ..store.downloads import Download

__all__ = ["FetchedFile", "fetch", "materialize"]

UNNAMED = "__unnamed__"  # BuildKit's name for a download nothing names
_CHUNK = 1 << 20
_MAX_REDIRECTS = 10


@dataclass(frozen=True)
class FetchedFile:
    """A download in the store: its blob, the name it takes, and its modification time (Unix seconds)."""

    url: str
    digest: Digest
    filename: str
    mtime: float


def _failure(url: str, reason: str) -> StepError:
    return StepError(f"failed to download {url}: {reason}")


def _disposition_name(header: str) -> str:
    """The file name of a Content-Disposition header (RFC 6266, RFC 2231 included), reduced to its base name."""
    if not header:
        return ""
    message = email.message.Message()
    message["content-disposition"] = header
    name = message.get_filename() or ""
    if not name or name.endswith(("/", "\\")):
        return ""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "" if base in ("", ".", "..") or "\0" in base else base


def _http_time(text: str) -> float | None:
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _fetched(url: str, download: Download, url_name: str) -> FetchedFile:
    mtime = _http_time(download.last_modified)
    return FetchedFile(
        url=url,
        digest=download.digest,
        filename=url_name or download.filename or UNNAMED,
        mtime=download.fetched if mtime is None else mtime,
    )


def _check(url: str, checksum: str, sha256: Digest, other: str | None) -> None:
    """Raise when the content does not have the pinned checksum (`other` is its hex in the checksum's algorithm,
    when that is not sha256)."""
    if not checksum:
        return
    algorithm, _, expected = checksum.partition(":")
    actual = sha256.hex if algorithm == "sha256" else other
    if actual != expected:
        raise StepError(
            f"digest mismatch for {url}: ADD --checksum={checksum}, but the content is {algorithm}:{actual}"
        )


def fetch(store: Store, url: str, *, url_name: str = "", checksum: str = "") -> FetchedFile:
    """The content of `url` in the store, downloaded or revalidated now; StepError (without a location: the solver
    adds the step's) when it cannot be had or does not match `checksum`."""
    record = store.downloads.get(url)
    if record is not None and checksum == f"sha256:{record.digest.hex}":
        return _fetched(url, record, url_name)
    # identity: the file is stored as the server has it, never as a transfer encoding of it
    headers = {"User-Agent": f"pybuild/{__version__}", "Accept-Encoding": "identity"}
    if record is not None:
        if record.etag:
            headers["If-None-Match"] = record.etag
        if record.last_modified:
            headers["If-Modified-Since"] = record.last_modified
    timeout = default_timeout()
    try:
        client = httpx.Client(
            transport=RegistryTransport(), timeout=timeout, follow_redirects=True, max_redirects=_MAX_REDIRECTS
        )
        with client, running_within(Deadline.after(timeout)), client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 and record is not None:
                _check(url, checksum, record.digest, _rehash(store, record.digest, checksum))
                return _fetched(url, record, url_name)
            if response.status_code != 200:
                raise _failure(url, f"the server answered {response.status_code} {response.reason_phrase}")
            download = _receive(store, url, response, checksum, timeout)
    except httpx.TimeoutException:
        raise _failure(
            url, f"no complete answer within the deadline ($PYBUILD_REGISTRY_TIMEOUT={timeout:g} s)"
        ) from None
    except httpx.HTTPError as error:
        raise _failure(url, str(error) or type(error).__name__) from None
    except BuildError:
        raise
    except OSError as error:
        raise _failure(url, error.strerror or str(error)) from None
    return _fetched(url, download, url_name)


def _rehash(store: Store, digest: Digest, checksum: str) -> str | None:
    """The stored content's hex digest in the checksum's algorithm, when that is not sha256."""
    algorithm = checksum.partition(":")[0]
    if not checksum or algorithm == "sha256":
        return None
    hasher = hashlib.new(algorithm)
    with store.blobs.open(digest) as stream:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _receive(store: Store, url: str, response: httpx.Response, checksum: str, timeout: float) -> Download:
    """Stream the body into a temp file, hashing it, within a deadline that grows with its announced size; check
    it; then store the blob and record it."""
    min_rate = default_min_rate()
    length_header = response.headers.get("content-length", "")
    length = int(length_header) if length_header.isdigit() else None
    algorithm = checksum.partition(":")[0] if checksum else ""
    sha256 = hashlib.sha256()
    other = hashlib.new(algorithm) if algorithm and algorithm != "sha256" else None
    started = time.monotonic()
    received = 0
    file, temp = store.blobs.temp_file(prefix="download")
    try:
        with file, running_within(Deadline.after(timeout + (length or 0) / min_rate)):
            for chunk in response.iter_raw(_CHUNK):
                file.write(chunk)
                sha256.update(chunk)
                if other is not None:
                    other.update(chunk)
                received += len(chunk)
                if time.monotonic() - started > timeout + received / min_rate:
                    raise _failure(url, f"too slow: {received} bytes in {time.monotonic() - started:.0f} s")
            file.flush()
            os.fsync(file.fileno())
        if length is not None and received != length:
            raise _failure(url, f"the body ended after {received} of {length} bytes")
        digest = Digest("sha256", sha256.hexdigest())
        _check(url, checksum, digest, other.hexdigest() if other is not None else None)
        store.blobs.place(Path(temp), digest)
    finally:
        Path(temp).unlink(missing_ok=True)
    download = Download(
        url=url,
        digest=digest,
        filename=_disposition_name(response.headers.get("content-disposition", "")),
        etag=response.headers.get("etag", ""),
        last_modified=response.headers.get("last-modified", ""),
        fetched=time.time(),
    )
    store.downloads.put(download)
    return download


def materialize(store: Store, fetched: FetchedFile, folder: Path) -> None:
    """Put the downloaded file in the empty `folder`, as ADD copies it: mode 0600, owned by root, its mtime."""
    target = folder / fetched.filename
    with store.blobs.open(fetched.digest) as stream, open(target, "xb") as out:
        while chunk := stream.read(_CHUNK):
            out.write(chunk)
    os.chmod(target, 0o600)
    os.utime(target, (fetched.mtime, fetched.mtime))
