"""users.py against the behaviour of Docker 20.10's classic builder, observed with `DOCKER_BUILDKIT=0 docker build`.

The root used below is the one of that experiment:
    alice:x:1001:2002 (home /home/alice), bob:x:1003:1003; groups alice=3003, team=4004 (alice,bob), other=5005 (bob)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from buildkit_py.errors import ExecError
from buildkit_py.exec.users import ResolvedUser, UserNotFound, resolve_chown, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment
alice:x:1001:2002:A:/home/alice:/bin/sh
bob:x:1003:1003:B:/home/bob:/bin/sh
"""
GROUP = """root:x:0:
alice:x:3003:
team:x:4004:alice,bob
other:x:5005:bob
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # Docker: uid=1001(alice) gid=2002 groups=2002,4004(team); HOME=/home/alice
        ("alice", ResolvedUser(1001, 2002, (4004,), "/home/alice")),
        # Docker: uid=1003(bob) gid=1003 groups=1003,4004(team),5005(other)
        ("1003", ResolvedUser(1003, 1003, (4004, 5005), "/home/bob")),
        # Docker: uid=777 gid=0(root) groups=0(root); HOME=/
        ("777", ResolvedUser(777, 0, (), "/")),
        # Docker: an explicit group drops the supplementary groups: groups=4004(team)
        ("alice:team", ResolvedUser(1001, 4004, (), "/home/alice")),
        ("777:888", ResolvedUser(777, 888, (), "/")),
        ("alice:5005", ResolvedUser(1001, 5005, (), "/home/alice")),
        ("", ResolvedUser(0, 0, (), "/root")),
        ("root", ResolvedUser(0, 0, (), "/root")),
    ],
)
def test_resolve_user_like_docker(root: Path, spec: str, expected: ResolvedUser) -> None:
    assert resolve_user(root, spec) == expected


def test_unknown_user_has_dockers_message(root: Path) -> None:
    with pytest.raises(UserNotFound, match="^unable to find user nosuch: no matching entries in passwd file$"):
        resolve_user(root, "nosuch")


def test_unknown_group_has_dockers_message(root: Path) -> None:
    with pytest.raises(UserNotFound, match="^unable to find group nogroup: no matching entries in group file$"):
        resolve_user(root, "alice:nogroup")


def test_without_passwd_numbers_work_and_names_fail(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "") == ResolvedUser(0, 0, (), "/")
    assert resolve_user(tmp_path, "5:6") == ResolvedUser(5, 6, (), "/")
    with pytest.raises(UserNotFound, match="unable to find user x: no matching entries in passwd file"):
        resolve_user(tmp_path, "x")


def test_user_error_is_an_exec_error(root: Path) -> None:
    with pytest.raises(ExecError):
        resolve_user(root, "nosuch")
    with pytest.raises(ExecError, match="range"):
        resolve_user(root, "-1")


@pytest.mark.parametrize(
    ("user", "group", "expected"),
    [
        ("alice", "", (1001, 3003)),  # Docker: the *group* named alice, not alice's primary group 2002
        ("1234", "", (1234, 1234)),
        ("alice", "team", (1001, 4004)),
        ("1001", "other", (1001, 5005)),
        ("42", "43", (42, 43)),
    ],
)
def test_resolve_chown_like_docker(root: Path, user: str, group: str, expected: tuple[int, int]) -> None:
    assert resolve_chown(root, user, group) == expected


def test_chown_name_without_same_named_group_fails_like_docker(root: Path) -> None:
    # Docker: "unable to convert uid/gid chown string to host mapping: can't find gid for group bob: no such group: bob"
    with pytest.raises(UserNotFound, match="can't find gid for group bob: no such group: bob$"):
        resolve_chown(root, "bob", "")
    with pytest.raises(UserNotFound, match="can't find uid for user nosuch: no such user: nosuch$"):
        resolve_chown(root, "nosuch", "team")


def test_chown_without_passwd_file(tmp_path: Path) -> None:
    assert resolve_chown(tmp_path, "7", "8") == (7, 8)
    with pytest.raises(UserNotFound, match="can't find uid for user x: open /etc/passwd: no such file or directory"):
        resolve_chown(tmp_path, "x", "")


def test_symlinked_passwd_stays_inside_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:66:66::/evil:/bin/sh\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "real").write_text("good:x:55:55::/good:/bin/sh\n")
    os.symlink("../../outside/passwd", root / "etc/passwd")  # escapes when followed on the host
    with pytest.raises(UserNotFound):
        resolve_user(root, "evil")
    os.unlink(root / "etc/passwd")
    os.symlink("/real", root / "etc/passwd")  # absolute: means <root>/real
    assert resolve_user(root, "good").uid == 55
