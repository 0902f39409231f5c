"""An ExecOp's mounts (`RUN --mount`) turned into what the executor mounts, for one run of the step.

- bind from the build context: the files it selects (the same selection rules as COPY: `.dockerignore`, paths beneath
  the root) are copied into the step's scratch folder, and that copy is bound; their checksum is part of the step's
  cache key (`context_selection`). From a stage or image: its layers, read-only, or with a throw-away upper for `rw`.
- cache: an instance of the store's cache mount, held (locked as its sharing says) until the step ends; with
  imported caches, `restore_cache(id)` first gives the store the id's content from them (once per build).
- tmpfs: a fresh tmpfs.
- secret: its value from the session, as a file the sandbox writes on its private tmpfs, and/or a variable of the
  step's process. A missing secret is an error only when `required`.
- ssh: a socket of our own that relays to the session's agent.

Everything held is released by the ExitStack the caller passes, when the step has ended.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..digest import Digest
from ..errors import ExecError, StepError
from ..exec.executor import AnyMount, Executor, Mount, OverlayMount, RootfsSpec, SecretFile, SourceTree, TmpfsMount
from ..session import AgentForwarder, BuildSession
from ..solver.graph import BuildGraph
from ..solver.ops import BindSpec, CacheSpec, ContextSource, CopyAction, ExecOp, SecretSpec, SshSpec, TmpfsSpec
from ..store.cachemounts import CacheMountWaitCancelled

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["PreparedMounts", "context_selection", "prepare_mounts"]

_MATERIALISED = "mount"  # the name the context selection takes in its copy folder

Lowers = Callable[[tuple[Digest, ...]], tuple[Path, ...]]


def context_selection(bind: BindSpec, context: ContextSource) -> CopyAction:
    """The copy of what a bind mount of the context shows: hashed for the key, then copied to be mounted."""
    return CopyAction(
        source=bind.source,
        src=bind.path,
        dest="/" + _MATERIALISED,
        allow_wildcard=False,
        exclude=context.exclude,
    )


@dataclass(frozen=True)
class PreparedMounts:
    mounts: tuple[AnyMount, ...]
    env: tuple[str, ...]  # variables from secrets, set after the step's own


def prepare_mounts(
    op: ExecOp,
    *,
    graph: BuildGraph,
    inputs: Mapping[Digest, tuple[Digest, ...]],
    lowers: Lowers,
    store: Store,
    executor: Executor,
    session: BuildSession,
    scratch: Path,
    stack: ExitStack,
    cancelled: Callable[[], bool] = lambda: False,
    restore_cache: Callable[[str], None] | None = None,
) -> PreparedMounts:
    """The mounts of one run of `op`; whatever it holds is released by `stack`. Waiting for a cache mount another step
    holds ends, with an ExecError, once `cancelled()` is true."""
    preparer = _Preparer(graph, inputs, lowers, store, executor, session, scratch, stack, cancelled)
    if restore_cache is not None:
        for cache_id in sorted({mount.id for mount in op.mounts if isinstance(mount, CacheSpec)}):
            restore_cache(cache_id)
    mounts: list[AnyMount] = []
    env: list[str] = []
    # Cache locks are taken in one order, so two steps holding two caches each can never wait on each other; an id
    # mounted twice in one step is held once (a second flock of it would wait for the first).
    folders: dict[str, Path] = {}
    for cache in sorted((mount for mount in op.mounts if isinstance(mount, CacheSpec)), key=lambda cache: cache.id):
        if cache.id not in folders:
            folders[cache.id] = preparer.cache(cache)
    for index, spec in enumerate(op.mounts):
        if isinstance(spec, CacheSpec):
            mounts.append(Mount(source=folders[spec.id], target=spec.target, readonly=spec.readonly))
        elif isinstance(spec, BindSpec):
            mounts.append(preparer.bind(spec, index))
        elif isinstance(spec, TmpfsSpec):
            mounts.append(TmpfsMount(target=spec.target, size_bytes=spec.size or None))
        elif isinstance(spec, SecretSpec):
            secret_mount, variable = preparer.secret(spec)
            mounts += [secret_mount] if secret_mount is not None else []
            env += [variable] if variable is not None else []
        elif isinstance(spec, SshSpec):
            ssh_mount = preparer.ssh(spec)
            mounts += [ssh_mount] if ssh_mount is not None else []
    return PreparedMounts(tuple(mounts), tuple(env))


class _Preparer:
    def __init__(
        self,
        graph: BuildGraph,
        inputs: Mapping[Digest, tuple[Digest, ...]],
        lowers: Lowers,
        store: Store,
        executor: Executor,
        session: BuildSession,
        scratch: Path,
        stack: ExitStack,
        cancelled: Callable[[], bool],
    ) -> None:
        self.cancelled = cancelled
        self.graph = graph
        self.inputs = inputs
        self.lowers = lowers
        self.store = store
        self.executor = executor
        self.session = session
        self.scratch = scratch
        self.stack = stack

    def bind(self, spec: BindSpec, index: int) -> AnyMount:
        source = self.graph.op(spec.source)
        if isinstance(source, ContextSource):
            copy = self.scratch / f"bind-{index}"
            self._copy_into(copy, context_selection(spec, source), SourceTree(folder=Path(source.path)))
            lowers: tuple[Path, ...] = (copy,)
            path = "/" + _MATERIALISED
        else:
            lowers = self.lowers(self.inputs[spec.source])
            path = spec.path
        if spec.readonly:
            return OverlayMount(lowers=lowers, target=spec.target, source_path=path if path != "/" else "")
        upper, work = self._folder(f"bind-{index}.upper"), self._folder(f"bind-{index}.work")
        return OverlayMount(lowers=lowers, target=spec.target, upper=upper, work=work, source_path=path)

    def cache(self, spec: CacheSpec) -> Path:
        """The data folder of an instance of the cache, held until the step ends."""
        held = self.store.cache_mounts.use(
            spec.id, spec.sharing, lambda path: self._new_cache(spec, path), cancelled=self.cancelled
        )
        try:
            data = self.stack.enter_context(held)
        except CacheMountWaitCancelled:
            raise ExecError(f"cancelled while waiting for cache mount {spec.id}") from None
        return data

    def _new_cache(self, spec: CacheSpec, path: Path) -> None:
        if spec.seed is None:
            path.mkdir()
            os.chown(path, spec.uid, spec.gid)
            path.chmod(spec.mode)
            return
        with self.store.temp_dir("cache-seed-") as temp:
            upper = temp / "upper"
            seed = CopyAction(source=spec.seed, src=spec.path, dest="/", dest_is_dir=True, allow_wildcard=False)
            self._copy_into(upper, seed, SourceTree(lowers=self.lowers(self.inputs[spec.seed])), work=temp / "work")
            upper.rename(path)

    def secret(self, spec: SecretSpec) -> tuple[SecretFile | None, str | None]:
        value = self.session.secrets.get(spec.id)
        if value is None:
            if spec.required:
                raise StepError(f"secret {spec.id}: not found")
            return None, None if spec.env is None else f"{spec.env}="  # BuildKit sets an optional one empty
        variable = None if spec.env is None else f"{spec.env}={value.decode('utf-8', 'surrogateescape')}"
        if spec.target is None:
            return None, variable
        return SecretFile(target=spec.target, data=value, mode=spec.mode, uid=spec.uid, gid=spec.gid), variable

    def ssh(self, spec: SshSpec) -> Mount | None:
        agent = self.session.ssh.socket(spec.id)
        if agent is None:
            if spec.required:
                raise StepError(f'no SSH key "{spec.id}" forwarded from the client')
            return None
        forwarder = self.stack.enter_context(AgentForwarder(agent, mode=spec.mode, uid=spec.uid, gid=spec.gid))
        return Mount(source=forwarder.path, target=spec.target, readonly=False)

    def _folder(self, name: str) -> Path:
        folder = self.scratch / name
        folder.mkdir()
        return folder

    def _copy_into(self, upper: Path, action: CopyAction, tree: SourceTree, work: Path | None = None) -> None:
        """Apply one copy onto an empty tree whose files land in `upper`, as plain files (nothing lies beneath)."""
        upper.mkdir()
        work = work or upper.with_name(upper.name + ".copywork")
        work.mkdir()
        self.executor.apply_file_actions(RootfsSpec((), upper, work), (action,), {str(action.source): tree})
