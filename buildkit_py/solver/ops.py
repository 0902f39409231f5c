"""Ops: the immutable vertices of a build graph (BuildKit's LLB, in miniature).

Every op names its inputs by digest, so an op's digest (blake3 of its canonical definition) covers the whole
subgraph beneath it. What is not identity (display name, Dockerfile lines) lives in `OpMeta`, outside the digest.
An op whose output is a root filesystem yields a chain of layers; `ContextSource` yields the build context folder,
`HttpSource` a folder holding one downloaded file, `GitSource` a checkout. A `MergeOp` stacks the layers of its inputs
(`COPY --link`); like the sources it is not a step: nothing runs for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

from ..digest import Digest, digest_json
from ..errors import SourceLocation

_STAGE_PREFIX = re.compile(r"^\[[^\]]*\]\s*")
INLINE_SCRIPT_DIR = "/dev/pipes"  # where a RUN heredoc with a `#!` line is mounted, as in BuildKit


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
    is_step: ClassVar[bool] = True  # something runs for it, and it has a step number; false for sources and merges

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
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


@dataclass(frozen=True)
class ScratchSource(Op):
    """The empty root filesystem (`FROM scratch`)."""

    kind: ClassVar[str] = "scratch"
    is_step: ClassVar[bool] = False


@dataclass(frozen=True)
class ImageSource(Op):
    """An image in the local store; yields its layers. `image_id` is the config digest, so it pins the content."""

    kind: ClassVar[str] = "image"
    is_step: ClassVar[bool] = False
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
    is_step: ClassVar[bool] = False
    name: str
    path: str
    exclude: tuple[str, ...] = ()

    def cache_definition(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}


@dataclass(frozen=True)
class HttpSource(Op):
    """A file downloaded from `url` (`ADD https://...`), in a folder of its own, named `filename` (from the URL's
    path; "" when the URL has none and the response's Content-Disposition names it).

    Only what was downloaded is the cache key (its digest and name, which the worker adds as content): an unchanged
    file is a hit whatever the URL, and `checksum` (`sha256:<hex>` the content must have) is checked, not keyed."""

    kind: ClassVar[str] = "http"
    is_step: ClassVar[bool] = False
    url: str
    filename: str = ""
    checksum: str = ""

    def cache_definition(self) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclass(frozen=True)
class GitSource(Op):
    """The tree of a git repository at `ref` (`ADD https://host/repo.git#ref:subdir`): `subdir` only when given,
    with `.git` only for `keep_git_dir` (and no subdir).

    The key is the commit the ref resolves to (the worker adds it as content), so an unchanged ref is a hit without
    cloning; the ref's name is keyed only when `.git` is kept, since the checkout then records it. `checksum` (a
    commit id or a prefix of one) is checked, not keyed."""

    kind: ClassVar[str] = "git"
    is_step: ClassVar[bool] = False
    remote: str
    ref: str = ""
    subdir: str = ""
    keep_git_dir: bool = False
    checksum: str = ""

    def cache_definition(self) -> dict[str, Any]:
        keyed: dict[str, Any] = {"kind": self.kind, "remote": self.remote, "subdir": self.subdir}
        if self.keep_git_dir:
            keyed.update(keep_git_dir=True, ref=self.ref)
        return keyed


@dataclass(frozen=True)
class MergeOp(Op):
    """The layers of `layers[0]`, then those of each next input on top (`COPY --link`: the copy's own layer, made
    on an empty tree, stacked on the stage). Nothing runs: the chain is the inputs' chains joined."""

    kind: ClassVar[str] = "merge"
    is_step: ClassVar[bool] = False
    layers: tuple[Digest, ...]

    def inputs(self) -> tuple[Digest, ...]:
        return self.layers


@dataclass(frozen=True)
class InlineFile:
    """A file whose bytes the Dockerfile holds (a heredoc): a plain name, no folders."""

    name: str
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class InlineSource(Op):
    """A tree of files given in the Dockerfile itself (`COPY <<EOF /dest`); their bytes are part of the digest."""

    kind: ClassVar[str] = "inline"
    files: tuple[InlineFile, ...]


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
    written under a mount reaches the layer. `proxy_env` is added to `env` when the process runs, and is no part of
    the op's identity. `scripts` are mounted read-only at /dev/pipes/<name> (a `RUN <<EOF` body that starts with
    `#!`), as BuildKit does; they never reach the layer."""

    kind: ClassVar[str] = "exec"
    rootfs: Digest
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    network: str = "default"
    security: str = "sandbox"
    volumes: tuple[str, ...] = ()
    scripts: tuple[InlineFile, ...] = ()
    proxy_env: tuple[str, ...] = field(default=(), compare=False)
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (name, address or "host-gateway") lines for /etc/hosts
    mounts: tuple[ExecMount, ...] = ()

    def inputs(self) -> tuple[Digest, ...]:
        sources = [mount.source for mount in self.mounts if isinstance(mount, BindSpec)]
        sources += [mount.seed for mount in self.mounts if isinstance(mount, CacheSpec) and mount.seed is not None]
        return (self.rootfs, *dict.fromkeys(source for source in sources if source != self.rootfs))

    def definition(self) -> dict[str, Any]:
        definition = super().definition()
        # Proxy settings given with --build-arg and not declared with ARG reach the process but are not part of
        # the step, as in BuildKit (llb.WithProxy): a step built behind another proxy is the same step.
        del definition["proxy_env"]
        # Fields a RUN did not use stay out, so that the digests of steps made before they existed stay the same.
        if not self.scripts:
            del definition["scripts"]
        if not self.extra_hosts:
            del definition["extra_hosts"]
        if not self.mounts:
            del definition["mounts"]
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
    # Added with BuildKit's COPY flags; left out of the definition at their defaults (see _ADDED_COPY_FIELDS).
    chmod_symbolic: str = ""  # `--chmod=u+x,g-w`: applied to each copied entry's own mode
    exclude_patterns: tuple[str, ...] = ()  # `--exclude`: .dockerignore-style, relative to each copied source
    include_pattern: str = ""  # `--parents`: copy what matches below `src`, keeping the parent directories
    required: bool = False  # `--parents` without wildcards: the pattern must match


# Fields a CopyAction gained after cache keys were first written: at their default they stay out of its definition,
# so the keys of every COPY written before them are unchanged.
_ADDED_COPY_FIELDS = {"chmod_symbolic": "", "exclude_patterns": (), "include_pattern": "", "required": False}


def _action_definition(action: CopyAction | MkdirAction) -> dict[str, Any]:
    plain: dict[str, Any] = {"action": type(action).__name__, **_plain(action)}
    if isinstance(action, CopyAction):
        for name, default in _ADDED_COPY_FIELDS.items():
            if getattr(action, name) == default:
                del plain[name]
    return plain


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
            "actions": [_action_definition(action) for action in self.actions],
        }
