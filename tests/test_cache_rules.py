"""Cache invalidation rules, proved by counting which steps executed in real builds."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import BASE_IMAGE

from buildkit_py.builder import BuildResult, build, explain

DOCKERFILE = f"""FROM {BASE_IMAGE}
# a comment
ARG FLAVOUR=plain
COPY early.txt /app/early.txt
RUN cat /app/early.txt > /app/copy-of-early
RUN echo "$FLAVOUR" > /app/flavour
COPY late.txt /app/late.txt
"""


def ran(result: BuildResult) -> list[str]:
    graph = result.plan.graph
    names = [re.sub(r"^\[[^\]]*\]\s*", "", graph.meta(digest).name) for digest in result.stats.executed]
    return sorted(names)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "early.txt").write_text("early v0\n")
    (tmp_path / "late.txt").write_text("late v0\n")
    (tmp_path / "unrelated.txt").write_text("not copied\n")
    return tmp_path


def first_build(project: Path, store: object) -> BuildResult:
    return build(project, store=store)  # type: ignore[arg-type]


def test_rebuild_without_change_runs_nothing(project: Path, base_store: object) -> None:
    first_build(project, base_store)
    again = build(project, store=base_store)  # type: ignore[arg-type]
    assert ran(again) == []


def test_touch_comment_move_and_unrelated_file_are_hits(project: Path, base_store: object) -> None:
    first = first_build(project, base_store)
    touched = (project / "early.txt").stat()
    os.utime(project / "early.txt", ns=(touched.st_atime_ns, touched.st_mtime_ns + 1_000_000_000))
    (project / "unrelated.txt").write_text("changed but never copied\n")
    text = DOCKERFILE.replace("# a comment", "# an edited comment\n\n# and more lines above")
    (project / "Dockerfile").write_text(text)
    again = build(project, store=base_store)  # type: ignore[arg-type]
    assert ran(again) == []
    # Same layers; the config differs only where history names the moved Dockerfile lines.
    assert again.config.diff_ids == first.config.diff_ids


def test_one_byte_change_reruns_that_step_and_what_follows_only(project: Path, base_store: object) -> None:
    first_build(project, base_store)
    (project / "early.txt").write_text("early v1\n")
    again = build(project, store=base_store)  # type: ignore[arg-type]
    assert ran(again) == [
        "COPY early.txt /app/early.txt",
        "COPY late.txt /app/late.txt",
        "RUN cat /app/early.txt > /app/copy-of-early",
        'RUN echo "$FLAVOUR" > /app/flavour',
    ]


def test_late_file_change_reruns_only_the_last_copy(project: Path, base_store: object) -> None:
    first_build(project, base_store)
    (project / "late.txt").write_text("late v1\n")
    again = build(project, store=base_store)  # type: ignore[arg-type]
    assert ran(again) == ["COPY late.txt /app/late.txt"]


def test_build_arg_change_reruns_from_the_run_that_sees_it(project: Path, base_store: object) -> None:
    first_build(project, base_store)
    again = build(project, store=base_store, build_args={"FLAVOUR": "spicy"})  # type: ignore[arg-type]
    assert ran(again) == [
        "COPY late.txt /app/late.txt",
        "RUN cat /app/early.txt > /app/copy-of-early",
        'RUN echo "$FLAVOUR" > /app/flavour',
    ]


def test_same_step_in_two_stages_runs_once(tmp_path: Path, base_store: object) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE} AS one\nRUN echo shared-{tmp_path.name} > /s\n"
        f"FROM {BASE_IMAGE} AS two\nRUN echo shared-{tmp_path.name} > /s\n"
        "FROM two\nCOPY --from=one /s /from-one\n"
    )
    result = build(tmp_path, store=base_store)  # type: ignore[arg-type]
    assert ran(result).count(f"RUN echo shared-{tmp_path.name} > /s") == 1


def test_no_cache_runs_everything(project: Path, base_store: object) -> None:
    first_build(project, base_store)
    again = build(project, store=base_store, no_cache=True)  # type: ignore[arg-type]
    assert len(ran(again)) == 4


def test_miss_reasons_name_the_file_and_the_value(project: Path, base_store: object) -> None:
    first_build(project, base_store)
    (project / "early.txt").write_text("early v2\n")
    reasons = {re.sub(r"^\[[^\]]*\]\s*", "", name): state for _, name, state in explain(project, store=base_store)}  # type: ignore[arg-type]
    assert "early.txt" in reasons["COPY early.txt /app/early.txt"]
    assert "rebuilt" in reasons["RUN cat /app/early.txt > /app/copy-of-early"]
    (project / "early.txt").write_text("early v0\n")
    reasons = {
        re.sub(r"^\[[^\]]*\]\s*", "", name): state
        for _, name, state in explain(project, store=base_store, build_args={"FLAVOUR": "sweet"})  # type: ignore[arg-type]
    }
    # ARGs in scope are in every later RUN's environment: the first RUN after the ARG is the one that changed.
    assert "FLAVOUR" in reasons["RUN cat /app/early.txt > /app/copy-of-early"]
    assert "sweet" in reasons["RUN cat /app/early.txt > /app/copy-of-early"]
    assert "rebuilt" in reasons['RUN echo "$FLAVOUR" > /app/flavour']


def test_a_rebuild_that_hits_everything_gives_the_same_image_id(project: Path, base_store: object) -> None:
    first = first_build(project, base_store)
    again = build(project, store=base_store)  # type: ignore[arg-type]
    assert again.image_id == first.image_id


def test_an_edited_instruction_says_what_it_was(project: Path, base_store: object) -> None:
    own = DOCKERFILE.replace("FLAVOUR=plain", f"FLAVOUR={project.name}")  # steps no other test has built
    (project / "Dockerfile").write_text(own)
    first_build(project, base_store)
    (project / "Dockerfile").write_text(own.replace('echo "$FLAVOUR"', 'echo "flavour: $FLAVOUR"'))
    reasons = {re.sub(r"^\[[^\]]*\]\s*", "", name): state for _, name, state in explain(project, store=base_store)}  # type: ignore[arg-type]
    assert reasons['RUN echo "flavour: $FLAVOUR" > /app/flavour'] == (
        'the instruction changed (was: RUN echo "$FLAVOUR" > /app/flavour)'
    )
    assert reasons["COPY late.txt /app/late.txt"] == "parent step #3 was rebuilt"


def test_no_cache_filter_reruns_that_stage_and_what_reads_it(tmp_path: Path, base_store: object) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE} AS deps\nRUN echo deps-{tmp_path.name} > /deps\n"
        f"FROM {BASE_IMAGE} AS app\nRUN echo app-{tmp_path.name} > /app\nCOPY --from=deps /deps /deps\n"
    )
    build(tmp_path, store=base_store)  # type: ignore[arg-type]
    again = build(tmp_path, store=base_store, no_cache_stages=["deps"])  # type: ignore[arg-type]
    # The app stage's own RUN hits; the COPY that reads the rebuilt stage runs again.
    assert ran(again) == ["COPY --from=deps /deps /deps", f"RUN echo deps-{tmp_path.name} > /deps"]
