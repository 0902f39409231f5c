"""Layer tars read into file lists and trees.

Two views of one layer. `LayerFiles` is what the tar says: every entry's header, in order, with whiteouts and opaque
markers kept apart. `Tree` is dive's model of a layer (`dive/filetree/file_tree.go`): a node per path component, where
intermediate directories that have no tar entry carry an empty payload (size 0, not a directory), a whiteout is a node
named `.wh.<name>` whose path is `<name>`, and opaque markers are dropped. The efficiency score is computed on that
model so that it matches dive's numbers, quirks included.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import blake3

from ..errors import LayerError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_DOUBLE_WHITEOUT_PREFIX = ".wh..wh.."
_HASH_CHUNK = 1 << 20

# Tar type flags, as single characters (tarfile uses bytes).
REGULAR = "0"
HARDLINK = "1"
SYMLINK = "2"
DIRECTORY = "5"


@dataclass(frozen=True)
class FileEntry:
    """One tar header. `path` is absolute and clean ("/etc/passwd"); whiteouts keep their `.wh.` name here."""

    path: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    linkname: str = ""
    content_hash: str = ""

    @property
    def is_dir(self) -> bool:
        return self.type == DIRECTORY

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def is_whiteout(self) -> bool:
        return self.name.startswith(WHITEOUT_PREFIX)

    def same_content(self, other: FileEntry) -> bool:
        """Same bytes, by hash when both were hashed, else by the headers a chmod/chown leaves alone."""
        if self.type != other.type or self.size != other.size or self.linkname != other.linkname:
            return False
        if self.content_hash and other.content_hash:
            return self.content_hash == other.content_hash
        return self.mtime == other.mtime

    def same_metadata(self, other: FileEntry) -> bool:
        return (self.mode, self.uid, self.gid) == (other.mode, other.uid, other.gid)


@dataclass
class LayerFiles:
    """A layer's entries in tar order. `whiteouts` are the paths a `.wh.` entry deletes; `opaque_dirs` are cleared."""

    entries: list[FileEntry] = field(default_factory=list)
    whiteouts: list[str] = field(default_factory=list)
    opaque_dirs: list[str] = field(default_factory=list)

    @property
    def content_size(self) -> int:
        """dive's layer size: the sum of every header's size (whiteouts and markers included, which are 0)."""
        return sum(entry.size for entry in self.entries)

    def files(self) -> Iterator[FileEntry]:
        """Entries that put something on the filesystem (not whiteouts or opaque markers)."""
        return (entry for entry in self.entries if not entry.is_whiteout)


def clean_path(name: str) -> str:
    """Go's path.Clean applied to a tar name, made absolute; "" for the root itself."""
    cleaned = posixpath.normpath("/" + name.lstrip("/"))
    return "" if cleaned == "/" else cleaned


def _type_of(member: tarfile.TarInfo) -> str:
    flag = member.type
    if flag == tarfile.AREGTYPE or flag == tarfile.CONTTYPE:
        return REGULAR
    return flag.decode("ascii", "replace")


def read_layer(stream: BinaryIO, hash_content: bool = False) -> LayerFiles:
    """Read a layer tar's headers (and file contents only when `hash_content`); seeks past data when it can."""
    seekable = False
    try:
        seekable = stream.seekable()
    except (AttributeError, OSError):
        pass
    layer = LayerFiles()
    try:
        with tarfile.open(fileobj=stream, mode="r:" if seekable else "r|") as archive:
            for member in archive:
                path = clean_path(member.name)
                if not path:
                    continue
                content_hash = ""
                if hash_content and member.isreg():
                    content_hash = _hash_member(archive, member)
                entry = FileEntry(
                    path=path,
                    type=_type_of(member),
                    size=member.size,
                    mode=member.mode,
                    uid=member.uid,
                    gid=member.gid,
                    mtime=int(member.mtime),
                    linkname=member.linkname,
                    content_hash=content_hash,
                )
                layer.entries.append(entry)
                name = entry.name
                if name == OPAQUE_MARKER:
                    layer.opaque_dirs.append(posixpath.dirname(path))
                elif name.startswith(WHITEOUT_PREFIX):
                    layer.whiteouts.append(posixpath.join(posixpath.dirname(path), name[len(WHITEOUT_PREFIX) :]))
    except (tarfile.TarError, EOFError) as error:
        raise LayerError(f"cannot read layer tar: {error}") from error
    return layer


