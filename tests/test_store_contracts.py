"""Contract tests of two narrow store interfaces that the rest of the suite reaches only through builds:
`store.steps` (StepLogStore: what each step that ran looked like, for explaining a later miss and for carrying with an
exported cache) and `store.fingerprints` (FingerprintRecords: the last build of a project, for the fast path). Each
public method against a real Store on disk, fresh and migrated from pybuild 0.1.0, including missing keys,
overwrites, and what survives reopening the root."""

from __future__ import annotations

import shutil
import uuid
import zlib
from pathlib import Path

import pytest

from buildkit_py.store import Store
from buildkit_py.store.fingerprints import BuildFingerprint
from buildkit_py.store.steplog import StepRow

V1_STORE = Path(__file__).resolve().parents[1] / "testdata" / "store-v1"


@pytest.fixture(params=["fresh", "migrated"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "fresh":
        return Store(tmp_path / "root")
    shutil.copytree(V1_STORE, tmp_path / "root")
    return Store(tmp_path / "root")


@pytest.fixture
def project() -> str:
    """A project name no row of the migrated store can have, so its old rows never answer these queries."""
    return f"project-{uuid.uuid4().hex}"


def step(key: str, project: str, **fields: object) -> StepRow:
    values: dict[str, object] = {
        "key": key,
        "input_keys": '["inputs"]',
        "kind": "exec",
        "instruction": f"RUN make {project}",
        "stage": "build",
        "definition": '{"args": ["make"]}',
        "files": zlib.compress(b'{"files": []}'),
        "created": 100.0,
        "number": 3,
        "project": project,
    }
    values.update(fields)
    return StepRow(**values)  # type: ignore[arg-type]


# -- StepLogStore ------------------------------------------------------------------------------------------------------


def test_a_recorded_step_reads_back_field_for_field(store: Store, project: str) -> None:
    row = step(f"{project}-a", project, files=bytes(range(256)), duration=1.5)
    store.steps.record(row)
    assert store.steps.rows([row.key]) == [row]
    assert Store(store.root).steps.rows([row.key]) == [row]  # on disk, not in a process's memory
    assert step(f"{project}-b", project).duration == 0.0


def test_rows_skips_missing_keys_and_gives_each_key_once(store: Store, project: str) -> None:
    first, second = step(f"{project}-1", project), step(f"{project}-2", project, number=4)
    store.steps.record(first)
    store.steps.record(second)
    assert store.steps.rows([]) == []
    assert store.steps.rows([f"{project}-missing"]) == []
    found = store.steps.rows([second.key, f"{project}-missing", first.key, second.key])
    assert found == [second, first]  # the order asked for, no duplicates


def test_record_replaces_and_add_missing_does_not(store: Store, project: str) -> None:
    key = f"{project}-k"
    store.steps.record(step(key, project, definition='{"v": 1}'))
    store.steps.record(step(key, project, definition='{"v": 2}', created=200.0))
    assert [row.definition for row in store.steps.rows([key])] == ['{"v": 2}']

    imported = [step(key, project, definition='{"v": "imported"}'), step(f"{project}-new", project)]
    store.steps.add_missing(imported)
    assert [row.definition for row in store.steps.rows([key])] == ['{"v": 2}']  # this store's own run wins
    assert store.steps.rows([f"{project}-new"]) == [imported[1]]
    store.steps.add_missing([])  # nothing to add is no error


def test_same_instruction_gives_the_latest_runs_on_those_inputs(store: Store, project: str) -> None:
    instruction = f"RUN make {project}"
    for number, created in enumerate((10.0, 30.0, 20.0)):
        store.steps.record(
            step(
                f"{project}-{number}", project, created=created, definition=f'{{"n": {number}}}', files=b"f%d" % number
            )
        )
    store.steps.record(step(f"{project}-other-inputs", project, input_keys='["other"]', created=99.0))
    store.steps.record(step(f"{project}-other-kind", project, kind="file", created=99.0))
    latest = store.steps.same_instruction('["inputs"]', "exec", instruction, limit=2)
    assert latest == [('{"n": 1}', b"f1"), ('{"n": 2}', b"f2")]
    assert len(store.steps.same_instruction('["inputs"]', "exec", instruction, limit=10)) == 3
    assert store.steps.same_instruction('["inputs"]', "exec", "RUN never ran", limit=5) == []


def test_ran_in_stage_matches_instruction_stage_and_project(store: Store, project: str) -> None:
    store.steps.record(step(f"{project}-a", project, instruction="RUN a", stage="build"))
    assert store.steps.ran_in_stage("RUN a", "build", project)
    assert not store.steps.ran_in_stage("RUN a", "test", project)
    assert not store.steps.ran_in_stage("RUN b", "build", project)
    assert not store.steps.ran_in_stage("RUN a", "build", f"{project}-elsewhere")


def test_instruction_at_gives_the_latest_instruction_at_that_number(store: Store, project: str) -> None:
    store.steps.record(step(f"{project}-old", project, instruction="RUN old", number=5, created=1.0))
    store.steps.record(step(f"{project}-new", project, instruction="RUN new", number=5, created=2.0))
    store.steps.record(step(f"{project}-later", project, instruction="RUN later", number=6, created=3.0))
    assert store.steps.instruction_at('["inputs"]', "exec", 5, project) == "RUN new"
    assert store.steps.instruction_at('["inputs"]', "exec", 6, project) == "RUN later"
    assert store.steps.instruction_at('["inputs"]', "exec", 7, project) is None
    assert store.steps.instruction_at('["other"]', "exec", 5, project) is None
    assert store.steps.instruction_at('["inputs"]', "exec", 5, f"{project}-elsewhere") is None


def test_last_duration_prefers_the_key_then_the_latest_run_of_the_instruction(store: Store, project: str) -> None:
    instruction = f"RUN make {project}"
    assert store.steps.last_duration(f"{project}-x", instruction, "build", project) is None
    store.steps.record(step(f"{project}-own", project, created=1.0, duration=7.0))
    store.steps.record(step(f"{project}-newer", project, created=5.0, duration=3.0))
    store.steps.record(step(f"{project}-newest-unmeasured", project, created=9.0, duration=0.0))
    assert store.steps.last_duration(f"{project}-own", instruction, "build", project) == 7.0
    assert store.steps.last_duration(f"{project}-unknown", instruction, "build", project) == 3.0  # 0 is no time
    assert store.steps.last_duration(f"{project}-unknown", instruction, "test", project) is None
    assert store.steps.last_duration(f"{project}-own", "RUN other", "test", f"{project}-elsewhere") == 7.0


def test_forget_removes_only_the_keys_given(store: Store, project: str) -> None:
    keep, drop = step(f"{project}-keep", project), step(f"{project}-drop", project)
    store.steps.record(keep)
    store.steps.record(drop)
    store.steps.forget([drop.key, f"{project}-never-recorded"])
    store.steps.forget([])
    assert store.steps.rows([keep.key, drop.key]) == [keep]
    assert not Store(store.root).steps.rows([drop.key])
    store.steps.add_missing([drop])  # a forgotten key can come back, from an imported cache
    assert store.steps.rows([drop.key]) == [drop]


# -- FingerprintRecords ------------------------------------------------------------------------------------------------


def test_a_fingerprint_is_missing_until_put_and_put_replaces(store: Store, project: str) -> None:
    assert store.fingerprints.get(project) is None
    first = BuildFingerprint(project, "fingerprint-1", '{"image": "sha256:1"}')
    store.fingerprints.put(first)
    assert store.fingerprints.get(project) == first
    second = BuildFingerprint(project, "fingerprint-2", '{"image": "sha256:2"}')
    store.fingerprints.put(second)
    assert store.fingerprints.get(project) == second
    assert Store(store.root).fingerprints.get(project) == second
    assert store.fingerprints.get(f"{project}-other") is None


def test_forget_one_project_or_every_one(store: Store, project: str) -> None:
    names = [f"{project}-{n}" for n in range(3)]
    for name in names:
        store.fingerprints.put(BuildFingerprint(name, f"fp-{name}", "{}"))
    store.fingerprints.forget(names[0])
    store.fingerprints.forget(f"{project}-never-built")  # no error
    assert [store.fingerprints.get(name) is not None for name in names] == [False, True, True]
    store.fingerprints.forget()
    assert [store.fingerprints.get(name) for name in names] == [None, None, None]
    store.fingerprints.put(BuildFingerprint(names[1], "again", "{}"))  # usable after forgetting everything
    assert store.fingerprints.get(names[1]) == BuildFingerprint(names[1], "again", "{}")
