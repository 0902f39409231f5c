"""Push: an image from the store to a registry, sending only the blobs it lacks.

For each layer, in this order, stopping at the first that works:
1. a compressed form we know for the layer (pulled, or pushed before) that the repository has already (HEAD);
2. such a form known to be in another repository of the same registry: a cross-repository mount (POST ?mount=&from=);
3. the layer compressed (once: buildkit_py.image.compressed caches it), then HEAD, mount, or an upload: monolithic
   (POST, then PUT ?digest=) up to `monolithic_limit` bytes, chunked (PATCH with Content-Range, then PUT) above.
Then the config blob the same way, then the manifest: Docker v2 schema 2 by default, OCI with `oci=True` (zstd
layers need OCI). Every blob we find or put in a repository is remembered as a mount source for later pushes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from ..digest import Digest
from ..errors import RegistryError
from ..image.compressed import compressed_layer, layer_media_type, let_go_of_compressed
from ..image.config import ImageConfig
from ..image.manifest import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    ManifestError,
)
from ..image.manifest import layer_compression as media_type_compression
from ..reference import InvalidReference, Reference, parse_reference
from ..store import CompressedForm, Store
from ..transfer import Transfer, TransferCallback, ignore_transfer
from .auth import repository_scope
from .client import Body, FileBody, RegistryClient, Response, TransportOptions

__all__ = ["CHUNK_SIZE", "MONOLITHIC_LIMIT", "BlobPusher", "PushResult", "push_image", "put_manifest"]

MONOLITHIC_LIMIT = 32 << 20
CHUNK_SIZE = 16 << 20

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PushResult:
    reference: Reference
    manifest_digest: Digest
    manifest_size: int
    uploaded: int  # blobs whose bytes were sent
    mounted: int  # blobs mounted from another repository
    existing: int  # blobs the repository had already
    blob_bytes_sent: int
    manifest: Manifest | None = None  # what was pushed


def _ignore(_: str) -> None:
    pass


class BlobPusher:
    """Puts blobs into one repository: HEAD, cross-repository mount, or upload; counts what it did."""

    def __init__(
        self,
        store: Store,
        client: RegistryClient,
        reference: Reference,
        progress: Progress,
        monolithic_limit: int,
        chunk_size: int,
        transfer: TransferCallback = ignore_transfer,
    ) -> None:
        self.store = store
        self.transfer = transfer
        self.client = client
        self.repository = reference.repository
        self.registry = client.registry
        self.records = store.registry
        self.forms = store.forms
        self.progress = progress
        self.monolithic_limit = monolithic_limit
        self.chunk_size = max(chunk_size, 1)
        self.push_scope = repository_scope(self.repository, "pull", "push")
        self.uploaded = self.mounted = self.existing = 0
        self.blob_bytes_sent = 0

    # -- single blobs --------------------------------------------------------------------------------------------

    def exists(self, digest: Digest) -> bool:
        response = self.client.request(
            "HEAD", f"/v2/{self.repository}/blobs/{digest}", scope=self.push_scope, ok=(200, 404)
        )
        response.close()
        return response.status == 200

    def try_mount(self, digest: Digest) -> bool:
        for source in self.records.sources(digest, self.registry):
            if source == self.repository:
                continue
            scope = f"{self.push_scope} {repository_scope(source, 'pull')}"
            query = f"mount={quote(str(digest), safe=':')}&from={quote(source, safe='/')}"
            response = self.client.request(
                "POST", f"/v2/{self.repository}/blobs/uploads/?{query}", scope=scope, ok=(201, 202)
            )
            location = response.location()
            response.close()
            if response.status == 201:
                self.progress(f"{digest.short}: Mounted from {source}")
                return True
            if location:  # 202: the registry started an upload instead; give it back
                cancel = self.client.request("DELETE", location, scope=self.push_scope, ok=(204, 404, 200, 202))
                cancel.close()
        return False

    def ensure(self, digest: Digest, size: int, body: Callable[[], FileBody | bytes]) -> None:
        """Make sure the repository has the blob: HEAD, mount, or upload what `body()` gives."""
        if self.exists(digest):
            self.existing += 1
            self.progress(f"{digest.short}: Layer already exists")
        elif self.try_mount(digest):
            self.mounted += 1
        else:
            self.upload(digest, size, body())
            self.uploaded += 1
            self.progress(f"{digest.short}: Pushed")
        self.records.add_source(digest, self.registry, self.repository)

    def upload(self, digest: Digest, size: int, body: Body) -> None:
        before = self.client.bytes_sent

        def sent(total: int) -> None:
            self.transfer(Transfer(digest.short, "Pushing", min(total - before, size), size))

        self.client.on_sent = sent
        try:
            self._upload(digest, size, body)
        finally:
            self.client.on_sent = None
        self.blob_bytes_sent += self.client.bytes_sent - before

    def _upload(self, digest: Digest, size: int, body: Body) -> None:
        start = self.client.request("POST", f"/v2/{self.repository}/blobs/uploads/", scope=self.push_scope, ok=(202,))
        location = self._location(start)
        if size <= self.monolithic_limit:
            final = self.client.request(
                "PUT",
                _with_digest(location, digest),
                scope=self.push_scope,
                headers={"Content-Type": "application/octet-stream"},
                body=body,
                ok=(201,),
            )
        else:
            offset = 0
            while offset < size:
                length = min(self.chunk_size, size - offset)
                chunk: Body = (
                    body[offset : offset + length]
                    if isinstance(body, bytes)
                    else FileBody(body.path, body.offset + offset, length)
                )
                patch = self.client.request(
                    "PATCH",
                    location,
                    scope=self.push_scope,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + length - 1}",
                    },
                    body=chunk,
                    ok=(202,),
                )
                location = self._location(patch)
                offset += length
            final = self.client.request("PUT", _with_digest(location, digest), scope=self.push_scope, ok=(201,))
        claimed = final.header("Docker-Content-Digest")
        final.close()
        if claimed and claimed != str(digest):
            raise RegistryError(f"registry stored blob {digest} as {claimed}")

    def _location(self, response: Response) -> str:
        location = response.location()
        response.close()
        if not location:
            raise RegistryError(f"{self.registry}: upload response without a Location")
        return location

    # -- layers --------------------------------------------------------------------------------------------------

    def layer(self, diff_id: Digest, compression: str, oci: bool) -> Descriptor:
        for form in self.forms.of(diff_id):
            if _form_compression(form) != compression or form.digest.algorithm != "sha256":
                continue
            if self.exists(form.digest):
                self.existing += 1
                self.progress(f"{form.digest.short}: Layer already exists")
            elif self.try_mount(form.digest):
                self.mounted += 1
            else:
                continue
            self.records.add_source(form.digest, self.registry, self.repository)
            return Descriptor(layer_media_type(compression, oci), form.digest, form.size)
        blob = compressed_layer(self.store, diff_id, compression)
        path = self.store.blobs.path(blob.digest)
        self.ensure(blob.digest, blob.size, lambda: FileBody(path, 0, blob.size))
        media_type = layer_media_type(compression, oci)
        return Descriptor(media_type, blob.digest, blob.size)


def _form_compression(form: CompressedForm) -> str:
    if form.algorithm:
        return form.algorithm
    try:
        kind = media_type_compression(form.media_type)
    except ManifestError:
        return ""
    return "uncompressed" if kind == "none" else kind


def _with_digest(location: str, digest: Digest) -> str:
    return location + ("&" if "?" in location else "?") + f"digest={quote(str(digest), safe=':')}"


def put_manifest(client: RegistryClient, reference: Reference, media_type: str, data: bytes) -> Digest:
    """PUT a manifest under the reference's tag (`latest` when it has none); returns its digest, checked against the
    one the registry says it stored."""
    manifest_digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    response = client.request(
        "PUT",
        f"/v2/{reference.repository}/manifests/{reference.tag or 'latest'}",
        scope=repository_scope(reference.repository, "pull", "push"),
        headers={"Content-Type": media_type},
        body=data,
        ok=(201,),
    )
    claimed = response.header("Docker-Content-Digest")
    response.close()
    if claimed and claimed != str(manifest_digest):
        raise RegistryError(f"registry stored the manifest as {claimed}, not {manifest_digest}")
    return manifest_digest


def push_image(
    store: Store,
    name: str,
    *,
    compression: str = "gzip",
    oci: bool = False,
    options: TransportOptions | None = None,
    client: RegistryClient | None = None,
    progress: Progress = _ignore,
    monolithic_limit: int = MONOLITHIC_LIMIT,
    chunk_size: int = CHUNK_SIZE,
    transfer: TransferCallback = ignore_transfer,
) -> PushResult:
    """Push the store's image `name` (a tag such as `host:5000/app:1`) to its registry under that tag. `progress`
    hears Docker's lines ("Pushed"), `transfer` the bytes of each blob as they are sent."""
    reference = parse_reference(name)
    if reference.digest is not None:
        raise InvalidReference(f"push needs a tag, not a digest: {name}")
    image_id = store.resolve(name)
    config_bytes = store.images.config_bytes(image_id)
    config = ImageConfig.from_bytes(config_bytes)
    oci = oci or compression == "zstd"  # Docker v2 manifests have no zstd layer type
    owned = client is None
    client = client or RegistryClient(reference.registry, options)
    try:
        pusher = BlobPusher(store, client, reference, progress, monolithic_limit, chunk_size, transfer)
        progress(f"The push refers to repository [{reference.full_name}]")
        layers = [pusher.layer(diff_id, compression, oci) for diff_id in config.diff_ids]
        config_digest = Digest("sha256", hashlib.sha256(config_bytes).hexdigest())
        pusher.ensure(config_digest, len(config_bytes), lambda: config_bytes)
        manifest = Manifest(
            config=Descriptor(OCI_CONFIG if oci else DOCKER_CONFIG, config_digest, len(config_bytes)),
            layers=tuple(layers),
            media_type=OCI_MANIFEST if oci else DOCKER_MANIFEST,
        )
        data = manifest.to_bytes()
        manifest_digest = put_manifest(client, reference, manifest.media_type, data)
        pusher.records.add_manifest(client.registry, reference.repository, manifest_digest, image_id)
        # The registry holds the compressed layers now; the store keeps each layer once (as Docker does), and the
        # forms' records, which find them in a registry again or compress them again to the same digest.
        let_go_of_compressed(store, config.diff_ids, compression)
        progress(f"{reference.tag}: digest: {manifest_digest} size: {len(data)}")
        return PushResult(
            reference=reference,
            manifest_digest=manifest_digest,
            manifest_size=len(data),
            uploaded=pusher.uploaded,
            mounted=pusher.mounted,
            existing=pusher.existing,
            blob_bytes_sent=pusher.blob_bytes_sent,
            manifest=manifest,
        )
    finally:
        if owned:
            client.close()
