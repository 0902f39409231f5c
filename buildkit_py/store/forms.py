"""Compressed forms of layers: a layer's tar, compressed, is a blob of its own. A form is recorded when pybuild
compresses a layer (for save or push) and when it pulls one; the blob may be here, or only in a registry (`local`).
Push uses them to find a layer the registry already has; save and push use the local ones not to compress twice."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..digest import Digest
from ..errors import InvalidDigest
from .content import ContentStore
from .database import Database

__all__ = ["CompressedForm", "FormStore"]


@dataclass(frozen=True)
class CompressedForm:
    diff_id: Digest
    digest: Digest
    size: int
    algorithm: str  # "gzip", "zstd", ...; "" when only the media type is known
    media_type: str  # "" when only the algorithm is known
    local: bool = False  # the blob is in this store


class FormStore:
    def __init__(self, db: Database, blobs: ContentStore) -> None:
        self._db = db
        self._blobs = blobs

    def add(self, form: CompressedForm) -> None:
        with self._db.write() as db:
            db.execute(
                "INSERT INTO compressed_forms (diff_id, digest, size, algorithm, media_type, added) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(diff_id, digest) DO UPDATE SET "
                "algorithm = CASE WHEN excluded.algorithm = '' THEN algorithm ELSE excluded.algorithm END, "
                "media_type = CASE WHEN excluded.media_type = '' THEN media_type ELSE excluded.media_type END",
                (str(form.diff_id), str(form.digest), form.size, form.algorithm, form.media_type, time.time()),
            )

    def _local(self, digest: Digest, size: int) -> bool:
        try:
            return self._blobs.has(digest) and self._blobs.size(digest) == size
        except InvalidDigest:
            return False

    def of(self, diff_id: Digest) -> list[CompressedForm]:
        with self._db.read() as db:
            rows = db.execute(
                "SELECT digest, size, algorithm, media_type FROM compressed_forms WHERE diff_id = ? ORDER BY added",
                (str(diff_id),),
            ).fetchall()
        forms = []
        for digest_text, size, algorithm, media_type in rows:
            digest = Digest.parse(digest_text)
            forms.append(CompressedForm(diff_id, digest, int(size), algorithm, media_type, self._local(digest, size)))
        return forms

    def local(self, diff_id: Digest, algorithm: str) -> CompressedForm | None:
        """A form compressed with `algorithm` whose blob is in this store."""
        for form in self.of(diff_id):
            if form.algorithm == algorithm and form.local:
                return form
        return None

    def all(self) -> list[CompressedForm]:
        with self._db.read() as db:
            rows = db.execute("SELECT diff_id, digest, size, algorithm, media_type FROM compressed_forms").fetchall()
        return [
            CompressedForm(Digest.parse(diff_id), Digest.parse(digest), int(size), algorithm, media_type)
            for diff_id, digest, size, algorithm, media_type in rows
        ]

    def remove(self, diff_id: Digest, digest: Digest) -> None:
        with self._db.write() as db:
            db.execute("DELETE FROM compressed_forms WHERE diff_id = ? AND digest = ?", (str(diff_id), str(digest)))
