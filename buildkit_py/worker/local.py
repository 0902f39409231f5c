"""The local worker: runs ExecOps and FileOps through an Executor on layer snapshots from the Store, and turns each
step's overlay upper dir into a committed layer.

ADD's remote sources are keyed by what they hold: a download by its content's digest and name (downloaded, or
revalidated, when the keys are computed), a git source by the commit its ref names (`git ls-remote`: an unchanged
ref is a hit without cloning). A step that runs gets them as folders of its own: the downloaded file, a checkout."""

from __future__ import annotations

import collections
import errno
import shutil
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..context.hashing import ContextHasher
from ..digest import Digest, digest_json
from ..errors import StepError, StoreError
from ..exec.executor import CopyProgress, Executor, Mount, ProcessSpec, RootfsSpec, SourceTree
from ..image.stored import image_config
from ..layer.snapshots import snapshot_path
from ..session import BuildSession
from ..solver.graph import BuildGraph
from ..solver.ops import (
    INLINE_SCRIPT_DIR,
    BindSpec,
    ContextSource,
    CopyAction,
    ExecOp,
    FileOp,
    GitSource,
    HttpSource,
    ImageSource,
    InlineFile,
    InlineSource,
    Op,
    OpMeta,
    ScratchSource,
)
from ..solver.progress import StepSink
from ..solver.solver import Chain, ContentSummary
from ..sources.git import ResolvedRef, checkout, resolve_ref, subdir_folder
from .mounts import context_selection, prepare_mounts

if TYPE_CHECKING:
    from ..sources.http import FetchedFile
    from ..store import Store

_OUTPUT_TAIL_LINES = 10


def _write_inline(folder: Path, files: tuple[InlineFile, ...]) -> Path:
    """The files of a heredoc in a fresh folder of ours; names were checked to be plain when the op was made."""
    folder.mkdir()
    for inline in files:
        path = folder / inline.name
        path.write_bytes(inline.data)
        path.chmod(inline.mode)
    return folder


def _discard_volumes(upper: Path, volumes: tuple[str, ...]) -> None:
    """Drop what a RUN wrote under VOLUME paths: in Docker those writes went to a volume, not the layer.

    The upper dir holds what the step made, symlinks included: never follow one here, it may point anywhere on the
    host."""
    for volume in volumes:
        parts = [part for part in volume.split("/") if part not in ("", ".", "..")]
        if not parts:
            continue
        current = upper
        for part in parts[:-1]:
            current = current / part
            if current.is_symlink() or not current.is_dir():
                break
        else:
            changed = current / parts[-1]
            if changed.is_symlink() or not changed.is_dir():
                changed.unlink(missing_ok=True)
            else:
                shutil.rmtree(changed)


