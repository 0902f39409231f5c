"""`RUN --mount=...` options, parsed with BuildKit's rules and messages (`instructions/commands_runmount.go`).

A mount is a CSV line of `key=value` fields (Go's `encoding/csv`: a field may be quoted, `""` is a quote). Values
are expanded with the step's ARGs and ENV before they are checked, as BuildKit's dockerfile:1 frontend does; `from`
is never expanded ("define alias stage instead"). What each field means:

    type=bind (default)  target, source, from, rw            the build context or a stage, read-only by default
    type=cache           target, id, sharing, from, source,  a folder kept in the store across builds
                         mode, uid, gid, ro
    type=tmpfs           target, size                        a fresh tmpfs
    type=secret          id (or source), target, env,        a secret given with `--secret`
                         required, mode, uid, gid
    type=ssh             id, target, required, mode, uid,    the ssh agent given with `--ssh`
                         gid
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..digest import Digest
from ..gocsv import CsvError, csv_fields
from ..gostring import go_clean
from ..solver.ops import BindSpec, CacheSpec, ExecMount, SecretSpec, SshSpec, TmpfsSpec
from .suggest import with_suggestion

__all__ = [
    "MOUNT_TYPES",
    "SHARING_MODES",
    "MountError",
    "RunMount",
    "check_mount_syntax",
    "exec_mount",
    "parse_mount",
    "ram_in_bytes",
    "split_fields",
]

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_ALL_KEYS = (
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
)
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_UINT32 = 1 << 32


class MountError(ValueError):
    """A `--mount` value BuildKit refuses; the caller adds the location."""


@dataclass(frozen=True)
class RunMount:
    """One `--mount`, checked and with its variables expanded; None for what was not given."""

    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = True
    size: int = 0
    id: str = ""
    sharing: str = ""
    required: bool = False
    env: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def split_fields(text: str) -> tuple[str, ...]:
    try:
        return csv_fields(text)
    except CsvError as error:
        raise MountError(f"failed to parse csv mounts: {error}") from None


def check_mount_syntax(text: str) -> None:
    """What BuildKit checks before any variable has a value: the CSV, and `from` without variables."""
    for field in split_fields(text):
        key, equals, value = field.partition("=")
        if equals and key.lower() == "from":
            dollar = value.find("$")
            if dollar != -1 and dollar != len(value) - 1:
                raise MountError("'from' doesn't support variable expansion, define alias stage instead")


def _parse_bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise MountError(f"invalid value for {key}: {value}")


def _parse_uint32(key: str, value: str, base: int) -> int:
    digits = "01234567" if base == 8 else "0123456789"
    text = value.removeprefix("+")
    if not text or any(char not in digits for char in text) or int(text, base) >= _UINT32:
        raise MountError(f"invalid value {value} for {key}")
    return int(text, base)


def ram_in_bytes(text: str) -> int:
    """docker/go-units RAMInBytes: "64m", "1.5g", "512k", "1024"; k, m, g... are powers of 1024. ValueError."""
    match = _RAM.match(text)
    if match is None:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(match.group(1)) * _RAM_UNITS[(match.group(2) or "").lower()])


def parse_mount(text: str, expand: Callable[[str], str]) -> RunMount:
    """One `--mount` value, its values expanded with `expand`; MountError with BuildKit's message."""
    mount = RunMount()
    readonly_given = False
    for field in split_fields(text):
        key, equals, value = field.partition("=")
        key = key.lower()
        if not equals:
            if key in ("readonly", "ro"):
                mount, readonly_given = replace(mount, readonly=True), True
            elif key in ("readwrite", "rw"):
                mount, readonly_given = replace(mount, readonly=False), True
            elif key == "required" and mount.type in ("secret", "ssh"):
                mount = replace(mount, required=True)
            elif key == "required":
                raise MountError(f"unexpected key '{key}' for mount type '{mount.type}'")
            else:
                raise MountError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key != "from":
            value = expand(value)
        mount, given = _apply(mount, key, value, field)
        readonly_given = readonly_given or given
    return _checked(mount, readonly_given)


