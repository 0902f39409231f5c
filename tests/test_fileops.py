"""COPY, ADD (local sources) and WORKDIR's mkdir applied to real trees, rule by rule as Docker 20.10's classic builder
does them (each rule observed with `DOCKER_BUILDKIT=0 docker build`), then whole trees compared with Docker's own."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from buildkit_py.digest import Digest
from buildkit_py.errors import ContextError, StepError
from buildkit_py.exec.fileops import apply_actions
from buildkit_py.solver.ops import Chown, CopyAction, FileAction, MkdirAction

CTX = Digest("blake3", "c" * 64)
STAGE = Digest("blake3", "5" * 64)
ROOT = Chown("0", "0")  # what the frontend passes for the build context: Docker chowns context files to root
OLD = 981173106  # 2001-02-03 04:05:06 UTC


def copy(src: str, dest: str, **fields: object) -> CopyAction:
    action = CopyAction(source=CTX, src=src, dest=dest, dest_is_dir=dest.endswith("/"), chown=ROOT)
    return replace(action, **fields)  # type: ignore[arg-type]


def add(src: str, dest: str, **fields: object) -> CopyAction:
    return copy(src, dest, attempt_unpack=True, **fields)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "context"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "emptydir").mkdir()
    (root / "d" / "f1").write_text("one\n")
    (root / "d" / "sub" / "f2").write_text("two\n")
    os.link(root / "d" / "f1", root / "d" / "hl1")
    (root / "d" / "sl1").symlink_to("f1")
    (root / "d" / "slabs").symlink_to("/etc/passwd")
    os.chmod(root / "d" / "f1", 0o640)
    os.chmod(root / "d" / "sub", 0o750)
    os.chown(root / "d" / "sub" / "f2", 1234, 2345)
    for path in (root / "d" / "f1", root / "d" / "sub" / "f2", root / "d" / "sub"):
        os.utime(path, (OLD, OLD + 0.75))
    (root / "f1").write_text("top\n")
    (root / "f2").write_text("top2\n")
    (root / "lnk").symlink_to("d/f1")
    (root / "lnkdir").symlink_to("d")
    return root


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    root = tmp_path / "dest"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nbob:x:4321:4322::/home/bob:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nbobg:x:4322:\n")
    return root


def run(dest: Path, context: Path, *actions: FileAction, stage: Path | None = None) -> None:
    sources = {str(CTX): context}
    if stage is not None:
        sources[str(STAGE)] = stage
    apply_actions(dest, sources, actions)


def info(path: Path) -> tuple[str, int, int, int]:
    st = os.lstat(path)
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"
    return kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


# -- where things go ---------------------------------------------------------------------------------------------


def test_directory_copies_its_contents_into_a_new_0755_root_dir(dest: Path, context: Path) -> None:
    os.chmod(context / "d", 0o700)
    run(dest, context, copy("d", "/a/"))
    assert sorted(p.name for p in (dest / "a").iterdir()) == ["emptydir", "f1", "hl1", "sl1", "slabs", "sub"]
    assert info(dest / "a") == ("dir", 0o755, 0, 0)
    assert info(dest / "a" / "sub") == ("dir", 0o750, 0, 0)
    assert (dest / "a" / "sub" / "f2").read_text() == "two\n"


def test_file_goes_inside_a_dest_ending_in_slash_or_an_existing_dir(dest: Path, context: Path) -> None:
    (dest / "existing").mkdir()
    run(dest, context, copy("d/f1", "/b"), copy("d/f1", "/c/"), copy("d/f1", "/existing"))
    assert (dest / "b").read_text() == "one\n"
    assert (dest / "c" / "f1").read_text() == "one\n"
    assert (dest / "existing" / "f1").read_text() == "one\n"


def test_several_matches_need_a_dir_dest(dest: Path, context: Path) -> None:
    with pytest.raises(StepError) as error:
        run(dest, context, copy("f*", "/x"))
    assert error.value.message == (
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    )
    run(dest, context, copy("f*", "/w/"))
    assert sorted(p.name for p in (dest / "w").iterdir()) == ["f1", "f2"]


def test_wildcard_matching_nothing(dest: Path, context: Path) -> None:
    with pytest.raises(StepError, match=r"^COPY failed: no source files were specified$"):
        run(dest, context, copy("nomatch*", "/x/"))
    run(dest, context, copy("nomatch*", "/x/", allow_empty_wildcard=True))
    assert not (dest / "x").exists()


def test_missing_source_has_dockers_message(dest: Path, context: Path) -> None:
    with pytest.raises(StepError) as error:
        run(dest, context, copy("missing", "/x"))
    assert error.value.message == (
        "COPY failed: file not found in build context or excluded by .dockerignore: stat missing: file does not exist"
    )
    with pytest.raises(StepError, match="^ADD failed: file not found"):
        run(dest, context, add("missing", "/x"))
    with pytest.raises(ContextError, match=r"^COPY failed: forbidden path outside the build context: \.\./x \(\)$"):
        run(dest, context, copy("../x", "/x"))


def test_wildcard_directories_merge_their_contents(dest: Path, context: Path) -> None:
    (context / "dirs" / "da").mkdir(parents=True)
    (context / "dirs" / "db").mkdir()
    (context / "dirs" / "da" / "a").write_text("A")
    (context / "dirs" / "db" / "b").write_text("B")
    run(dest, context, copy("dirs/*", "/w2/"), copy("f1", "/multi/"), copy("dirs", "/multi/"))
    assert sorted(os.listdir(dest / "w2")) == ["a", "b"]
    assert sorted(os.listdir(dest / "multi")) == ["da", "db", "f1"]


def test_a_second_source_overwrites_and_merges_what_the_first_put_in_a_new_dest(dest: Path, context: Path) -> None:
    """The first source fills a folder the copy made; the second writes into the same names, which are then there."""
    for name, text in (("da", "A"), ("db", "B")):
        (context / "two" / name / "sub").mkdir(parents=True)
        (context / "two" / name / "x").write_text(text)
        (context / "two" / name / "sub" / "y").write_text(text)
    (context / "two" / "da" / "k").write_text("a file first")
    (context / "two" / "db" / "k").mkdir()
    (context / "two" / "db" / "k" / "inside").write_text("then a folder")
    (context / "two" / "db" / "sub" / "z").write_text("only B")
    run(dest, context, copy("two/*", "/w/"), copy("two/da", "/w2"), copy("two/db", "/w2"))
    for folder in ("w", "w2"):
        assert (dest / folder / "x").read_text() == "B"
        assert (dest / folder / "sub" / "y").read_text() == "B"
        assert (dest / folder / "sub" / "z").read_text() == "only B"
        assert (dest / folder / "k" / "inside").read_text() == "then a folder"


# -- parents, overwrite, merge -----------------------------------------------------------------------------------


def test_missing_parents_are_root_0755_or_the_chown_owner_for_a_file(dest: Path, context: Path) -> None:
    run(dest, context, copy("d/f1", "/p/q/r/f", chown=Chown("1000", "1001")), copy("d/f1", "/plain/x/f"))
    for path in ("p", "p/q", "p/q/r", "p/q/r/f"):
        assert info(dest / path)[2:] == (1000, 1001)
    assert info(dest / "p" / "q") == ("dir", 0o755, 1000, 1001)
    assert info(dest / "plain" / "x") == ("dir", 0o755, 0, 0)


def test_directory_copy_chowns_the_new_dest_dir_but_not_its_parents(dest: Path, context: Path) -> None:
    run(dest, context, copy("d", "/pd/x/y/", chown=Chown("1000", "1001")))
    assert info(dest / "pd") == ("dir", 0o755, 0, 0)
    assert info(dest / "pd" / "x") == ("dir", 0o755, 0, 0)
    assert info(dest / "pd" / "x" / "y") == ("dir", 0o755, 1000, 1001)
    assert info(dest / "pd" / "x" / "y" / "sl1") == ("link", 0o777, 1000, 1001)


def test_existing_dest_dir_keeps_its_mode_and_owner(dest: Path, context: Path) -> None:
    (dest / "ex").mkdir(mode=0o711)
    os.chown(dest / "ex", 5, 5)
    run(dest, context, copy("d", "/ex/", chown=Chown("9", "9")))
    assert info(dest / "ex") == ("dir", 0o711, 5, 5)
    assert info(dest / "ex" / "f1") == ("file", 0o640, 9, 9)


def test_existing_files_are_overwritten_and_dirs_merged(dest: Path, context: Path) -> None:
    (dest / "m" / "sub").mkdir(parents=True, mode=0o777)
    os.chmod(dest / "m" / "sub", 0o777)
    os.chown(dest / "m" / "sub", 5, 5)
    (dest / "m" / "keep").write_text("keep\n")
    (dest / "m" / "sub" / "old").write_text("old\n")
    (dest / "m" / "f1").write_text("old contents, longer\n")
    (dest / "m" / "sl1").mkdir()  # a dir in the way of a symlink is replaced
    run(dest, context, copy("d", "/m"))
    assert (dest / "m" / "keep").read_text() == "keep\n"
    assert (dest / "m" / "sub" / "old").read_text() == "old\n"
    assert (dest / "m" / "f1").read_text() == "one\n"
    assert info(dest / "m" / "sub") == ("dir", 0o750, 0, 0)  # a merged subdir takes the source's mode and owner
    assert os.readlink(dest / "m" / "sl1") == "f1"


def test_dir_onto_a_file_fails(dest: Path, context: Path) -> None:
    (dest / "efile").write_text("x\n")
    with pytest.raises(
        StepError, match="failed to copy files: failed to copy directory: mkdir /efile: not a directory"
    ):
        run(dest, context, copy("d", "/efile"))
    with pytest.raises(StepError, match="^failed to copy files: lstat /efile/sub: not a directory$"):
        run(dest, context, copy("f1", "/efile/sub"))
    with pytest.raises(StepError, match="failed to create new directory: mkdir /efile: not a directory"):
        run(dest, context, copy("f1", "/efile/"))


# -- symlinks and hard links -------------------------------------------------------------------------------------


def test_top_level_symlink_is_followed_and_inner_ones_kept(dest: Path, context: Path) -> None:
    run(dest, context, copy("lnk", "/l1"), copy("lnkdir", "/l2/"), copy("lnk", "/c2/"))
    assert info(dest / "l1") == ("file", 0o640, 0, 0)
    assert (dest / "c2" / "lnk").read_text() == "one\n"
    assert os.readlink(dest / "l2" / "sl1") == "f1"
    assert os.readlink(dest / "l2" / "slabs") == "/etc/passwd"


def test_dest_symlinks_resolve_inside_the_root(dest: Path, context: Path) -> None:
    (dest / "srv").mkdir()
    (dest / "app").symlink_to("/srv")
    (dest / "srv" / "target").write_text("T\n")
    (dest / "lnkfile").symlink_to("/srv/target")
    (dest / "c").mkdir()
    (dest / "c" / "f1").symlink_to("/etc/passwd")
    run(dest, context, copy("d/f1", "/app/viaapp"), copy("f1", "/lnkfile"), copy("d/f1", "/c/"))
    assert (dest / "srv" / "viaapp").read_text() == "one\n"
    assert os.readlink(dest / "lnkfile") == "/srv/target"  # the final symlink of dest is followed...
    assert (dest / "srv" / "target").read_text() == "top\n"
    assert info(dest / "c" / "f1")[0] == "file"  # ...but one met inside dest is replaced
    assert "bob" in (dest / "etc" / "passwd").read_text()


def test_hard_links_within_one_directory_are_kept(dest: Path, context: Path) -> None:
    os.link(context / "f1", context / "hla")
    run(dest, context, copy("d", "/hl/"), copy("hla", "/hl2/"), copy("f1", "/hl2/"))
    assert os.stat(dest / "hl" / "f1").st_ino == os.stat(dest / "hl" / "hl1").st_ino
    assert os.stat(dest / "hl2" / "hla").st_ino != os.stat(dest / "hl2" / "f1").st_ino


# -- attributes --------------------------------------------------------------------------------------------------


def test_modes_and_mtimes_kept_truncated_to_the_second(dest: Path, context: Path) -> None:
    run(dest, context, copy("d", "/a/"))
    st = os.stat(dest / "a" / "f1")
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == OLD * 10**9 and st.st_atime_ns == OLD * 10**9
    assert os.stat(dest / "a" / "sub").st_mtime_ns == OLD * 10**9
    assert os.lstat(dest / "a" / "sl1").st_mtime_ns % 10**9 == 0


def test_chown_drops_setuid_like_the_kernel(dest: Path, context: Path) -> None:
    for name, mode in (("suid", 0o4755), ("sgid", 0o2755), ("sgidnx", 0o2744)):
        (context / name).write_text(name)
        os.chmod(context / name, mode)
    (context / "sgdir").mkdir()
    os.chmod(context / "sgdir", 0o2775)
    (context / "sgdir" / "in").mkdir()
    os.chmod(context / "sgdir" / "in", 0o2775)
    run(dest, context, *(copy(name, "/perm/") for name in ("suid", "sgid", "sgidnx", "sgdir")))
    assert info(dest / "perm" / "suid")[1] == 0o755
    assert info(dest / "perm" / "sgid")[1] == 0o755
    assert info(dest / "perm" / "sgidnx")[1] == 0o2744
    assert info(dest / "perm" / "in")[1] == 0o2775


def test_without_chown_owners_and_setuid_are_kept(dest: Path, context: Path, tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "o" / "sub").mkdir(parents=True)
    (stage / "o" / "f").write_text("o\n")
    for path in (stage / "o", stage / "o" / "sub", stage / "o" / "f"):
        os.chown(path, 5, 6)
    os.chmod(stage / "o" / "f", 0o4755)
    (stage / "o" / "abslink").symlink_to("/o/f")
    os.lchown(stage / "o" / "abslink", 7, 8)
    os.mkfifo(stage / "o" / "fifo")
    from_stage = {"source": STAGE, "chown": None}
    run(
        dest,
        context,
        copy("/o", "/fromo/", **from_stage),
        copy("/o/abslink", "/fromabs", **from_stage),
        copy("/o", "/fromochown/", source=STAGE, chown=Chown("3", "4")),
        stage=stage,
    )
    assert info(dest / "fromo") == ("dir", 0o755, 0, 0)
    assert info(dest / "fromo" / "f") == ("file", 0o4755, 5, 6)
    assert info(dest / "fromo" / "sub")[2:] == (5, 6)
    assert info(dest / "fromo" / "abslink") == ("link", 0o777, 7, 8)
    assert stat.S_ISFIFO(os.lstat(dest / "fromo" / "fifo").st_mode)
    assert info(dest / "fromabs") == ("file", 0o4755, 5, 6)  # /o/f, resolved inside the stage's root
    assert info(dest / "fromochown" / "f") == ("file", 0o755, 3, 4)


def test_chown_by_name_resolves_in_the_destination(dest: Path, context: Path) -> None:
    run(dest, context, copy("d/f1", "/bobfile", chown=Chown("bob", "bobg")))
    assert info(dest / "bobfile")[2:] == (4321, 4322)
    with pytest.raises(StepError, match="can't find gid for group bob: no such group: bob"):
        run(dest, context, copy("d/f1", "/bobfile", chown=Chown("bob")))


def test_chmod_sets_the_mode(dest: Path, context: Path) -> None:
    run(dest, context, copy("d", "/cm/", chmod=0o700))
    assert info(dest / "cm" / "f1")[1] == 0o700 and info(dest / "cm" / "sub")[1] == 0o700


# -- .dockerignore -----------------------------------------------------------------------------------------------


def test_ignored_files_are_not_copied(dest: Path, context: Path) -> None:
    os.chmod(context / "d", 0o700)
    run(dest, context, copy(".", "/all/", exclude=("d", "!d/sub/f2", "f2")))
    assert not (dest / "all" / "f2").exists() and not (dest / "all" / "d" / "f1").exists()
    assert (dest / "all" / "d" / "sub" / "f2").exists()
    assert info(dest / "all" / "d") == ("dir", 0o755, 0, 0)  # implied: its header was never sent
    with pytest.raises(StepError, match="stat f2: file does not exist"):
        run(dest, context, copy("f2", "/x", exclude=("f2",)))


# -- ADD ---------------------------------------------------------------------------------------------------------


def _tar(entries: list[tuple[str, bytes | None, dict[str, object]]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data, attributes in entries:
            member = tarfile.TarInfo(name)
            member.mtime = 1000000000
            for key, value in attributes.items():
                setattr(member, key, value)
            if data is not None:
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


@pytest.fixture
def archives(context: Path) -> Path:
    plain = _tar(
        [
            ("tdir", None, {"type": tarfile.DIRTYPE, "mode": 0o755}),
            ("tdir/a", b"inside\n", {"uid": 777, "gid": 888, "mode": 0o4755}),
            ("tdir/sl", None, {"type": tarfile.SYMTYPE, "linkname": "a"}),
        ]
    )
    (context / "t.tar").write_bytes(plain)
    (context / "t.tgz").write_bytes(gzip.compress(plain))
    (context / "t.tbz").write_bytes(bz2.compress(plain))
    (context / "t.txz").write_bytes(lzma.compress(plain))
    (context / "noext").write_bytes(gzip.compress(plain))
    (context / "fake.tar.gz").write_text("not a tar\n")
    return context


@pytest.mark.parametrize("name", ["t.tar", "t.tgz", "t.tbz", "t.txz", "noext"])
def test_add_extracts_archives_found_by_content(dest: Path, archives: Path, name: str) -> None:
    run(dest, archives, add(name, "/x/", chown=Chown("7", "7")))
    assert info(dest / "x") == ("dir", 0o755, 0, 0)
    assert info(dest / "x" / "tdir" / "a") == ("file", 0o4755, 777, 888)  # owners from the archive, --chown or not
    assert os.readlink(dest / "x" / "tdir" / "sl") == "a"
    assert os.stat(dest / "x" / "tdir" / "a").st_mtime == 1000000000


def test_add_copies_a_non_archive_and_copy_never_extracts(dest: Path, archives: Path) -> None:
    run(dest, archives, add("fake.tar.gz", "/x6/"), copy("t.tar", "/copied.tar"), add("t.tgz", "/x7"))
    assert (dest / "x6" / "fake.tar.gz").read_text() == "not a tar\n"
    assert (dest / "copied.tar").read_bytes() == (archives / "t.tar").read_bytes()
    assert (dest / "x7" / "tdir" / "a").read_text() == "inside\n"


def test_add_extraction_stays_in_the_destination(dest: Path, context: Path) -> None:
    (context / "escape.tar").write_bytes(
        _tar(
            [
                ("../evil", b"x", {}),
                ("/absfile", b"abs", {}),
                ("esc", None, {"type": tarfile.SYMTYPE, "linkname": "../../../../tmp"}),
                ("hl", None, {"type": tarfile.LNKTYPE, "linkname": "../absfile"}),
            ]
        )
    )
    run(dest, context, add("escape.tar", "/t/"))
    assert sorted(os.listdir(dest / "t")) == ["absfile", "esc", "evil", "hl"]
    assert os.readlink(dest / "t" / "esc") == "../../../../tmp"  # kept as written, like Docker
    assert os.stat(dest / "t" / "hl").st_ino == os.stat(dest / "t" / "absfile").st_ino
    (context / "through.tar").write_bytes(
        _tar([("esc", None, {"type": tarfile.SYMTYPE, "linkname": "/tmp"}), ("esc/through", b"t", {})])
    )
    with pytest.raises(StepError, match="Error processing tar file"):
        run(dest, context, add("through.tar", "/t2/"))
    assert not Path("/tmp/through").exists()


def test_add_replaces_files_and_merges_dirs(dest: Path, context: Path) -> None:
    (dest / "e" / "exdir").mkdir(parents=True)
    (dest / "e" / "exdir" / "keep").write_text("keep\n")
    (dest / "e" / "efile").write_text("old\n")
    (context / "over.tar").write_bytes(
        _tar(
            [
                ("exdir", None, {"type": tarfile.DIRTYPE, "mode": 0o700, "uid": 3, "gid": 3}),
                ("exdir/new", b"new", {"mode": 0o600}),
                ("efile", b"replaced", {"mode": 0o640}),
                ("hardl", None, {"type": tarfile.LNKTYPE, "linkname": "efile", "mode": 0o644}),
            ]
        )
    )
    run(dest, context, add("over.tar", "/e/"))
    assert info(dest / "e" / "exdir") == ("dir", 0o700, 3, 3)
    assert (dest / "e" / "exdir" / "keep").exists()
    assert (dest / "e" / "efile").read_text() == "replaced"
    assert info(dest / "e" / "efile")[1] == 0o644  # the hard link's header mode wins, as in Docker


# -- WORKDIR -----------------------------------------------------------------------------------------------------


def test_mkdir_creates_parents_root_0755(dest: Path, context: Path) -> None:
    (dest / "srv").mkdir()
    (dest / "app").symlink_to("/srv")
    run(dest, context, MkdirAction("/wd/deep"), MkdirAction("/app/sub"), MkdirAction("/wd/deep"))
    assert info(dest / "wd") == ("dir", 0o755, 0, 0)
    assert info(dest / "wd" / "deep") == ("dir", 0o755, 0, 0)
    assert info(dest / "srv" / "sub")[0] == "dir"


def test_mkdir_mode_chown_and_errors(dest: Path, context: Path) -> None:
    run(dest, context, MkdirAction("/m1/m2", mode=0o700, chown=Chown("bob", "bobg")))
    assert info(dest / "m1") == ("dir", 0o700, 4321, 4322)
    assert info(dest / "m1" / "m2") == ("dir", 0o700, 4321, 4322)
    (dest / "afile").write_text("")
    with pytest.raises(StepError, match="mkdir /afile: not a directory"):
        run(dest, context, MkdirAction("/afile"))
    with pytest.raises(StepError, match="not a directory"):
        run(dest, context, MkdirAction("/afile/x"))
    with pytest.raises(StepError, match="no such file or directory"):
        run(dest, context, MkdirAction("/n1/n2", make_parents=False))


# -- many files and a large one ------------------------------------------------------------------------------------


def test_ten_thousand_small_files_and_a_large_one(dest: Path, tmp_path: Path) -> None:
    context = tmp_path / "big"
    for group in range(50):
        folder = context / "tree" / f"g{group:02}"
        folder.mkdir(parents=True)
        for index in range(200):
            (folder / f"f{index:03}").write_bytes(b"x" * 100)
    block = os.urandom(1 << 20)
    with open(context / "tree" / "large.bin", "wb") as large:
        large.writelines(block for _ in range(300))
    run(dest, context, copy("tree", "/tree/"))
    assert os.path.getsize(dest / "tree" / "large.bin") == 300 << 20
    assert len(os.listdir(dest / "tree" / "g49")) == 200


# -- compared with Docker ----------------------------------------------------------------------------------------


def _docker(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    done = subprocess.run(["docker", *args], check=False, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def docker_tag() -> Iterator[Callable[[str], str]]:
    """Tags of this test's own (the daemon may be shared with other runs), removed afterwards."""
    made: list[str] = []

    def tag(name: str) -> str:
        made.append(f"pybuild-test/fileops-{name}:{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield tag
    subprocess.run(["docker", "rmi", "-f", *made], capture_output=True, check=False)


@pytest.fixture(scope="module")
def docker_base(docker_daemon: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A busybox base in Docker, under a tag of this session's own (the daemon may be shared)."""
    folder = tmp_path_factory.mktemp("docker-base")
    (folder / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    os.chmod(folder / "busybox", 0o755)
    (folder / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n'
    )
    tag = f"pybuild-test/fileops-base:{uuid.uuid4().hex[:12]}"
    _docker("build", "--no-cache", "--network=none", "-q", "-t", tag, ".", cwd=folder)
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def _export(image: str, into: Path | None = None) -> bytes:
    container = _docker("create", image, "/bin/sh").strip()
    try:
        data = subprocess.run(["docker", "export", container], capture_output=True, check=True).stdout
    finally:
        _docker("rm", container)
    if into is not None:
        into.mkdir()
        subprocess.run(["tar", "-xpf", "-", "--numeric-owner", "-C", str(into)], input=data, check=True)
    return data


Tree = dict[str, tuple[object, ...]]


def _summary(kind: str, mode: int, uid: int, gid: int, size: int, link: str, mtime: int) -> tuple[object, ...]:
    # times of what the build creates or touches differ; old (deliberate, copied) times must agree
    shown = mtime if mtime < 1262304000 else "recent"
    return (kind, oct(mode), uid, gid, size if kind == "file" else 0, link, shown)


def _assert_same(ours: Tree, docker: Tree) -> None:
    differences = [
        f"{path}: ours {ours.get(path)} docker {docker.get(path)}"
        for path in sorted(set(ours) | set(docker))
        if ours.get(path) != docker.get(path)
    ]
    assert not differences, "\n".join(differences)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def _age(root: Path) -> None:
    """Old, distinct, sub-second mtimes on everything in the context, so that copied times can be compared."""
    for index, path in enumerate(sorted(root.rglob("*"))):
        os.utime(path, (OLD + index + 0.5, OLD + index + 0.5), follow_symlinks=False)


def _tar_tree(data: bytes, prefixes: tuple[str, ...]) -> Tree:
    tree: Tree = {}
    links: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {member.name.rstrip("/"): member for member in archive.getmembers()}
    for name, member in members.items():
        if not _under(name, prefixes):
            continue
        target = members[member.linkname] if member.islnk() else member
        kind = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.FIFOTYPE: "fifo"}.get(target.type, "file")
        if member.islnk():
            links[name] = member.linkname
        tree[name] = _summary(
            kind,
            stat.S_IMODE(target.mode),
            target.uid,
            target.gid,
            target.size,
            target.linkname if target.issym() else "",
            int(target.mtime),
        )
    for name, first in links.items():
        tree[name] += (f"hardlink:{first}",)
        tree[first] = tree[first][:7] + (f"hardlink:{first}",)
    return tree


def _dir_tree(root: Path, prefixes: tuple[str, ...]) -> Tree:
    tree: Tree = {}
    inodes: dict[int, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(folder) / name
            relpath = path.relative_to(root).as_posix()
            if not _under(relpath, prefixes):
                continue
            st = os.lstat(path)
            kind = {stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo"}.get(
                stat.S_IFMT(st.st_mode), "file"
            )
            tree[relpath] = _summary(
                kind,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_size,
                os.readlink(path) if kind == "symlink" else "",
                int(st.st_mtime),
            )
            if kind == "file" and st.st_nlink > 1:
                inodes.setdefault(st.st_ino, relpath)
                tree[relpath] += (f"hardlink:{inodes[st.st_ino]}",)
    return tree


_SETUP = (
    "mkdir -p /existing /srv /m/d /e/exdir && ln -s /srv /app && echo old > /existing/f1 && echo keep > /m/d/keep "
    "&& mkdir -m 0711 /ex && chown 5:5 /ex && echo q > /e/efile && echo k > /e/exdir/keep "
    "&& ln -s /srv/target /lnkfile && echo T > /srv/target"
)


def _python_setup(root: Path) -> None:
    for folder in ("existing", "srv", "m/d", "e/exdir"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "app").symlink_to("/srv")
    (root / "existing" / "f1").write_text("old\n")
    (root / "m" / "d" / "keep").write_text("keep\n")
    (root / "ex").mkdir(mode=0o711)
    os.chmod(root / "ex", 0o711)
    os.chown(root / "ex", 5, 5)
    (root / "e" / "efile").write_text("q\n")
    (root / "e" / "exdir" / "keep").write_text("k\n")
    (root / "lnkfile").symlink_to("/srv/target")
    (root / "srv" / "target").write_text("T\n")


_STEPS: list[tuple[str, CopyAction | MkdirAction]] = [
    ("COPY d /a/", copy("d", "/a/")),
    ("COPY d/f1 /b", copy("d/f1", "/b")),
    ("COPY d/f1 /c/", copy("d/f1", "/c/")),
    ("COPY d/f1 /existing", copy("d/f1", "/existing")),
    ("COPY --chown=1000:1001 d/f1 /p/q/r/f", copy("d/f1", "/p/q/r/f", chown=Chown("1000", "1001"))),
    ("COPY --chown=1000:1001 d /pd/x/y/", copy("d", "/pd/x/y/", chown=Chown("1000", "1001"))),
    ("COPY d /m/d", copy("d", "/m/d")),
    ("COPY d /ex/", copy("d", "/ex/")),
    ("COPY lnk /l1", copy("lnk", "/l1")),
    ("COPY lnkdir /l2/", copy("lnkdir", "/l2/")),
    ("COPY lnk /c2/", copy("lnk", "/c2/")),
    ("COPY d/f1 /app/viaapp", copy("d/f1", "/app/viaapp")),
    ("COPY f1 /lnkfile", copy("f1", "/lnkfile")),
    ("COPY f* /w/", copy("f*", "/w/")),
    ("COPY suid sgid sgidnx /perm/", copy("suid", "/perm/")),
    ("", copy("sgid", "/perm/")),
    ("", copy("sgidnx", "/perm/")),
    ("ADD t.tar /x1/", add("t.tar", "/x1/")),
    ("ADD t.tgz /x2", add("t.tgz", "/x2")),
    ("ADD --chown=7:7 noext /x5/", add("noext", "/x5/", chown=Chown("7", "7"))),
    ("ADD fake.tar.gz /x6/", add("fake.tar.gz", "/x6/")),
    ("ADD over.tar /e/", add("over.tar", "/e/")),
    ("WORKDIR /wd/deep", MkdirAction("/wd/deep")),
    ("WORKDIR /app/sub", MkdirAction("/app/sub")),
]
_COMPARED = (
    "a",
    "b",
    "c",
    "c2",
    "existing",
    "p",
    "pd",
    "m",
    "ex",
    "l1",
    "l2",
    "srv",
    "lnkfile",
    "w",
    "perm",
    "x1",
    "x2",
    "x5",
    "x6",
    "e",
    "wd",
)


@pytest.mark.docker
def test_context_copies_match_docker(
    docker_base: str, docker_tag: Callable[[str], str], context: Path, archives: Path, tmp_path: Path
) -> None:
    for name, mode in (("suid", 0o4755), ("sgid", 0o2755), ("sgidnx", 0o2744)):
        (context / name).write_text(name)
        os.chmod(context / name, mode)
    (context / "over.tar").write_bytes(
        _tar(
            [
                ("exdir", None, {"type": tarfile.DIRTYPE, "mode": 0o700, "uid": 3, "gid": 3}),
                ("exdir/new", b"new", {"mode": 0o600}),
                ("efile", b"replaced", {"mode": 0o640}),
            ]
        )
    )
    os.chown(context / "d", 1234, 2345)
    lines = [f"FROM {docker_base}", f"RUN {_SETUP}"] + [line for line, _ in _STEPS if line]
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    (context / ".dockerignore").write_text("Dockerfile\n")
    _age(context)
    built = docker_tag("cmp")
    _docker("build", "--no-cache", "--network=none", "-q", "-t", built, ".", cwd=context)
    expected = _tar_tree(_export(built), _COMPARED)

    root = tmp_path / "ours"
    root.mkdir()
    _python_setup(root)
    apply_actions(
        root,
        {str(CTX): context},
        [replace(a, exclude=("Dockerfile",)) if isinstance(a, CopyAction) else a for _, a in _STEPS],
    )
    _assert_same(_dir_tree(root, _COMPARED), expected)


@pytest.mark.docker
def test_copy_from_another_stage_matches_docker(
    docker_base: str, docker_tag: Callable[[str], str], tmp_path: Path
) -> None:
    folder = tmp_path / "build"
    folder.mkdir()
    stage_script = (
        "mkdir -p /o/sub && echo o > /o/f && chown -R 5:6 /o && chmod 4755 /o/f && ln -s /o/f /o/abslink "
        "&& ln -s /o /olink && chown -h 7:8 /o/abslink && mknod /o/fifo p && ln /o/f /o/hard"
    )
    steps = [
        ("COPY --from=other /o /fromo/", CopyAction(source=STAGE, src="/o", dest="/fromo/", dest_is_dir=True)),
        ("COPY --from=other /o/f /fromof", CopyAction(source=STAGE, src="/o/f", dest="/fromof")),
        (
            "COPY --from=other /olink /fromolink/",
            CopyAction(source=STAGE, src="/olink", dest="/fromolink/", dest_is_dir=True),
        ),
        ("COPY --from=other /o/abslink /fromabs", CopyAction(source=STAGE, src="/o/abslink", dest="/fromabs")),
        (
            "COPY --from=other --chown=3:4 /o /fromochown/",
            CopyAction(source=STAGE, src="/o", dest="/fromochown/", dest_is_dir=True, chown=Chown("3", "4")),
        ),
    ]
    lines = [f"FROM {docker_base} AS other", f"RUN {stage_script}", f"FROM {docker_base}"]
    (folder / "Dockerfile").write_text("\n".join(lines + [line for line, _ in steps]) + "\n")
    _docker(
        "build",
        "--no-cache",
        "--network=none",
        "-q",
        "--target",
        "other",
        "-t",
        other := docker_tag("other"),
        ".",
        cwd=folder,
    )
    built = docker_tag("from")
    _docker("build", "--no-cache", "--network=none", "-q", "-t", built, ".", cwd=folder)
    prefixes = ("fromo", "fromof", "fromolink", "fromabs", "fromochown")
    expected = _tar_tree(_export(built), prefixes)
    stage = tmp_path / "stage"
    _export(other, into=stage)
    root = tmp_path / "ours"
    root.mkdir()
    apply_actions(root, {str(STAGE): stage}, [action for _, action in steps])
    _assert_same(_dir_tree(root, prefixes), expected)


@pytest.mark.docker
@pytest.mark.parametrize(
    ("instruction", "action", "message"),
    [
        (
            "COPY missing /x",
            copy("missing", "/x"),
            (
                "COPY failed: file not found in build context or excluded by "
                ".dockerignore: stat missing: file does not exist"
            ),
        ),
        ("COPY nomatch* /x/", copy("nomatch*", "/x/"), "COPY failed: no source files were specified"),
        ("COPY ../x /y", copy("../x", "/y"), "COPY failed: forbidden path outside the build context: ../x ()"),
        (
            "COPY f* /x",
            copy("f*", "/x"),
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ),
    ],
)
def test_error_messages_match_docker(
    docker_base: str, context: Path, dest: Path, instruction: str, action: CopyAction, message: str
) -> None:
    (context / "Dockerfile").write_text(f"FROM {docker_base}\n{instruction}\n")
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    done = subprocess.run(
        ["docker", "build", "--network=none", "."], check=False, cwd=context, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and message in done.stdout + done.stderr
    with pytest.raises((StepError, ContextError)) as error:
        run(dest, context, action)
    assert str(error.value) == message


# Found by tests/test_fuzz_archives.py: numbers that os.lchown, os.makedev or os.utime cannot take, a NUL in a name
# and a PAX record tarfile cannot parse came out as OverflowError or ValueError tracebacks; now they are the step's
# error, like any other broken header.
@pytest.mark.parametrize(
    "attributes",
    [
        {"uid": -2},
        {"gid": 2**40},
        {"mtime": 2**62},
        {"pax_headers": {"mtime": "nan"}},
        {"type": tarfile.CHRTYPE, "devmajor": -1},
        {"pax_headers": {"path": "a\0b"}},
        {"pax_headers": {"GNU.sparse.map": "nan"}},
    ],
    ids=[
        "negative-uid",
        "gid-beyond-32-bits",
        "mtime-beyond-nanoseconds",
        "pax-mtime-nan",
        "negative-devmajor",
        "nul-in-name",
        "sparse-map-not-numbers",
    ],
)
def test_add_refuses_bad_headers(dest: Path, context: Path, attributes: dict[str, object]) -> None:
    buffer = io.BytesIO()
    kind = tarfile.PAX_FORMAT if "pax_headers" in attributes else tarfile.GNU_FORMAT  # GNU for negative numbers
    with tarfile.open(fileobj=buffer, mode="w", format=kind) as archive:
        member = tarfile.TarInfo("f")
        for key, value in attributes.items():
            setattr(member, key, value)
        archive.addfile(member, io.BytesIO(b""))
    (context / "numbers.tar").write_bytes(buffer.getvalue())
    with pytest.raises(StepError, match=r"Error processing tar file\(/n/\): (entry '.*' has|a header tarfile cannot)"):
        run(dest, context, add("numbers.tar", "/n/"))


def test_add_sets_directory_times_only_inside_the_destination(dest: Path, context: Path, tmp_path: Path) -> None:
    """Found by tests/test_fuzz_archives.py: directory times were set at the end through the host path recorded when
    each directory was made, so `a/sub/` followed by `a` -> /elsewhere changed the time of /elsewhere/sub."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    os.utime(outside / "sub", ns=(1, 1))
    (context / "swap.tar").write_bytes(
        _tar(
            [
                ("a", None, {"type": tarfile.DIRTYPE, "mode": 0o755}),
                ("a/sub", None, {"type": tarfile.DIRTYPE, "mode": 0o755}),
                ("a", None, {"type": tarfile.SYMTYPE, "linkname": str(outside)}),
            ]
        )
    )
    run(dest, context, add("swap.tar", "/s/"))
    assert os.readlink(dest / "s" / "a") == str(outside)
    assert os.stat(outside / "sub").st_mtime_ns == 1


def test_add_stops_at_the_end_of_an_archive_whose_header_claims_more(context: Path, tmp_path: Path) -> None:
    """Found by tests/test_fuzz_archives.py: an entry of an unknown type claiming 2**60 bytes made tarfile's stream
    mode skip its data 10 kB at a time past the end of the file, for ever. Run in a child process so that a
    regression fails on the timeout instead of hanging the suite."""
    header = bytearray(tarfile.TarInfo("x").tobuf(tarfile.GNU_FORMAT))
    header[124:136] = b"\x80" + (2**60).to_bytes(11, "big")  # the size field in base-256, then type and checksum
    header[156:157] = b"Z"
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header)
    (context / "huge.tar").write_bytes(bytes(header))
    script = (
        "import sys; from pathlib import Path; from buildkit_py.errors import StepError; "
        "from buildkit_py.exec.archive import extract_archive\n"
        "try:\n    extract_archive(open(sys.argv[1], 'rb'), Path(sys.argv[2]), 'huge.tar')\n"
        "except StepError as error:\n    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(context / "huge.tar"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("failed to copy files: Error processing tar file(huge.tar): unexpected end of data")
