"""Docker image references: `busybox`, `busybox:1.36`, `host:5000/a/b:tag`, `name@sha256:...`.

The grammar and the normalisation rules are Docker's (distribution/reference `regexp.go` and `normalize.go`):

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path-component ["/" path-component]*
    domain           := host [":" port]
    path-component   := [a-z0-9]+ (separator [a-z0-9]+)*      separator := [_.] | "__" | "-"+
    tag              := [\\w][\\w.-]{0,127}

A name without a domain lives on docker.io, and a single-component name there under `library/`. A first component
counts as a domain only when it contains "." or ":", is "localhost", or has an uppercase letter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .digest import Digest
from .errors import InvalidDigest, StoreError

__all__ = [
    "DEFAULT_REGISTRY",
    "DEFAULT_TAG",
    "InvalidReference",
    "Reference",
    "parse_reference",
]

DEFAULT_REGISTRY = "docker.io"
LEGACY_DEFAULT_REGISTRY = "index.docker.io"
OFFICIAL_REPOSITORY_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$", re.ASCII)
_ANCHORED_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")


class InvalidReference(StoreError, ValueError):
    """Text that is not a valid image reference. The message follows Docker's ("invalid reference format: ...")."""


@dataclass(frozen=True)
class Reference:
    """A normalised reference. `repository` is the path on the registry, e.g. `library/busybox`."""

    registry: str
    repository: str
    tag: str | None
    digest: Digest | None

    @property
    def name(self) -> str:
        """The familiar repository name, as `docker images` shows it: `busybox`, `user/app`, `localhost:5000/x`."""
        if self.registry == DEFAULT_REGISTRY:
            if self.repository.startswith(OFFICIAL_REPOSITORY_PREFIX) and self.repository.count("/") == 1:
                return self.repository[len(OFFICIAL_REPOSITORY_PREFIX) :]
            return self.repository
        return f"{self.registry}/{self.repository}"

    @property
    def full_name(self) -> str:
        """`docker.io/library/busybox`: registry and repository, no tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar(self) -> str:
        """`busybox:latest`, `localhost:5000/x:1`, `busybox@sha256:...`: the key the store files tags under."""
        return self.name + self._suffix()

    @property
    def canonical(self) -> str:
        """`docker.io/library/busybox:latest`: fully qualified."""
        return self.full_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        if not re.fullmatch(_TAG, tag, re.ASCII):
            raise InvalidReference(f"invalid tag format: {tag!r}")
        return replace(self, tag=tag, digest=None)

    def _suffix(self) -> str:
        text = ""
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self.familiar


def _split_domain(name: str) -> tuple[str, str]:
    slash = name.find("/")
    first = name[:slash]
    if slash == -1 or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_REGISTRY, name
    else:
        domain, remainder = first, name[slash + 1 :]
    if domain == LEGACY_DEFAULT_REGISTRY:
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = OFFICIAL_REPOSITORY_PREFIX + remainder
    return domain, remainder


def parse_reference(text: str, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse and normalise like `docker pull`/`docker tag` do. Without a tag or a digest, `default_tag` is used
    (pass None to keep the tag unset)."""
    if not text:
        raise InvalidReference("invalid reference format: repository name must have at least one component")
    if _ANCHORED_IDENTIFIER_RE.match(text):
        raise InvalidReference(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(text)
    remote_name = remainder.split("@", 1)[0].split(":", 1)[0]
    if remote_name.lower() != remote_name:
        raise InvalidReference("invalid reference format: repository name must be lowercase")

    match = _REFERENCE_RE.match(f"{domain}/{remainder}")
    if match is None:
        raise InvalidReference(f"invalid reference format: {text!r}")
    name, tag, digest_text = match.groups()
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    digest = None
    if digest_text is not None:
        try:
            digest = Digest.parse(digest_text)
        except InvalidDigest as error:
            raise InvalidReference(f"invalid reference format: {error}") from None
    if tag is None and digest is None:
        tag = default_tag
    repository = name[len(domain) + 1 :]
    return Reference(registry=domain, repository=repository, tag=tag, digest=digest)
