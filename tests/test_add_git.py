"""ADD of git repositories, served by `git daemon` on 127.0.0.1 (started and stopped here): refs, --keep-git-dir,
--checksum, subdirectories, modes, and the cache key (the commit the ref names: an unchanged ref is a hit without a
clone). Cases from BuildKit's dockerfile_addgit_test.go (testAddGit, testAddGitChecksumCache)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, pybuild_tree

from buildkit_py.builder import build
from buildkit_py.errors import InstructionError, StepError
from buildkit_py.image.export import export_image

GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "safe.directory=*", *args],
        cwd=cwd,
        env=GIT_ENV,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@dataclass
class Daemon:
    url: str  # of the repository
    repo: Path
    log: Path
    commits: dict[str, str]  # tag -> commit id

    def upload_packs(self) -> int:
        """How many times a client asked for the repository's objects or refs (ls-remote and fetch alike)."""
        return self.log.read_text().count("Request upload-pack")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _make_repo(repo: Path) -> dict[str, str]:
    repo.mkdir(parents=True)
    git("init", "--quiet", cwd=repo)
    commits = {}
    for tag in ("v0.0.1", "v0.0.2", "v0.0.3"):
        (repo / "foo").write_text(f"foo of {tag}\n")
        if tag == "v0.0.3":
            (repo / "docs").mkdir()
            (repo / "docs" / "readme").write_text("read me\n")
            (repo / "bin").mkdir()
            (repo / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
            os.chmod(repo / "bin" / "tool", 0o700)
            os.symlink("foo", repo / "link")
        git("add", "-A", cwd=repo)
        git("commit", "--quiet", "-m", tag, cwd=repo)
        git("tag", tag, cwd=repo)
        commits[tag] = git("rev-parse", "HEAD", cwd=repo)
    git("tag", "-a", "-m", "annotated", "v-annotated", cwd=repo)
    git("branch", "moving", cwd=repo)
    return commits


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("git-daemon")
    commits = _make_repo(base / "repos" / "repo")
    port = _free_port()
    log = base / "daemon.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--verbose",
                "--log-destination=stderr",
                f"--base-path={base / 'repos'}",
                "--listen=127.0.0.1",
                f"--port={port}",
                str(base / "repos"),
            ],
            env=GIT_ENV,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        while True:  # until it listens (it fails the test by exiting otherwise)
            assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                continue
        yield Daemon(f"git://127.0.0.1:{port}/repo", base / "repos" / "repo", log, commits)
    finally:
        process.terminate()
        process.wait()


