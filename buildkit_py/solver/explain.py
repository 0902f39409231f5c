"""Why a step missed the cache: compare it with the closest step that ran before on the same inputs."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..digest import Digest
from .ops import instruction_text
from .solver import StepRecord

_RECORD_REMOVED = "the cache record was removed (pruned, or --no-cache)"
_SHOWN_PATHS = 3
_CANDIDATES = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS step_log (
    key TEXT PRIMARY KEY,
    input_keys TEXT NOT NULL,
    kind TEXT NOT NULL,
    instruction TEXT NOT NULL,
    stage TEXT NOT NULL,
    definition TEXT NOT NULL,
    files BLOB NOT NULL,
    created REAL NOT NULL,
    number INTEGER NOT NULL DEFAULT 0,
    project TEXT NOT NULL DEFAULT '',
    duration REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS step_log_inputs ON step_log(input_keys, kind);
CREATE INDEX IF NOT EXISTS step_log_instruction ON step_log(instruction, stage);
"""


class StepLog:
    """An Explainer backed by a table in the store's SQLite database."""

    def __init__(self, database: Path, project: str = "") -> None:
        """`project` names the build (context and Dockerfile): guesses about edits look only at its own steps."""
        self.project = project
        self._connection = sqlite3.connect(database, timeout=30, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(_SCHEMA)
        columns = {row[1] for row in self._connection.execute("PRAGMA table_info(step_log)")}
        for column, kind in (
            ("number", "INTEGER NOT NULL DEFAULT 0"),
            ("project", "TEXT NOT NULL DEFAULT ''"),
            ("duration", "REAL NOT NULL DEFAULT 0"),
        ):
            if column not in columns:  # a store written before this column existed
                self._connection.execute(f"ALTER TABLE step_log ADD COLUMN {column} {kind}")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._connection.close()

    def record(self, step: StepRecord) -> None:
        files = zlib.compress(json.dumps([dict(f) for f in step.files], sort_keys=True).encode())
        with self._lock, self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO step_log (key, input_keys, kind, instruction, stage, definition, files, created, "
                "number, project, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(step.key),
                    json.dumps([str(k) for k in step.input_keys]),
                    step.kind,
                    instruction_text(step.name),
                    step.stage,
                    json.dumps(step.definition, sort_keys=True),
                    files,
                    time.time(),
                    step.number,
                    self.project,
                    step.duration,
                ),
            )

    def last_duration(self, key: Digest, name: str, stage: str) -> float | None:
        """How long the step last took: this very step if it ran, else the latest run of the same instruction in
        the same stage of this project (an edit elsewhere changes a step's key, rarely its cost)."""
        with self._lock:
            row = self._connection.execute(
                "SELECT duration FROM step_log WHERE duration > 0 AND (key = ? OR (instruction = ? AND stage = ? "
                "AND project = ?)) ORDER BY key = ? DESC, created DESC LIMIT 1",
                (str(key), instruction_text(name), stage, self.project, str(key)),
            ).fetchone()
        return None if row is None else float(row[0])

    def explain(self, step: StepRecord) -> str:
        """The same instruction on the same inputs tells what changed in it (files, values); the same instruction
        on other inputs means its base changed; another instruction at the same place on the same inputs means it
        was edited. Steps of other Dockerfiles on the same base are never taken for this one."""
        inputs = json.dumps([str(k) for k in step.input_keys])
        instruction = instruction_text(step.name)
        with self._lock:
            same = self._connection.execute(
                "SELECT definition, files FROM step_log WHERE input_keys = ? AND kind = ? AND instruction = ? "
                "ORDER BY created DESC LIMIT ?",
                (inputs, step.kind, instruction, _CANDIDATES),
            ).fetchall()
            moved = self._connection.execute(
                "SELECT 1 FROM step_log WHERE instruction = ? AND stage = ? AND project = ? LIMIT 1",
                (instruction, step.stage, self.project),
            ).fetchone()
            edited = self._connection.execute(
                "SELECT instruction FROM step_log WHERE input_keys = ? AND kind = ? AND number = ? AND project = ? "
                "ORDER BY created DESC LIMIT 1",
                (inputs, step.kind, step.number, self.project),
            ).fetchone()
        if same:
            reasons = [
                _difference(step, json.loads(definition), json.loads(zlib.decompress(files)))
                for definition, files in same
            ]
            if _RECORD_REMOVED in reasons:  # this very step ran before: nothing changed, its record is gone
                return _RECORD_REMOVED
            return min(reasons, key=len)
        if moved:
            return "its base changed (a different base image or source stage than when it last ran)"
        if edited:
            return f"the instruction changed (was: {edited[0]})"
        return "no earlier build of this step"


def _difference(step: StepRecord, old_definition: dict[str, Any], old_files: list[dict[str, str]]) -> str:
    new_definition = step.definition
    if step.kind == "exec":
        return _exec_difference(old_definition, new_definition)
    if step.kind == "file":
        changed = _files_difference(old_files, [dict(f) for f in step.files])
        if changed:
            return changed
    if old_definition != new_definition:
        return "the instruction changed"
    return _RECORD_REMOVED


def _exec_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    notes: list[str] = []
    old_env = dict(entry.partition("=")[::2] for entry in old.get("env", []))
    new_env = dict(entry.partition("=")[::2] for entry in new.get("env", []))
    for name in sorted(set(old_env) | set(new_env)):
        if name not in old_env:
            notes.append(f"{name} added (={new_env[name]!r})")
        elif name not in new_env:
            notes.append(f"{name} removed (was {old_env[name]!r})")
        elif old_env[name] != new_env[name]:
            notes.append(f"{name} changed: {old_env[name]!r} -> {new_env[name]!r}")
    if notes:
        return "ARG/ENV " + "; ".join(notes)
    if old.get("args") != new.get("args"):
        return "the command changed"
    for field_name, label in (("cwd", "working dir"), ("user", "user"), ("network", "network mode")):
        if old.get(field_name) != new.get(field_name):
            return f"the {label} changed: {old.get(field_name)!r} -> {new.get(field_name)!r}"
    return _RECORD_REMOVED


def _files_difference(old_files: list[dict[str, str]], new_files: list[dict[str, str]]) -> str:
    if len(old_files) != len(new_files):
        return ""
    changed: list[str] = []
    added: list[str] = []
    removed: list[str] = []
    for old, new in zip(old_files, new_files):
        changed += [path for path in new if path in old and old[path] != new[path]]
        added += [path for path in new if path not in old]
        removed += [path for path in old if path not in new]
    parts = []
    for label, paths in (("changed", changed), ("added", added), ("removed", removed)):
        if paths:
            more = f" (+{len(paths) - _SHOWN_PATHS} more)" if len(paths) > _SHOWN_PATHS else ""
            parts.append(f"{label}: {', '.join(sorted(paths)[:_SHOWN_PATHS])}{more}")
    return "files " + "; ".join(parts) if parts else ""
