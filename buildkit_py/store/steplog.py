"""The step log: what each step that ran looked like (its definition, inputs and the files it read), so that a later
miss can say what changed. The explaining is the solver's (solver/explain.py); this keeps the rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .database import Database

__all__ = ["StepLogStore", "StepRow"]


@dataclass(frozen=True)
class StepRow:
    key: str
    input_keys: str  # JSON list of the inputs' cache keys
    kind: str
    instruction: str
    stage: str
    definition: str  # JSON
    files: bytes  # compressed JSON
    created: float
    number: int
    project: str
    duration: float = 0.0  # seconds the step took


class StepLogStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, row: StepRow) -> None:
        self._insert([row], "INSERT OR REPLACE")

    def add_missing(self, rows: Sequence[StepRow]) -> None:
        """Rows from elsewhere (an imported cache), for the keys this log has no row of."""
        self._insert(rows, "INSERT OR IGNORE")

    def rows(self, keys: Sequence[str]) -> list[StepRow]:
        """The rows of these keys that the log has."""
        found: list[StepRow] = []
        with self._db.read() as db:
            for key in dict.fromkeys(keys):
                row = db.execute(
                    "SELECT key, input_keys, kind, instruction, stage, definition, files, created, number, project, "
                    "duration FROM step_log WHERE key = ?",
                    (key,),
                ).fetchone()
                if row is not None:
                    key_text, input_keys, kind, instruction, stage, definition = row[:6]
                    found.append(
                        StepRow(
                            key=key_text,
                            input_keys=input_keys,
                            kind=kind,
                            instruction=instruction,
                            stage=stage,
                            definition=definition,
                            files=bytes(row[6]),
                            created=float(row[7]),
                            number=int(row[8]),
                            project=row[9],
                            duration=float(row[10]),
                        )
                    )
        return found

    def _insert(self, rows: Sequence[StepRow], verb: str) -> None:
        with self._db.write() as db:
            db.executemany(
                f"{verb} INTO step_log (key, input_keys, kind, instruction, stage, definition, files, "
                "created, number, project, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        row.key,
                        row.input_keys,
                        row.kind,
                        row.instruction,
                        row.stage,
                        row.definition,
                        row.files,
                        row.created,
                        row.number,
                        row.project,
                        row.duration,
                    )
                    for row in rows
                ],
            )

    def same_instruction(self, input_keys: str, kind: str, instruction: str, limit: int) -> list[tuple[str, bytes]]:
        """(definition, files) of the latest runs of this instruction on these inputs."""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT definition, files FROM step_log WHERE input_keys = ? AND kind = ? AND instruction = ? "
                "ORDER BY created DESC LIMIT ?",
                (input_keys, kind, instruction, limit),
            ).fetchall()
        return [(definition, bytes(files)) for definition, files in rows]

    def ran_in_stage(self, instruction: str, stage: str, project: str) -> bool:
        with self._db.read() as db:
            row = db.execute(
                "SELECT 1 FROM step_log WHERE instruction = ? AND stage = ? AND project = ? LIMIT 1",
                (instruction, stage, project),
            ).fetchone()
        return row is not None

    def instruction_at(self, input_keys: str, kind: str, number: int, project: str) -> str | None:
        """The latest instruction that ran as step `number` of `project` on these inputs."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT instruction FROM step_log WHERE input_keys = ? AND kind = ? AND number = ? AND project = ? "
                "ORDER BY created DESC LIMIT 1",
                (input_keys, kind, number, project),
            ).fetchone()
        return None if row is None else str(row[0])

    def last_duration(self, key: str, instruction: str, stage: str, project: str) -> float | None:
        """How long a step last took: the step with this key if it ran, else the latest run of the same instruction
        in the same stage of the project."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT duration FROM step_log WHERE duration > 0 AND (key = ? OR (instruction = ? AND stage = ? "
                "AND project = ?)) ORDER BY key = ? DESC, created DESC LIMIT 1",
                (key, instruction, stage, project, key),
            ).fetchone()
        return None if row is None else float(row[0])

    def forget(self, keys: Sequence[str]) -> None:
        with self._db.write() as db:
            db.executemany("DELETE FROM step_log WHERE key = ?", [(key,) for key in keys])