class LocalWorker:
    def __init__(
        self,
        store: Store,
        executor: Executor,
        graph: BuildGraph,
        hasher: ContextHasher | None,
        cpu_slots: int = 1,
        mtime_limit: int | None = None,
        fetch_layers: Callable[[Chain], None] | None = None,
        session: BuildSession | None = None,
        restore_cache_mount: Callable[[str], None] | None = None,
    ) -> None:
        """`mtime_limit` (SOURCE_DATE_EPOCH) clamps the file times of every layer this worker writes; `fetch_layers`
        makes the layers of a chain local when some came from an imported cache and are not downloaded yet, and
        `restore_cache_mount` a cache mount's content, before a step that mounts it runs.
        `session` holds the build's secrets and ssh agents, for RUN's secret and ssh mounts."""
        self.session = session or BuildSession()
        self._cancelled = threading.Event()
        self.store = store
        self.executor = executor
        self.graph = graph
        self.hasher = hasher
        self.mtime_limit = mtime_limit
        self.fetch_layers = fetch_layers
        self.restore_cache_mount = restore_cache_mount
        self._cpu = threading.BoundedSemaphore(max(1, cpu_slots))  # copying and layer writing are CPU-bound
        self._remote_lock = threading.Lock()
        self._downloads: dict[Digest, FetchedFile] = {}
        self._commits: dict[Digest, ResolvedRef] = {}
        self._hashers: dict[str, ContextHasher] = {}
        self._hashers_lock = threading.Lock()

    def source_chain(self, op: Op) -> Chain | None:
        if isinstance(op, ScratchSource | ContextSource | HttpSource | GitSource | InlineSource):
            return ()
        if isinstance(op, ImageSource):
            return image_config(self.store, op.image_id).diff_ids
        return None

    def _download(self, op: HttpSource) -> FetchedFile:
        """The op's file in the store, fetched once per build."""
        from ..sources.http import fetch  # lazy: only ADD of a URL loads httpx (~130 modules)

        with self._remote_lock:
            known = self._downloads.get(op.digest)
        if known is None:
            known = fetch(self.store, op.url, url_name=op.filename, checksum=op.checksum)
            with self._remote_lock:
                self._downloads[op.digest] = known
        return known

    def _resolved(self, op: GitSource) -> ResolvedRef:
        """The commit the op's ref names, asked once per build."""
        with self._remote_lock:
            known = self._commits.get(op.digest)
        if known is None:
            known = resolve_ref(op.remote, op.ref, op.checksum)
            with self._remote_lock:
                self._commits[op.digest] = known
        return known

    def content(self, op: Op) -> ContentSummary:
        summary = self._context_content(op)
        if self.mtime_limit is not None and isinstance(op, ExecOp | FileOp):
            # The layer's file times depend on the limit, so its step's cache key must too.
            clamp = digest_json({"mtime_limit": self.mtime_limit})
            settings = {"SOURCE_DATE_EPOCH": str(self.mtime_limit)}
            return ContentSummary((*summary.digests, clamp), summary.files, settings)
        return summary

    def _context_content(self, op: Op) -> ContentSummary:
        if isinstance(op, ExecOp) and self.hasher is not None:
            return self._bound_content(op)
        if isinstance(op, HttpSource):
            fetched = self._download(op)
            digest = digest_json({"name": fetched.filename, "content": str(fetched.digest)})
            return ContentSummary((digest,), ({fetched.filename: fetched.digest.hex[:16]},))
        if isinstance(op, GitSource):
            resolved = self._resolved(op)
            commit = resolved.object if op.keep_git_dir else resolved.commit
            return ContentSummary((digest_json({"commit": commit}),), ({op.ref or "HEAD": commit[:16]},))
        if not isinstance(op, FileOp) or self.hasher is None:
            return ContentSummary()
        digests: list[Digest | None] = []
        files: list[Mapping[str, str]] = []
        for action in op.actions:
            source = self.graph.op(action.source) if isinstance(action, CopyAction) else None
            if isinstance(action, CopyAction) and isinstance(source, ContextSource):
                selection = self._hasher_for(source, self.hasher).checksum(action)
                digests.append(selection.digest)
                files.append(selection.files)
            else:
                digests.append(None)
                files.append({})
        return ContentSummary(tuple(digests), tuple(files))

    def _hasher_for(self, source: ContextSource, main: ContextHasher) -> ContextHasher:
        """The main context's hasher, or one of a named context's folder (`--build-context NAME=DIR`)."""
        if Path(source.path) == main.context:
            return main
        with self._hashers_lock:
            hasher = self._hashers.get(source.path)
            if hasher is None:
                hasher = self._hashers[source.path] = ContextHasher(Path(source.path), self.store)
            return hasher

    def _bound_content(self, op: ExecOp) -> ContentSummary:
        """What the context bind mounts of a RUN select, checksummed exactly as a COPY's sources are."""
        assert self.hasher is not None
        digests: list[Digest | None] = []
        files: list[Mapping[str, str]] = []
        for mount in op.mounts:
            source = self.graph.op(mount.source) if isinstance(mount, BindSpec) else None
            if isinstance(mount, BindSpec) and isinstance(source, ContextSource):
                selection = self._hasher_for(source, self.hasher).checksum(context_selection(mount, source))
                digests.append(selection.digest)
                files.append(selection.files)
        return ContentSummary(tuple(digests), tuple(files))

    def execute(self, op: Op, meta: OpMeta, inputs: Mapping[Digest, Chain], output: StepSink) -> Chain:
        if isinstance(op, ExecOp):
            return self._run_exec(op, meta, inputs, output)
        if isinstance(op, FileOp):
            return self._run_file(op, inputs, output.transferred)
        raise TypeError(f"the local worker cannot run {op.kind} ops")

    def cancel(self) -> None:
        self._cancelled.set()
        kill_all = getattr(self.executor, "kill_all", None)
        if kill_all is not None:
            kill_all()

    def _lowers(self, chain: Chain) -> tuple[Path, ...]:
        if self.fetch_layers is not None:
            self.fetch_layers(chain)
        return tuple(snapshot_path(self.store, diff_id) for diff_id in reversed(chain))

    def _run_exec(
        self, op: ExecOp, meta: OpMeta, inputs: Mapping[Digest, Chain], output: Callable[[bytes], None]
    ) -> Chain:
        chain = inputs[op.rootfs]
        tail: collections.deque[bytes] = collections.deque(maxlen=_OUTPUT_TAIL_LINES)
        partial = bytearray()

        def sink(data: bytes) -> None:
            output(data)
            partial.extend(data)
            *lines, rest = bytes(partial).split(b"\n")
            tail.extend(lines)
            partial[:] = rest

        extra_hosts: tuple[tuple[str, str], ...] = ()
        if op.extra_hosts:
            from ..exec.network import host_gateway  # lazy: the sandbox's network code only for `--add-host`

            extra_hosts = tuple((name, host_gateway(address, op.network)) for name, address in op.extra_hosts)
        process = ProcessSpec(
            args=op.args,
            env=(*op.env, *op.proxy_env),
            cwd=op.cwd,
            user=op.user,
            network=op.network,
            security=op.security,
            extra_hosts=extra_hosts,
        )
        with self.store.temp_dir("exec-") as scratch, ExitStack() as held:
            rootfs = self._fresh_rootfs(scratch, chain)
            mounts = prepare_mounts(
                op,
                graph=self.graph,
                inputs=inputs,
                lowers=self._lowers,
                store=self.store,
                executor=self.executor,
                session=self.session,
                scratch=scratch,
                stack=held,
                cancelled=self._cancelled.is_set,
                restore_cache=self.restore_cache_mount,
            )
            if mounts.env:
                process = replace(process, env=(*process.env, *mounts.env))
            scripts = _write_inline(scratch / "pipes", op.scripts)
            script_mounts = [
                Mount(source=scripts / script.name, target=f"{INLINE_SCRIPT_DIR}/{script.name}")
                for script in op.scripts
            ]
            status = self.executor.run(rootfs, process, [*mounts.mounts, *script_mounts], sink)
            held.close()  # caches, agents: released as soon as the step's processes are gone
            if status != 0:
                if partial:
                    tail.append(bytes(partial))
                raise StepError(
                    f"exit status {status}" if status < 128 else f"killed by signal {status - 128}",
                    meta.location,
                    meta.instruction,
                    exit_status=status,
                    output_tail=tuple(line.decode(errors="replace") for line in tail),
                )
            _discard_volumes(rootfs.upper, op.volumes)
            with self._cpu:
                return chain + self._commit(scratch, rootfs.upper)

    def _run_file(self, op: FileOp, inputs: Mapping[Digest, Chain], progress: CopyProgress) -> Chain:
        chain = inputs[op.base]
        with self.store.temp_dir("file-") as scratch:
            sources: dict[str, SourceTree] = {}
            for action in op.actions:
                if isinstance(action, CopyAction) and str(action.source) not in sources:
                    folder = scratch / f"source-{len(sources)}"
                    sources[str(action.source)] = self._source_tree(self.graph.op(action.source), inputs, folder)
            with self._cpu:
                rootfs = self._fresh_rootfs(scratch, chain)
                self.executor.apply_file_actions(rootfs, op.actions, sources, progress)
                return chain + self._commit(scratch, rootfs.upper)

    def _source_tree(self, source: Op, inputs: Mapping[Digest, Chain], folder: Path) -> SourceTree:
        """What a copy reads from: the context folder, a stage's layers, or `folder` holding a download or a
        checkout."""
        if isinstance(source, ContextSource):
            return SourceTree(folder=Path(source.path))
        if isinstance(source, InlineSource):
            return SourceTree(folder=_write_inline(folder, source.files))
        if isinstance(source, HttpSource):
            from ..sources.http import materialize  # lazy: see _download

            folder.mkdir()
            materialize(self.store, self._download(source), folder)
            return SourceTree(folder=folder)
        if isinstance(source, GitSource):
            checkout(source.remote, self._resolved(source), folder, keep_git_dir=source.keep_git_dir)
            return SourceTree(folder=subdir_folder(folder, source.subdir))
        return SourceTree(lowers=self._lowers(inputs[source.digest]))

    def _fresh_rootfs(self, scratch: Path, chain: Chain) -> RootfsSpec:
        upper, work = scratch / "upper", scratch / "work"
        upper.mkdir()
        work.mkdir()
        return RootfsSpec(lowers=self._lowers(chain), upper=upper, work=work)

    def _commit(self, scratch: Path, upper: Path) -> Chain:
        """The layer of what changed in `upper`, committed to the store; no layer when nothing changed. The upper dir
        becomes the layer's snapshot, and its tar is kept as a recipe over it: the bytes are on disk once."""
        # lazy: a build whose steps are all cached commits no layer and never loads tarfile
        from ..layer.generate import layer_recipe

        del scratch
        try:
            info, recipe = layer_recipe(upper, self.mtime_limit)
            if info.entries == 0:
                return ()
            self.store.layers.commit_recipe(info.diff_id, info.size, recipe, snapshot=upper)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StoreError(
                f"no space left to store the step's layer under {self.store.root}: free some space "
                "(pybuild system prune, pybuild cache prune) or use a store with more room (--root)"
            ) from None
        return (info.diff_id,)
