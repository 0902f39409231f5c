"""Resolve user and group names against a root filesystem's /etc/passwd and /etc/group, the way Docker does.

Two flavours, because Docker has two:
- `resolve_user` is `USER` (runc's libcontainer `user.GetExecUser`): "name", "uid", "name:group", "uid:gid"; a numeric
  id absent from the files is fine (uid without group: gid 0); supplementary groups come from /etc/group only when
  no group is given.
- `resolve_chown` is `COPY --chown` of the classic builder (moby `builder/dockerfile/internals_linux.go`): a missing
  group means "the same string as the user", looked up as a *group* name; numbers are taken as they are.

The files are read with `resolve_in_root`, so a symlinked /etc/passwd cannot point outside the root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExecError
from .rootpath import resolve_in_root

__all__ = ["GroupEntry", "PasswdEntry", "ResolvedUser", "UserNotFound", "resolve_chown", "resolve_user"]

_MAX_ID = 2**31 - 1
_NUMBER = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi accepts


class UserNotFound(ExecError):
    """A user or group name that the root's /etc/passwd or /etc/group does not know."""


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _atoi(text: str) -> int | None:
    return int(text) if _NUMBER.fullmatch(text) else None


def _lines(root: Path, path: str) -> list[list[str]] | None:
    """The colon-separated fields of each line, or None when the file does not exist (or is not a file)."""
    try:
        text = resolve_in_root(root, path).read_text(encoding="utf-8", errors="surrogateescape")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _field(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def read_passwd(root: Path) -> list[PasswdEntry] | None:
    rows = _lines(root, "/etc/passwd")
    if rows is None:
        return None
    return [
        PasswdEntry(_field(row, 0), _atoi(_field(row, 2)) or 0, _atoi(_field(row, 3)) or 0, _field(row, 5))
        for row in rows
    ]


def read_group(root: Path) -> list[GroupEntry] | None:
    rows = _lines(root, "/etc/group")
    if rows is None:
        return None
    return [
        GroupEntry(
            _field(row, 0),
            _atoi(_field(row, 2)) or 0,
            tuple(member for member in _field(row, 3).split(",") if member),
        )
        for row in rows
    ]


def _check_range(value: int) -> int:
    if not 0 <= value <= _MAX_ID:
        raise ExecError(f"uids and gids must be in range 0-{_MAX_ID}")
    return value


def resolve_user(root: Path, spec: str) -> ResolvedUser:
    """`USER spec` inside `root`. Raises UserNotFound with Docker's messages for unknown names."""
    user_arg, _, group_arg = spec.partition(":")
    group_arg = group_arg.partition(":")[0]
    uid_number = _atoi(user_arg)
    gid_number = _atoi(group_arg)

    uid, gid, home = 0, 0, "/"
    matched_name = ""
    passwd = read_passwd(root) or []
    if user_arg == "":
        matches = [entry for entry in passwd if entry.uid == 0]
    elif uid_number is not None:
        matches = [entry for entry in passwd if entry.uid == uid_number]
    else:
        matches = [entry for entry in passwd if entry.name == user_arg]
    if matches:
        matched_name = matches[0].name
        uid, gid, home = matches[0].uid, matches[0].gid, matches[0].home or "/"
    elif user_arg:
        if uid_number is None:
            raise UserNotFound(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = _check_range(uid_number)

    additional: tuple[int, ...] = ()
    if group_arg or matched_name:
        groups = read_group(root) or []
        if group_arg:
            if gid_number is not None:
                explicit = [group for group in groups if group.gid == gid_number]
            else:
                explicit = [group for group in groups if group.name == group_arg]
            if explicit:
                gid = explicit[0].gid
            elif gid_number is None:
                raise UserNotFound(f"unable to find group {group_arg}: no matching entries in group file")
            else:
                gid = _check_range(gid_number)
        else:
            additional = tuple(group.gid for group in groups if matched_name in group.members)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=additional, home=home)


def resolve_chown(root: Path, user: str, group: str) -> tuple[int, int]:
    """`COPY --chown=user[:group]` inside `root` (Docker 20.10 classic builder): `(uid, gid)`.

    Without a group, the user string is used as the group too: `--chown=alice` is alice's uid and the gid of the
    *group* named alice (not alice's primary group), `--chown=1000` is 1000:1000."""
    group = group or user
    prefix = "unable to convert uid/gid chown string to host mapping: "
    uid = _atoi(user)
    if uid is None:
        passwd = read_passwd(root)
        if passwd is None:
            raise UserNotFound(f"{prefix}can't find uid for user {user}: open /etc/passwd: no such file or directory")
        users = [entry.uid for entry in passwd if entry.name == user]
        if not users:
            raise UserNotFound(f"{prefix}can't find uid for user {user}: no such user: {user}")
        uid = users[0]
    gid = _atoi(group)
    if gid is None:
        groups = read_group(root)
        if groups is None:
            raise UserNotFound(f"{prefix}can't find gid for group {group}: open /etc/group: no such file or directory")
        found = [entry.gid for entry in groups if entry.name == group]
        if not found:
            raise UserNotFound(f"{prefix}can't find gid for group {group}: no such group: {group}")
        gid = found[0]
    return _check_range(uid), _check_range(gid)
