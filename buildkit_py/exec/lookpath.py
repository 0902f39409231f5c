"""Finding a command's executable the way runc does (Go's exec.LookPath, with runc's error messages)."""

from __future__ import annotations

import os
import stat

from ..errors import ExecError

__all__ = ["look_path"]


def _find_executable(path: str) -> str | None:
    """Go's exec.findExecutable: None when runnable, else the reason."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"stat {path}: {os.strerror(exc.errno or 0).lower()}"
    if stat.S_ISDIR(mode) or not mode & 0o111:
        return "permission denied"
    return None


def look_path(file: str, path_env: str) -> str:
    """Go's exec.LookPath, with runc's error messages."""
    if "/" in file:
        reason = _find_executable(file)
        if reason is not None:
            raise ExecError(f'exec: "{file}": {reason}')
        return file
    for directory in path_env.split(":"):
        candidate = os.path.join(directory or ".", file)
        if _find_executable(candidate) is None:
            return candidate
    raise ExecError(f'exec: "{file}": executable file not found in $PATH')
