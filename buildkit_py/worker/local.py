"""The local worker: runs ExecOps and FileOps through an Executor on layer snapshots from the Store, and turns each
step's overlay upper dir into a committed layer."""

from __future__ import annotations

import collections
import shutil
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..digest import Digest
from ..errors import StepError
from ..exec.executor import Executor, ProcessSpec, RootfsSpec, SourceTree
from ..image.stored import image_config
from ..layer.snapshots import snapshot_path
from ..session import BuildSession
from ..solver.graph import BuildGraph
from ..solver.ops import (
    BindSpec,
    ContextSource,
    CopyAction,
    ExecOp,
    FileOp,
    ImageSource,
    Op,
    OpMeta,
    ScratchSource,
)
from ..solver.solver import Chain, ContentSummary
from .mounts import context_selection, prepare_mounts

if TYPE_CHECKING:
    from ..context.hashing import ContextHasher
    from ..store import Store

_OUTPUT_TAIL_LINES = 10


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
        session: BuildSession | None = None,
    ) -> None:
        self.session = session or BuildSession()
        self._cancelled = threading.Event()
        self.store = store
        self.executor = executor
        self.graph = graph
        self.hasher = hasher
        self._cpu = threading.BoundedSemaphore(max(1, cpu_slots))  # copying and layer writing are CPU-bound

    def source_chain(self, op: Op) -> Chain | None:
        if isinstance(op, ScratchSource | ContextSource):
            return ()
        if isinstance(op, ImageSource):
            return image_config(self.store, op.image_id).diff_ids
        return None

    def content(self, op: Op) -> ContentSummary:
        if isinstance(op, ExecOp) and self.hasher is not None:
            return self._bound_content(op)
        if not isinstance(op, FileOp) or self.hasher is None:
            return ContentSummary()
        digests: list[Digest | None] = []
        files: list[Mapping[str, str]] = []
        for action in op.actions:
            source = self.graph.op(action.source) if isinstance(action, CopyAction) else None
            if isinstance(action, CopyAction) and isinstance(source, ContextSource):
                selection = self.hasher.checksum(action)
                digests.append(selection.digest)
                files.append(selection.files)
            else:
                digests.append(None)
                files.append({})
        return ContentSummary(tuple(digests), tuple(files))

    def _bound_content(self, op: ExecOp) -> ContentSummary:
        """What the context bind mounts of a RUN select, checksummed exactly as a COPY's sources are."""
        assert self.hasher is not None
        digests: list[Digest | None] = []
        files: list[Mapping[str, str]] = []
        for mount in op.mounts:
            source = self.graph.op(mount.source) if isinstance(mount, BindSpec) else None
            if isinstance(mount, BindSpec) and isinstance(source, ContextSource):
                selection = self.hasher.checksum(context_selection(mount, source))
                digests.append(selection.digest)
                files.append(selection.files)
        return ContentSummary(tuple(digests), tuple(files))

    def execute(self, op: Op, meta: OpMeta, inputs: Mapping[Digest, Chain], output: Callable[[bytes], None]) -> Chain:
        if isinstance(op, ExecOp):
            return self._run_exec(op, meta, inputs, output)
        if isinstance(op, FileOp):
            return self._run_file(op, inputs)
        raise TypeError(f"the local worker cannot run {op.kind} ops")

    def cancel(self) -> None:
        self._cancelled.set()
        kill_all = getattr(self.executor, "kill_all", None)
        if kill_all is not None:
            kill_all()

    def _lowers(self, chain: Chain) -> tuple[Path, ...]:
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

        process = ProcessSpec(
            args=op.args, env=op.env, cwd=op.cwd, user=op.user, network=op.network, security=op.security
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
            )
            if mounts.env:
                process = replace(process, env=(*process.env, *mounts.env))
            status = self.executor.run(rootfs, process, mounts.mounts, sink)
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

    def _run_file(self, op: FileOp, inputs: Mapping[Digest, Chain]) -> Chain:
        chain = inputs[op.base]
        sources: dict[str, SourceTree] = {}
        for action in op.actions:
            if not isinstance(action, CopyAction) or str(action.source) in sources:
                continue
            source = self.graph.op(action.source)
            if isinstance(source, ContextSource):
                sources[str(action.source)] = SourceTree(folder=Path(source.path))
            else:
                sources[str(action.source)] = SourceTree(lowers=self._lowers(inputs[action.source]))
        with self.store.temp_dir("file-") as scratch, self._cpu:
            rootfs = self._fresh_rootfs(scratch, chain)
            self.executor.apply_file_actions(rootfs, op.actions, sources)
            return chain + self._commit(scratch, rootfs.upper)

    def _fresh_rootfs(self, scratch: Path, chain: Chain) -> RootfsSpec:
        upper, work = scratch / "upper", scratch / "work"
        upper.mkdir()
        work.mkdir()
        return RootfsSpec(lowers=self._lowers(chain), upper=upper, work=work)

    def _commit(self, scratch: Path, upper: Path) -> Chain:
        """The layer of what changed in `upper`, committed to the store; no layer when nothing changed."""
        from ..layer.generate import write_layer_tar

        tar_path = scratch / "layer.tar"
        with open(tar_path, "wb") as tar_file:
            info = write_layer_tar(upper, tar_file)
        if info.entries == 0:
            return ()
        self.store.layers.commit(tar_path, info.diff_id, info.size, snapshot=upper)
        return (info.diff_id,)