def dockerfile(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(text)
    return folder


def test_add_git_refs_keep_git_dir_chown_and_checksum(base_store: object, daemon: Daemon, tmp_path: Path) -> None:
    """testAddGit: the basic case, then --keep-git-dir with --chown and a matching --checksum."""
    context = dockerfile(
        tmp_path / "context",
        f"FROM {BASE_IMAGE}\n"
        f"ADD {daemon.url}#v0.0.1 /x\n"
        'RUN cd /x && [ "$(cat foo)" = "foo of v0.0.1" ] && [ ! -e .git ]\n'
        f'ARG REPO="{daemon.url}"\n'
        'ARG TAG="v0.0.2"\n'
        f"ADD --keep-git-dir=true --chown=4242:8484 --checksum={daemon.commits['v0.0.2']} ${{REPO}}#${{TAG}} /kept\n"
        'RUN cd /kept && [ "$(cat foo)" = "foo of v0.0.2" ] && [ "$(stat -c %u foo)" = 4242 ] && '
        '[ "$(stat -c %g foo)" = 8484 ] && [ -d .git ]\n',
    )
    result = build(context, tags=["test/add-git"], store=base_store)  # type: ignore[arg-type]
    out = tmp_path / "out"
    export_image(base_store, result.image_id, f"type=local,dest={out}")  # type: ignore[arg-type]
    assert git("status", "--short", cwd=out / "kept") == ""  # the kept .git matches the tree
    assert git("rev-parse", "HEAD", cwd=out / "kept") == daemon.commits["v0.0.2"]
    assert not (out / "kept" / ".git" / "FETCH_HEAD").exists()


def test_add_git_by_commit_and_without_git_dir(base_store: object, daemon: Daemon, tmp_path: Path) -> None:
    """testAddGit's third and fourth builds: a checksum without --keep-git-dir, and a commit id as the ref."""
    v3 = daemon.commits["v0.0.3"]
    context = dockerfile(
        tmp_path,
        f"FROM scratch\nADD --checksum={v3} {daemon.url}#v0.0.3 /nogitdir\n"
        f"ADD --keep-git-dir=true --checksum={v3[:7]} {daemon.url}#{v3} /commitdir\n",
    )
    build(context, tags=["test/add-git-commit"], store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/add-git-commit")
    assert tree["/nogitdir/foo"].size == len("foo of v0.0.3\n") and "/nogitdir/.git" not in tree
    assert tree["/commitdir/.git"].kind == "dir" and tree["/commitdir/foo"].size == len("foo of v0.0.3\n")


def test_add_git_modes_subdir_and_annotated_tags(base_store: object, daemon: Daemon, tmp_path: Path) -> None:
    context = dockerfile(
        tmp_path,
        f"FROM scratch\nADD {daemon.url}#v0.0.3 /all/\nADD {daemon.url}#v0.0.3:docs /docs\n"
        f"ADD {daemon.url}#v-annotated /annotated\nADD {daemon.url} /head\n",
    )
    build(context, tags=["test/add-git-modes"], store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/add-git-modes")
    assert stat.S_IMODE(tree["/all/foo"].mode) == 0o644
    assert stat.S_IMODE(tree["/all/bin/tool"].mode) == 0o755
    assert stat.S_IMODE(tree["/all/bin"].mode) == 0o755
    assert tree["/all/link"].kind == "symlink" and tree["/all/link"].link == "foo"
    assert (tree["/all/foo"].uid, tree["/all/foo"].gid) == (0, 0)
    assert sorted(path for path in tree if path.startswith("/docs")) == ["/docs", "/docs/readme"]
    assert tree["/annotated/foo"].size == len("foo of v0.0.3\n")
    assert "/head/foo" in tree  # no ref: the remote's HEAD


def test_an_unchanged_ref_is_a_hit_without_cloning(base_store: object, daemon: Daemon, tmp_path: Path) -> None:
    """testAddGitChecksumCache, counted on the server: a rebuild asks for the refs once and fetches nothing; a
    checksum does not change the key; a ref that moved is fetched again."""
    context = dockerfile(tmp_path / "a", f"FROM scratch\nADD --keep-git-dir {daemon.url}#moving /repo\n")
    first = build(context, store=base_store)  # type: ignore[arg-type]
    assert len(first.stats.executed) == 1
    before = daemon.upload_packs()
    again = build(context, store=base_store)  # type: ignore[arg-type]
    assert again.stats.executed == set() and again.image_id == first.image_id
    assert daemon.upload_packs() == before + 1  # ls-remote only: no clone

    moving = git("rev-parse", "moving", cwd=daemon.repo)
    pinned = dockerfile(
        tmp_path / "b", f"FROM scratch\nADD --keep-git-dir --checksum={moving} {daemon.url}#moving /repo\n"
    )
    assert build(pinned, store=base_store).stats.executed == set()  # type: ignore[arg-type]

    git("checkout", "--quiet", "moving", cwd=daemon.repo)
    (daemon.repo / "new").write_text("new\n")
    git("add", "new", cwd=daemon.repo)
    git("commit", "--quiet", "-m", "moved", cwd=daemon.repo)
    git("checkout", "--quiet", "main", cwd=daemon.repo)
    moved = build(context, tags=["test/add-git-moved"], store=base_store)  # type: ignore[arg-type]
    assert len(moved.stats.executed) == 1
    assert "/repo/new" in pybuild_tree(base_store, "test/add-git-moved")


def test_bad_git_sources_fail_clearly(base_store: object, daemon: Daemon, tmp_path: Path) -> None:
    """testAddGit's failures: a checksum of another commit, a checksum that is not hex; and an unknown ref, COPY of
    a repository. Nothing is left behind in the store's temp folder."""
    root: Path = base_store.root  # type: ignore[attr-defined]
    leftovers = set((root / "tmp").iterdir())
    wrong = dockerfile(
        tmp_path / "wrong",
        f"FROM scratch\nARG REPO={daemon.url}\nADD --checksum={daemon.commits['v0.0.2']} ${{REPO}}#v0.0.3 /faildir\n",
    )
    with pytest.raises(StepError, match="expected checksum to match") as caught:
        build(wrong, store=base_store)  # type: ignore[arg-type]
    assert str(caught.value).startswith("Dockerfile:3: ADD ")
    garbage = dockerfile(tmp_path / "garbage", f"FROM scratch\nADD --checksum=foobar {daemon.url}#v0.0.3 /faildir\n")
    with pytest.raises(InstructionError, match='invalid checksum "foobar": expected hex commit hash'):
        build(garbage, store=base_store)  # type: ignore[arg-type]
    unknown = dockerfile(tmp_path / "unknown", f"FROM scratch\nADD {daemon.url}#no-such-ref /x\n")
    with pytest.raises(StepError, match="does not contain ref no-such-ref") as caught:
        build(unknown, store=base_store)  # type: ignore[arg-type]
    assert caught.value.location is not None and caught.value.location.start_line == 2
    copy = dockerfile(tmp_path / "copy", f"FROM scratch\nCOPY {daemon.url}#v0.0.1 /x\n")
    with pytest.raises(InstructionError, match="source can't be a git ref for COPY"):
        build(copy, store=base_store)  # type: ignore[arg-type]
    conflict = dockerfile(
        tmp_path / "conflict", f"FROM scratch\nADD --keep-git-dir=false {daemon.url}?keep-git-dir=true /x\n"
    )
    with pytest.raises(InstructionError, match="inconsistent keep-git-dir configuration"):
        build(conflict, store=base_store)  # type: ignore[arg-type]
    assert set((root / "tmp").iterdir()) == leftovers


def test_a_subdir_that_is_a_symlink_is_refused(base_store: object, daemon: Daemon, tmp_path: Path) -> None:
    """The repository chose its paths: a subdir through a symlink could reach out of the checkout."""
    context = dockerfile(tmp_path, f"FROM scratch\nADD {daemon.url}#v0.0.3:link /x\n")
    with pytest.raises(StepError, match="link in the repository is not a directory"):
        build(context, store=base_store)  # type: ignore[arg-type]


def test_exclude_from_a_checkout(base_store: object, daemon: Daemon, tmp_path: Path) -> None:
    """testExcludedFilesOnCopy's second half, on a repository: ADD --keep-git-dir, then COPY --from --exclude."""
    context = dockerfile(
        tmp_path,
        f"FROM scratch AS base\nADD --keep-git-dir=true {daemon.url}#v0.0.3 /\n"
        "FROM scratch AS builder1\nCOPY --from=base --exclude=*/readme --exclude=.git . /1\n"
        "FROM scratch AS builder3\nCOPY --from=base --exclude=tool bin/ /3/\n"
        "FROM scratch\nCOPY --from=builder1 / /builder1\nCOPY --from=builder3 / /builder3\n",
    )
    build(context, tags=["test/add-git-exclude"], store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/add-git-exclude")
    assert "/builder1/1/foo" in tree and "/builder1/1/docs" in tree and "/builder1/1/docs/readme" not in tree
    assert not [path for path in tree if path.startswith("/builder1/1/.git")]
    assert "/builder3/3" in tree and "/builder3/3/tool" not in tree
