"""FROM of an image that is not in the store pulls it: an ImageResolver for the frontend that falls back to a pull.

A tag found in the store is used as it is (no registry round trip, like Docker's classic builder) unless `always_pull`
(`build --pull`) asks to resolve it again; a digest reference is found through the manifest digests earlier pulls
recorded; anything else is pulled. `scratch` never reaches here.
"""

from __future__ import annotations

from collections.abc import Callable

from ..digest import Digest
from ..errors import ImageNotFound
from ..image.manifest import Platform
from ..image.resolved import ResolvedImage
from ..image.stored import image_config
from ..reference import InvalidReference, parse_reference
from ..store import Store
from .client import NotFoundError, TransportOptions
from .pull import pull_image

__all__ = ["PullingImageResolver"]


class PullingImageResolver:
    """Same call as builder.StoreImageResolver: `resolver(ref) -> ResolvedImage`, ImageNotFound when there is none."""

    def __init__(
        self,
        store: Store,
        *,
        options: TransportOptions | None = None,
        platform: Platform | None = None,
        progress: Callable[[str], None] | None = None,
        always_pull: bool = False,
    ) -> None:
        self.store = store
        self.always_pull = always_pull
        self.options = options
        self.platform = platform
        self.progress = progress
        self.pulled: list[str] = []

    def __call__(self, ref: str) -> ResolvedImage:
        image_id = self._local(ref)
        if image_id is None:
            try:
                result = pull_image(
                    self.store,
                    ref,
                    platform=self.platform,
                    options=self.options,
                    progress=self.progress or (lambda _: None),
                )
            except NotFoundError as error:
                raise ImageNotFound(
                    f"No such image: {ref} (not in the store, and the registry has none: {error})"
                ) from None
            self.pulled.append(ref)
            image_id = result.image_id
        return ResolvedImage(ref=ref, image_id=image_id, config=image_config(self.store, image_id))

    def _local(self, ref: str) -> Digest | None:
        try:
            reference = parse_reference(ref)
        except InvalidReference:
            return self.store.resolve(ref)  # an id or id prefix, or a clear "invalid reference" error
        if reference.digest is not None:  # content-addressed: the same wherever it is found
            known = self.store.registry.image_for_manifest(reference.registry, reference.repository, reference.digest)
            return known if known is not None and self.store.images.has(known) else None
        if self.always_pull:
            return None
        try:
            return self.store.resolve(ref)
        except ImageNotFound:
            return None
