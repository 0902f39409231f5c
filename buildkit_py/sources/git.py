"""ADD's git sources: which commit a ref names (`git ls-remote`, the cache key), and a shallow checkout of it.

The host's `git` does the work, as BuildKit's git source does, in an environment of its own: no system or user
configuration, no prompts, only the http, https, git and ssh transports (never `file` or `ext`), ssh in batch
mode, and the proxies of the environment. Every git command runs within a deadline ($PYBUILD_GIT_TIMEOUT seconds,
default 300) in a process group of its own, killed whole when the deadline passes.

Ref resolution follows BuildKit: `refs/<ref>` exactly, else the branch `refs/heads/<ref>`, else the tag
`refs/tags/<ref>`; a full commit id is used as it is; no ref means the remote's HEAD. A checksum (a commit id or a
prefix of one) must match the commit, or the object an annotated tag points at.

The checkout holds files 0644, or 0755 when executable in git, and directories 0755 (BuildKit's documented
modes), owned by root; `.git` is removed unless it is kept, and then it has the ref, with no FETCH_HEAD or reflog.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import StepError

__all__ = ["ResolvedRef", "checkout", "git_timeout", "resolve_ref", "subdir_folder"]

TIMEOUT_ENV = "PYBUILD_GIT_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_PASSED_ENV = (
    "PATH",
    "HOME",
    "SSH_AUTH_SOCK",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
)


@dataclass(frozen=True)
class ResolvedRef:
    """What a ref named on the remote: `object` is what to fetch and check (a commit, or an annotated tag),
    `commit` the commit the tree comes from; `ref` the full ref name it was found as ("" for a commit id)."""

    object: str
    commit: str
    ref: str


def git_timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise StepError(f"${TIMEOUT_ENV} must be a positive number of seconds, not {text!r}")
    return value


def _environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        GIT_ALLOW_PROTOCOL="http:https:git:ssh",
        GIT_SSH_COMMAND="ssh -o BatchMode=yes",
        LC_ALL="C",
    )
    return env


def _git(args: list[str], what: str, cwd: Path | None = None) -> str:
    """Run git; its standard output, or StepError naming `what` failed and git's last words."""
    program = shutil.which("git")
    if program is None:
        raise StepError("ADD of a git repository needs git on the host, and there is none on PATH")
    timeout = git_timeout()
    process = subprocess.Popen(
        [program, *args],
        cwd=cwd,
        env=_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its helpers (git-remote-http, ssh) die with it when the deadline passes
        umask=0o022,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise StepError(f"{what}: git did not finish within ${TIMEOUT_ENV}={timeout:g} s") from None
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    if process.returncode != 0:
        lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
        detail = "; ".join(lines[-2:]) or f"exit status {process.returncode}"
        raise StepError(f"{what}: {detail}")
    return out.decode(errors="replace")


def _is_commit(text: str) -> bool:
    return _COMMIT.match(text) is not None


def resolve_ref(remote: str, ref: str, checksum: str = "") -> ResolvedRef:
    """The commit `ref` names on `remote`, asking the remote only when `ref` is not a commit id itself."""
    if ref.startswith("-") or remote.startswith("-"):
        raise StepError(f"invalid git ref {ref!r} of {remote!r}")  # git would read it as an option
    if _is_commit(ref):
        resolved = ResolvedRef(object=ref, commit=ref, ref="")
    else:
        resolved = _ls_remote(remote, ref or "HEAD")
    if checksum and not (resolved.object.startswith(checksum) or resolved.commit.startswith(checksum)):
        shown = resolved.object if resolved.object == resolved.commit else f"{resolved.object} or {resolved.commit}"
        raise StepError(f"expected checksum to match {checksum}, got {shown}")
    return resolved


def _ls_remote(remote: str, ref: str) -> ResolvedRef:
    output = _git(["ls-remote", "--", remote, ref, ref + "^{}"], f"failed to resolve {ref} in {remote}")
    partial = "refs/" + ref.removeprefix("refs/")
    head = "refs/heads/" + ref.removeprefix("refs/heads/")
    tag = "refs/tags/" + ref.removeprefix("refs/tags/")
    found: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        found[name] = sha
    if ref == "HEAD" and "HEAD" in found:
        return ResolvedRef(object=found["HEAD"], commit=found["HEAD"], ref="HEAD")
    for name in (partial, head):
        if name in found:
            return ResolvedRef(object=found[name], commit=found[name], ref=name)
    if tag in found:
        return ResolvedRef(object=found[tag], commit=found.get(tag + "^{}", found[tag]), ref=tag)
    raise StepError(f"repository {remote} does not contain ref {ref}")


def checkout(remote: str, resolved: ResolvedRef, target: Path, *, keep_git_dir: bool) -> None:
    """A shallow checkout of `resolved` in the new folder `target`."""
    what = f"failed to fetch {resolved.ref or resolved.object} from {remote}"
    _git(["init", "--quiet", "--template=", str(target)], what)
    _git(["remote", "add", "origin", remote], what, cwd=target)
    if resolved.ref.startswith("refs/") and keep_git_dir:
        refspec = f"{resolved.ref}:{resolved.ref}"  # the kept .git knows the ref by its name
    else:
        refspec = resolved.ref or resolved.object
    _git(["fetch", "--quiet", "--depth=1", "--no-tags", "--update-head-ok", "origin", refspec], what, cwd=target)
    fetched = _git(["rev-parse", "FETCH_HEAD"], what, cwd=target).strip()
    if fetched != resolved.object:
        raise StepError(
            f"{resolved.ref or 'the ref'} of {remote} moved while building (it was {resolved.object}, the fetch got "
            f"{fetched}): build again"
        )
    _git(["-c", "advice.detachedHead=false", "checkout", "--quiet", resolved.commit], what, cwd=target)
    git_dir = target / ".git"
    if keep_git_dir:
        (git_dir / "FETCH_HEAD").unlink(missing_ok=True)
        _git(["reflog", "expire", "--all", "--expire=now"], what, cwd=target)
    else:
        shutil.rmtree(git_dir)
    _normalise_modes(target, skip=git_dir)


def _normalise_modes(root: Path, skip: Path) -> None:
    """0644 or 0755 for files, 0755 for directories, as BuildKit documents it; symlinks are left alone."""
    for directory, names, files in os.walk(root):
        if Path(directory) == skip:
            names.clear()
            continue
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                os.chmod(path, 0o755 if info.st_mode & 0o111 else 0o644)


def subdir_folder(target: Path, subdir: str) -> Path:
    """The folder `subdir` of a checkout: every component must be a directory, never a symlink (the repository
    chose them, and a symlink could point anywhere on the host)."""
    current = target
    for part in [part for part in subdir.split("/") if part]:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            raise StepError(f"the repository has no directory {subdir}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise StepError(f"{subdir} in the repository is not a directory")
    return current
