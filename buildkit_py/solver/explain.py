"""Why a step missed the cache: compare it with the closest step that ran before on the same inputs."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Mapping
from typing import Any

from ..digest import Digest
from ..store.steplog import StepLogStore, StepRow
from .ops import instruction_text
from .solver import SETTINGS_FIELD, StepRecord

_RECORD_REMOVED = "the cache record was removed (pruned, or --no-cache)"
_SHOWN_PATHS = 3
_CANDIDATES = 20


class StepLog:
    """An Explainer over the store's step log."""

    def __init__(self, steps: StepLogStore, project: str = "") -> None:
        """`project` names the build (context and Dockerfile): guesses about edits look only at its own steps."""
        self.project = project
        self._steps = steps

    def close(self) -> None:
        pass

    def record(self, step: StepRecord) -> None:
        files = zlib.compress(json.dumps([dict(f) for f in step.files], sort_keys=True).encode())
        self._steps.record(
            StepRow(
                key=str(step.key),
                input_keys=json.dumps([str(k) for k in step.input_keys]),
                kind=step.kind,
                instruction=instruction_text(step.name),
                stage=step.stage,
                definition=json.dumps(step.definition, sort_keys=True),
                files=files,
                created=time.time(),
                number=step.number,
                project=self.project,
                duration=step.duration,
            )
        )

    def last_duration(self, key: Digest, name: str, stage: str) -> float | None:
        """How long the step last took: this very step if it ran, else the latest run of the same instruction in
        the same stage of this project (an edit elsewhere changes a step's key, rarely its cost)."""
        return self._steps.last_duration(str(key), instruction_text(name), stage, self.project)

    def explain(self, step: StepRecord) -> str:
        """The same instruction on the same inputs tells what changed in it (files, values); the same instruction
        on other inputs means its base changed; another instruction at the same place on the same inputs means it
        was edited. Steps of other Dockerfiles on the same base are never taken for this one."""
        inputs = json.dumps([str(k) for k in step.input_keys])
        instruction = instruction_text(step.name)
        same = self._steps.same_instruction(inputs, step.kind, instruction, _CANDIDATES)
        moved = self._steps.ran_in_stage(instruction, step.stage, self.project)
        edited = self._steps.instruction_at(inputs, step.kind, step.number, self.project)
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
            return f"the instruction changed (was: {edited})"
        return "no earlier build of this step"


def _difference(step: StepRecord, old_definition: dict[str, Any], old_files: list[dict[str, str]]) -> str:
    """What differs between the step and an earlier run of it; build settings (SOURCE_DATE_EPOCH) are named only
    when nothing of the step itself changed."""
    old_settings = old_definition.get(SETTINGS_FIELD)
    old_definition = {name: value for name, value in old_definition.items() if name != SETTINGS_FIELD}
    new_settings = step.definition.get(SETTINGS_FIELD)
    new_definition = {name: value for name, value in step.definition.items() if name != SETTINGS_FIELD}
    reason = _step_difference(step, old_definition, new_definition, old_files)
    if reason == _RECORD_REMOVED:
        return _settings_difference(old_settings, new_settings) or reason
    return reason


def _step_difference(
    step: StepRecord, old_definition: dict[str, Any], new_definition: dict[str, Any], old_files: list[dict[str, str]]
) -> str:
    if step.kind == "exec":
        changed = _files_difference(old_files, [dict(f) for f in step.files]) if step.files else ""
        return changed or _exec_difference(old_definition, new_definition)
    if step.kind == "file":
        changed = _files_difference(old_files, [dict(f) for f in step.files])
        if changed:
            return changed
    if old_definition != new_definition:
        return "the instruction changed"
    return _RECORD_REMOVED


def _settings_difference(old: Any, new: Any) -> str:
    """The build settings that changed, e.g. `SOURCE_DATE_EPOCH changed: 1700000000 -> 1700000100`."""
    old_settings = old if isinstance(old, dict) else {}
    new_settings = new if isinstance(new, dict) else {}
    notes: list[str] = []
    for name in sorted(set(old_settings) | set(new_settings), key=str):
        if name not in old_settings:
            notes.append(f"{name} set to {new_settings[name]} (it was not set when this step last ran)")
        elif name not in new_settings:
            notes.append(f"{name} unset (it was {old_settings[name]} when this step last ran)")
        elif old_settings[name] != new_settings[name]:
            notes.append(f"{name} changed: {old_settings[name]} -> {new_settings[name]}")
    if not notes:
        return ""
    return "; ".join(notes) + " (part of the key of every step that makes a layer)"


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
    if old.get("mounts") != new.get("mounts"):
        return "its --mount options changed"
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