def _apply(mount: RunMount, key: str, value: str, field: str) -> tuple[RunMount, bool]:
    """The mount with one `key=value` field applied, and whether it set read-only or read-write."""
    if key == "type":
        kind = value.lower()
        if kind not in MOUNT_TYPES:
            raise MountError(with_suggestion(f'unsupported mount type "{value}"', value, MOUNT_TYPES))
        return replace(mount, type=kind), False
    if key == "from":
        return replace(mount, from_=value), False
    if key in ("source", "src"):
        return replace(mount, source=value), False
    if key in ("target", "dst", "destination"):
        return replace(mount, target=value), False
    if key in ("readonly", "ro"):
        return replace(mount, readonly=_parse_bool(key, value)), True
    if key in ("readwrite", "rw"):
        return replace(mount, readonly=not _parse_bool(key, value)), True
    if key == "required":
        if mount.type not in ("secret", "ssh"):
            raise MountError(f"unexpected key '{key}' for mount type '{mount.type}'")
        return replace(mount, required=_parse_bool(key, value)), False
    if key == "size":
        if mount.type != "tmpfs":
            raise MountError(f"unexpected key '{key}' for mount type '{mount.type}'")
        try:
            return replace(mount, size=ram_in_bytes(value)), False
        except ValueError:
            raise MountError(f"invalid value for {key}: {value}") from None
    if key == "id":
        return replace(mount, id=value), False
    if key == "sharing":
        sharing = value.lower()
        if sharing not in SHARING_MODES:
            raise MountError(with_suggestion(f'unsupported sharing value "{value}"', value, SHARING_MODES))
        return replace(mount, sharing=sharing), False
    if key == "mode":
        return replace(mount, mode=_parse_uint32(key, value, 8)), False
    if key == "uid":
        return replace(mount, uid=_parse_uint32(key, value, 10)), False
    if key == "gid":
        return replace(mount, gid=_parse_uint32(key, value, 10)), False
    if key == "env":
        if not value:
            raise MountError("invalid value for env: the name of an environment variable is needed")
        return replace(mount, env=value), False
    raise MountError(with_suggestion(f"unexpected key '{key}' in '{field}'", key, _ALL_KEYS))


def _checked(mount: RunMount, readonly_given: bool) -> RunMount:
    if mount.type not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(mount, name) is not None:
                raise MountError(f'{name} not allowed for "{mount.type}" type mounts')
    if not readonly_given:
        mount = replace(mount, readonly=mount.type not in ("cache", "tmpfs"))
    if mount.type == "secret":
        if mount.from_:
            raise MountError("secret mount should not have a from")
        if mount.sharing:
            raise MountError("secret mount should not define sharing")
        if not mount.source and not mount.target and not mount.id:
            raise MountError("invalid secret mount. one of source, target required")
        if mount.source and mount.id:
            raise MountError("both source and id can't be set")
    if mount.sharing and mount.type != "cache":
        raise MountError(f"invalid cache sharing set for {mount.type} mount")
    if mount.type == "ssh" and mount.source:
        raise MountError("ssh does not support source")
    if mount.env is not None and mount.type != "secret":
        raise MountError(f"unexpected key 'env' for mount type '{mount.type}'")
    return mount


def exec_mount(mount: RunMount, *, workdir: str, source: Digest | None, ssh_index: int) -> ExecMount:
    """The op's view of a checked mount: targets made absolute (bind, cache and tmpfs ones against the WORKDIR, as
    BuildKit does), BuildKit's defaults filled in. `source` is what `from` names (the build context for a bind
    without `from`); `ssh_index` counts the ssh mounts before this one in the step."""
    if mount.type == "secret":
        return _secret(mount)
    if mount.type == "ssh":
        return SshSpec(
            target=posixpath.join("/", mount.target) if mount.target else f"/run/buildkit/ssh_agent.{ssh_index}",
            id=mount.id or "default",
            required=mount.required,
            mode=0o600 if mount.mode is None else mount.mode,
            uid=mount.uid or 0,
            gid=mount.gid or 0,
        )
    target = go_clean(posixpath.join("/", workdir or "/", mount.target))
    if target == "/":
        raise MountError(f'invalid mount target "{target}"')
    path = go_clean(posixpath.join("/", mount.source))
    if mount.type == "tmpfs":
        return TmpfsSpec(target=target, size=mount.size)
    if mount.type == "cache":
        return CacheSpec(
            target=target,
            id=mount.id or go_clean(mount.target),
            sharing=mount.sharing or "shared",
            readonly=mount.readonly,
            mode=0o755 if mount.mode is None else mount.mode,
            uid=mount.uid or 0,
            gid=mount.gid or 0,
            seed=source if mount.from_ else None,
            path=path,
        )
    if source is None:
        raise MountError("a bind mount needs a source")  # the frontend always gives one: the context by default
    return BindSpec(target=target, source=source, path=path, readonly=mount.readonly)


def _secret(mount: RunMount) -> SecretSpec:
    secret_id = mount.source or mount.id
    if not secret_id:
        if not mount.target:
            raise MountError("one of source, target required")
        secret_id = posixpath.basename(mount.target)
    target: str | None = posixpath.join("/", mount.target) if mount.target else None
    if mount.env is None and target is None:
        target = "/run/secrets/" + posixpath.basename(secret_id)
    return SecretSpec(
        id=secret_id,
        target=target,
        env=mount.env,
        required=mount.required,
        mode=0o400 if mount.mode is None else mount.mode,
        uid=mount.uid or 0,
        gid=mount.gid or 0,
    )
