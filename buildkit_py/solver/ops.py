"""Ops: the immutable vertices of a build graph (BuildKit's LLB, in miniature).

Every op names its inputs by digest, so an op's digest (blake3 of its canonical definition) covers the whole
subgraph beneath it. What is not identity (display name, Dockerfile lines) lives in `OpMeta`, outside the digest.
An op whose output is a root filesystem yields a chain of layers; `ContextSource` yields the build context folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

from ..digest import Digest, digest_json
from ..errors import SourceLocation

_STAGE_PREFIX = re.compile(r"^\[[^\]]*\]\s*")


def instruction_text(name: str) -> str:
    """A step's display name without its `[stage n/m]` prefix: `RUN make`."""
    return _STAGE_PREFIX.sub("", name)


@dataclass(frozen=True)
class OpMeta:
    """What the user sees of a step; never part of a digest or cache key."""

    name: str = ""
    stage: str = ""
    location: SourceLocation | None = None

    @property
    def instruction(self) -> str:
        return instruction_text(self.name)


@dataclass(frozen=True)
class Op:
    kind: ClassVar[str] = "op"

    def inputs(self) -> tuple[Digest, ...]:
        return ()

    def definition(self) -> dict[str, Any]:
        """Canonical, JSON-ready description of the op, inputs included (as digest strings)."""
        return {"kind": self.kind, **{f.name: _plain(getattr(self, f.name)) for f in fields(self)}}

    def cache_definition(self) -> dict[str, Any]:
        """What the cache key takes of this op itself (inputs contribute their own keys)."""
        return self.definition()

    @cached_property
    def digest(self) -> Digest:
        return digest_json(self.definition())


def _plain(value: Any) -> Any:
    if isinstance(value, Digest):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


@dataclass(frozen=True)
class ScratchSource(Op):
    """The empty root filesystem (`FROM scratch`)."""

    kind: ClassVar[str] = "scratch"


@dataclass(frozen=True)
class ImageSource(Op):
    """An image in the local store; yields its layers. `image_id` is the config digest, so it pins the content."""

    kind: ClassVar[str] = "image"
    ref: str
    image_id: Digest

    def cache_definition(self) -> dict[str, Any]:
        return {"kind": self.kind, "image_id": str(self.image_id)}


@dataclass(frozen=True)
class ContextSource(Op):
    """The local build context folder, as filtered by `.dockerignore` (`exclude`).

    The folder and the patterns are not part of the cache key: each COPY from the context adds the checksum of
    exactly the files it selects, so moving the project or editing an unrelated ignore line is still a hit."""

    kind: ClassVar[str] = "context"
    name: str
    path: str
    exclude: tuple[str, ...] = ()

    def cache_definition(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}


@dataclass(frozen=True)
class BindSpec:
    """`RUN --mount=type=bind`: `path` of the op `source` (the build context or a stage) at `target`; with
    `readonly` off, writes go to a throw-away layer. From the context, the files it selects are part of the key."""

    target: str
    source: Digest
    path: str = "/"
    readonly: bool = True


@dataclass(frozen=True)
class CacheSpec:
    """`RUN --mount=type=cache`: a folder kept in the store across builds under `id`, shared by concurrent steps as
    `sharing` says. A new one starts empty (owned `uid`:`gid`, `mode`) or as a copy of `path` of `seed`.
    Its content is never part of a layer or a cache key."""

    target: str
    id: str
    sharing: str = "shared"
    readonly: bool = False
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    seed: Digest | None = None
    path: str = "/"


@dataclass(frozen=True)
class TmpfsSpec:
    """`RUN --mount=type=tmpfs`: a fresh tmpfs of at most `size` bytes (0: the kernel's default)."""

    target: str
    size: int = 0


@dataclass(frozen=True)
class SecretSpec:
    """`RUN --mount=type=secret`: the secret `id` as a file at `target` and/or as the variable `env`. Only the id is
    named here: the value is read from the build's secret sources when the step runs."""

    id: str
    target: str | None = None
    env: str | None = None
    required: bool = False
    mode: int = 0o400
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class SshSpec:
    """`RUN --mount=type=ssh`: a socket at `target` that talks to the ssh agent given as `id` with `--ssh`."""

    target: str
    id: str = "default"
    required: bool = False
    mode: int = 0o600
    uid: int = 0
    gid: int = 0


ExecMount = BindSpec | CacheSpec | TmpfsSpec | SecretSpec | SshSpec


@dataclass(frozen=True)
class ExecOp(Op):
    """Run a process on top of `rootfs`; yields `rootfs` plus the layer of what the process changed.

    Changes under `volumes` are discarded, as Docker's classic builder mounts a fresh volume there for RUN; nothing
    written under a mount reaches the layer."""

    kind: ClassVar[str] = "exec"
    rootfs: Digest
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    network: str = "default"
    security: str = "sandbox"
    volumes: tuple[str, ...] = ()
    mounts: tuple[ExecMount, ...] = ()

    def inputs(self) -> tuple[Digest, ...]:
        sources = [mount.source for mount in self.mounts if isinstance(mount, BindSpec)]
        sources += [mount.seed for mount in self.mounts if isinstance(mount, CacheSpec) and mount.seed is not None]
        return (self.rootfs, *dict.fromkeys(source for source in sources if source != self.rootfs))

    def definition(self) -> dict[str, Any]:
        definition = super().definition()
        if not self.mounts:
            del definition["mounts"]  # the digest of a RUN without mounts stays what it was before they existed
        else:
            definition["mounts"] = [{"mount": type(mount).__name__, **_plain(mount)} for mount in self.mounts]
        return definition

    def cache_definition(self) -> dict[str, Any]:
        """As BuildKit does, a cache mount's id and sharing are not part of the key: they say where the cache lives
        and how it is shared, not what the step makes."""
        definition = self.definition()
        for mount in definition.get("mounts", ()):
            if mount["mount"] == "CacheSpec":
                del mount["id"], mount["sharing"]
        return definition


@dataclass(frozen=True)
class Chown:
    """`--chown=user[:group]`: names are resolved against the destination's /etc/passwd and /etc/group when run."""

    user: str
    group: str = ""


@dataclass(frozen=True)
class CopyAction:
    """Copy `src` (a path or a wildcard pattern, relative to the source's root) from the op `source` to `dest`.

    Flags follow BuildKit's FileOp copy: the frontend maps Dockerfile semantics onto them."""

    source: Digest
    src: str
    dest: str
    dest_is_dir: bool = False
    dir_contents_only: bool = True
    follow_symlinks: bool = True
    allow_wildcard: bool = True
    allow_empty_wildcard: bool = False
    create_dest_path: bool = True
    attempt_unpack: bool = False
    chown: Chown | None = None
    chmod: int | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class MkdirAction:
    path: str
    mode: int = 0o755
    make_parents: bool = True
    chown: Chown | None = None


FileAction = CopyAction | MkdirAction


@dataclass(frozen=True)
class FileOp(Op):
    """File operations applied on top of `base`; yields `base` plus the layer of the changes."""

    kind: ClassVar[str] = "file"
    base: Digest
    actions: tuple[FileAction, ...] = field(default=())

    def inputs(self) -> tuple[Digest, ...]:
        sources = [action.source for action in self.actions if isinstance(action, CopyAction)]
        return (self.base, *dict.fromkeys(source for source in sources if source != self.base))

    def definition(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base": str(self.base),
            "actions": [{"action": type(action).__name__, **_plain(action)} for action in self.actions],
        }
