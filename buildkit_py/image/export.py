"""`pybuild build --output`: an image written somewhere other than the store, as BuildKit's exporters do.

    type=docker,dest=F               a docker archive (what `docker load` reads)
    type=oci,dest=F[,compression=C]  an OCI image layout tar; with tar=false, dest is a folder
    type=tar,dest=F                  the image's final filesystem as one tar
    type=local,dest=DIR              the image's final filesystem written into DIR

`dest=-` writes a tar to standard output. The final filesystem is the layers merged as overlayfs would show them:
files are hard linked from the snapshots into a temp tree (never modified there), whiteouts delete, opaque
directories hide what lies below. The tree is written as a tar, and for `local` that tar is unpacked into DIR by
unpack_layer, which follows no symlink already in DIR, so nothing lands outside it.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from ..digest import Digest
from ..errors import BuildError, OutputError
from ..fs.output import check_output_path, open_output
from ..layer.generate import write_layer_tar
from ..layer.snapshots import snapshot_path
from ..layer.unpack import unpack_layer
from ..layer.whiteout import is_opaque, is_overlay_xattr, is_whiteout
from .stored import image_config

if TYPE_CHECKING:
    from ..store import Store
    from ..transfer import TransferCallback

__all__ = ["ExportError", "check_output_spec", "export_image", "parse_output_spec", "write_flattened_tar"]

_TYPES = ("docker", "oci", "tar", "local")


class ExportError(BuildError):
    """An --output spec that cannot be followed."""


def parse_output_spec(spec: str) -> dict[str, str]:
    """`type=oci,dest=out.tar` as a dict; a bare path means `type=local,dest=PATH`, and `-` a tar to stdout, as
    `docker build -o` reads them."""
    if "=" not in spec:
        return {"type": "tar", "dest": "-"} if spec == "-" else {"type": "local", "dest": spec}
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, equals, value = part.partition("=")
        if not equals or not key.strip():
            raise ExportError(f"invalid --output field {part!r} in {spec!r} (expected key=value)")
        fields[key.strip().lower()] = value
    kind = fields.get("type")
    if kind not in _TYPES:
        raise ExportError(f"--output type must be one of {', '.join(_TYPES)}, not {kind!r}")
    if not fields.get("dest"):
        raise ExportError(f"--output {spec!r} needs dest=")
    return fields


def check_output_spec(spec: str) -> None:
    """Raise now, before a build, if the --output spec is malformed or its dest cannot be written."""
    fields = parse_output_spec(spec)
    dest = fields["dest"]
    if dest == "-":
        return
    if fields["type"] == "local" or (fields["type"] == "oci" and fields.get("tar", "true").lower() == "false"):
        _check_output_folder(Path(dest))
    else:
        check_output_path(dest, "--output file")


def _check_output_folder(folder: Path) -> None:
    """A folder that exists, or whose nearest existing ancestor is a folder (it will be created beneath it)."""
    for candidate in (folder, *folder.absolute().parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise OutputError(
                    f"cannot write --output folder {str(folder)!r}: {str(candidate)!r} is not a directory"
                )
            return


@contextmanager
def _output_stream(dest: str) -> Iterator[BinaryIO]:
    """Standard output for `-`, else dest as fs.output writes it (a regular file atomically, a device in place)."""
    if dest == "-":
        yield cast(BinaryIO, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    with open_output(dest, "--output file") as stream:
        yield stream


def export_image(store: Store, image_id: Digest, spec: str, transfer: TransferCallback | None = None) -> None:
    """Write the image as the --output spec asks; `transfer` hears how much of each layer is written (docker and
    oci outputs)."""
    fields = parse_output_spec(spec)
    kind, dest = fields["type"], fields["dest"]
    names = store.tags.of(image_id) or [str(image_id)]
    if kind == "docker":
        from .docker_archive import save_docker_archive  # lazy: only the format asked for loads its writer

        with _output_stream(dest) as stream:
            save_docker_archive(store, names, stream, transfer)
    elif kind == "oci":
        from .oci_layout import save_oci_archive, save_oci_layout  # lazy: only the format asked for loads its writer

        compression = fields.get("compression", "gzip")
        if fields.get("tar", "true").lower() == "false":
            save_oci_layout(store, names, Path(dest), compression, transfer)
        else:
            with _output_stream(dest) as stream:
                save_oci_archive(store, names, stream, compression, transfer)
    elif kind == "tar":
        with _output_stream(dest) as stream:
            write_flattened_tar(store, image_id, stream)
    else:
        _check_output_folder(Path(dest))
        target = Path(dest).resolve()
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create --output folder {dest!r}: {error.strerror}") from None
        with store.temp_path("export") as tar_path:
            with open(tar_path, "wb") as stream:
                write_flattened_tar(store, image_id, stream)
            with open(tar_path, "rb") as stream:
                unpack_layer(stream, target)


def write_flattened_tar(store: Store, image_id: Digest, out: BinaryIO) -> None:
    """The image's final filesystem (all layers merged) as one uncompressed tar."""
    config = image_config(store, image_id)
    with store.temp_dir("flatten") as work:
        merged = work / "rootfs"
        merged.mkdir()
        directories: dict[Path, Path] = {}
        for diff_id in config.diff_ids:
            _apply(snapshot_path(store, diff_id), merged, directories)
        # A directory's metadata, from the topmost layer that has it, is set once its contents are in place (adding
        # entries changes its mtime), deepest first.
        for target in sorted(directories, key=lambda path: len(path.parts), reverse=True):
            if target.is_dir() and not target.is_symlink():
                _copy_dir_metadata(directories[target], target)
        write_layer_tar(merged, out)


def _apply(snapshot: Path, merged: Path, directories: dict[Path, Path]) -> None:
    """Lay one snapshot (overlay form) over the merged tree, as overlayfs shows an upper dir over a lower one."""
    stack = [(snapshot, merged)]
    while stack:
        source_dir, target_dir = stack.pop()
        with os.scandir(source_dir) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            source, target = source_dir / name, target_dir / name
            st = os.lstat(source)
            previous = _lstat(target)
            if is_whiteout(st):
                _remove(target, previous)
                continue
            if stat.S_ISDIR(st.st_mode):
                opaque = is_opaque(str(source), os.listxattr(source, follow_symlinks=False))
                if previous is not None and (opaque or not stat.S_ISDIR(previous.st_mode)):
                    _remove(target, previous)
                    previous = None
                if previous is None:
                    os.mkdir(target, 0o700)
                directories[target] = source
                stack.append((source, target))
                continue
            _remove(target, previous)
            os.link(source, target, follow_symlinks=False)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove(path: Path, st: os.stat_result | None) -> None:
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _copy_dir_metadata(source: Path, target: Path) -> None:
    st = os.lstat(source)
    if os.geteuid() == 0:
        os.chown(target, st.st_uid, st.st_gid)
    for name in os.listxattr(source, follow_symlinks=False):
        if is_overlay_xattr(name):
            continue
        try:
            os.setxattr(target, name, os.getxattr(source, name, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            continue
    os.chmod(target, stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