def _hash_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    source = archive.extractfile(member)
    if source is None:
        return ""
    hasher = blake3.blake3()
    while chunk := source.read(_HASH_CHUNK):
        hasher.update(chunk)
    return str(hasher.hexdigest())


# dive's tree model ------------------------------------------------------------------------------------------------


class Node:
    """A dive FileNode: `entry` None is dive's empty FileInfo{} (size 0, not a directory)."""

    __slots__ = ("children", "entry", "name", "parent")

    def __init__(self, name: str, parent: Node | None, entry: FileEntry | None = None) -> None:
        self.name = name
        self.parent = parent
        self.children: dict[str, Node] = {}
        self.entry = entry

    @property
    def size(self) -> int:
        return self.entry.size if self.entry is not None else 0

    @property
    def is_dir(self) -> bool:
        return self.entry is not None and self.entry.is_dir

    @property
    def is_whiteout(self) -> bool:
        return self.name.startswith(WHITEOUT_PREFIX)

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def path(self) -> str:
        """dive's Path(): the `.wh.` prefix is dropped from this node's own name only."""
        names = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            name = node.name
            if node is self and name.startswith(WHITEOUT_PREFIX):
                name = name[len(WHITEOUT_PREFIX) :]
            names.append(name)
            node = node.parent
        return ("/" + "/".join(reversed(names))).replace("//", "/")

    def copy(self, parent: Node | None) -> Node:
        clone = Node(self.name, parent, self.entry)
        clone.children = {name: child.copy(clone) for name, child in self.children.items()}
        return clone

    def visit_child_first(self, include_self: bool = True) -> Iterator[Node]:
        """Depth first, children before their parent, siblings by name (dive's VisitDepthChildFirst, ByName)."""
        stack: list[tuple[Node, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded or not node.children:
                if include_self or node is not self:
                    yield node
                continue
            stack.append((node, True))
            for name in sorted(node.children, reverse=True):
                stack.append((node.children[name], False))


class Tree:
    """A dive FileTree."""

    def __init__(self) -> None:
        self.root = Node("", None)

    @classmethod
    def from_layer(cls, layer: LayerFiles) -> Tree:
        tree = cls()
        for entry in layer.entries:
            tree.add_path(entry.path, entry)
        return tree

    def add_path(self, path: str, entry: FileEntry | None) -> Node | None:
        node = self.root
        names = [name for name in path.strip("/").split("/") if name]
        for index, name in enumerate(names):
            child = node.children.get(name)
            if child is None:
                if name.startswith(_DOUBLE_WHITEOUT_PREFIX):
                    return None
                child = Node(name, node)
                node.children[name] = child
            node = child
            if index == len(names) - 1:
                node.entry = entry
        return node

    def get_node(self, path: str) -> Node | None:
        node = self.root
        for name in path.strip("/").split("/"):
            if not name:
                continue
            child = node.children.get(name)
            if child is None:
                return None
            node = child
        return node

    def remove_path(self, path: str) -> bool:
        node = self.get_node(path)
        if node is None or node.parent is None:
            return False
        del node.parent.children[node.name]
        return True

    def copy(self) -> Tree:
        clone = Tree()
        clone.root = self.root.copy(None)
        return clone

    def stack(self, upper: Tree) -> None:
        """Lay `upper` on this tree as dive's Stack does: whiteouts remove, everything else is added in place."""
        for node in upper.root.visit_child_first(include_self=False):
            if node.is_whiteout:
                self.remove_path(node.path)
            else:
                self.add_path(node.path, node.entry)

    def nodes(self, keep: Callable[[Node], bool] | None = None) -> Iterator[Node]:
        for node in self.root.visit_child_first(include_self=False):
            if keep is None or keep(node):
                yield node
