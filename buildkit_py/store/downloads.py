"""What ADD downloaded from URLs: url -> the content's blob (sha256), the name the response gave it, and the
validators (ETag, Last-Modified) a rebuild sends so that an unchanged file is not downloaded again.

The content is a blob like any other (`<root>/blobs/sha256/<hex>`), written and verified before its record, so a
record never names a blob that is not whole."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..digest import Digest
from .content import ContentStore
from .database import Database

__all__ = ["Download", "DownloadRecords"]


@dataclass(frozen=True)
class Download:
    url: str
    digest: Digest  # sha256 of the content: its blob
    filename: str  # from the response's Content-Disposition; "" when it named none
    etag: str
    last_modified: str  # as the server sent it (an HTTP date), "" when it sent none
    fetched: float  # when the content was downloaded (Unix time)


class DownloadRecords:
    def __init__(self, db: Database, blobs: ContentStore) -> None:
        self._db = db
        self._blobs = blobs

    def get(self, url: str) -> Download | None:
        """The record of `url`, or None (also when its blob has gone missing)."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT digest, filename, etag, last_modified, fetched FROM downloads WHERE url = ?", (url,)
            ).fetchone()
        if row is None:
            return None
        download = Download(url, Digest.parse(row[0]), row[1], row[2], row[3], row[4])
        return download if self._blobs.has(download.digest) else None

    def put(self, download: Download) -> None:
        """Record a download whose blob is already in place."""
        with self._db.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO downloads (url, digest, filename, etag, last_modified, fetched) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    download.url,
                    str(download.digest),
                    download.filename,
                    download.etag,
                    download.last_modified,
                    download.fetched or time.time(),
                ),
            )

    def all(self) -> list[Download]:
        with self._db.read() as db:
            rows = db.execute("SELECT url, digest, filename, etag, last_modified, fetched FROM downloads").fetchall()
        return [Download(row[0], Digest.parse(row[1]), row[2], row[3], row[4], row[5]) for row in rows]

    def forget(self, urls: list[str]) -> None:
        with self._db.write() as db:
            db.executemany("DELETE FROM downloads WHERE url = ?", [(url,) for url in urls])
