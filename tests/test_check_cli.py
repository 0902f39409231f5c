"""`pybuild build --check`, lint warnings during a build, and `# check=error=true`, through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BASE_IMAGE


def pybuild(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "build", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_check_without_findings_exits_0(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch AS base\nCOPY Dockerfile /\n")
    result = pybuild(tmp_path / "root", "--check", str(tmp_path))
    assert (result.returncode, result.stdout) == (0, "Check complete, no warnings found.\n")
    assert not (tmp_path / "root" / "tmp").exists() or not any((tmp_path / "root" / "tmp").iterdir())


def test_check_reports_findings_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch as Base\nCMD echo hi\n")
    result = pybuild(tmp_path / "root", "--check", str(tmp_path))
    assert result.returncode == 1
    assert "WARNING: StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/" in result.stdout
    assert "Dockerfile:1: Stage name 'Base' should be lowercase" in result.stdout
    assert "Dockerfile:1: 'as' and 'FROM' keywords' casing do not match" in result.stdout
    assert "Dockerfile:2: JSON arguments recommended for CMD to prevent unintended behavior" in result.stdout
    assert result.stdout.rstrip().endswith("Check complete, 3 warnings have been found!")


def test_check_skip_directive(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("# check=skip=StageNameCasing,FromAsCasing\nFROM scratch as Base\n")
    assert pybuild(tmp_path / "root", "--check", str(tmp_path)).returncode == 0


def test_check_error_true_names_the_rules(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("# check=error=true\nFROM scratch as base\n")
    result = pybuild(tmp_path / "root", "--check", str(tmp_path))
    assert result.returncode == 1
    assert "error: lint violation found for rules: FromAsCasing" in result.stderr


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("# check=skip\nFROM scratch\n", 'Dockerfile:1: failed to parse check options: invalid check option "skip"'),
        ("FROM scratch\nBADCMD\n", "Dockerfile:2: unknown instruction: BADCMD"),
        ("# syntax=me/frontend\nFROM scratch\n", "Dockerfile:1: unsupported frontend image 'me/frontend'"),
    ],
)
def test_check_bad_input(tmp_path: Path, dockerfile: str, message: str) -> None:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    result = pybuild(tmp_path / "root", "--check", str(tmp_path))
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_check_build_arg(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("# check=skip=all\nFROM scratch as base\n")
    result = pybuild(tmp_path / "root", "--check", "--build-arg", "BUILDKIT_DOCKERFILE_CHECK=error=true", str(tmp_path))
    assert result.returncode == 1 and "FromAsCasing" in result.stdout


def test_build_prints_warnings_with_their_lines(base_store: object, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE} as base\nRUN true\nmaintainer me\n")
    root = base_store.root  # type: ignore[attr-defined]
    result = pybuild(root, "--progress=plain", str(tmp_path))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "WARNING: Dockerfile:1: FromAsCasing: 'as' and 'FROM' keywords' casing do not match" in output
    assert "WARNING: Dockerfile:3: MaintainerDeprecated: Maintainer instruction is deprecated" in output
    assert "WARNING: Dockerfile:3: ConsistentInstructionCasing: Command 'maintainer' should match" in output


def test_error_true_fails_the_build_before_any_step(base_store: object, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"# check=error=true\nFROM {BASE_IMAGE} as base\nRUN touch /ran\n")
    root = base_store.root  # type: ignore[attr-defined]
    result = pybuild(root, "--progress=plain", "-t", "test/lint-error:1", str(tmp_path))
    assert result.returncode == 1
    assert "Dockerfile:2: lint violation found for rules: FromAsCasing" in result.stderr
    assert "touch /ran" not in result.stdout + result.stderr  # no step started
    images = subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), "images"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "test/lint-error" not in images.stdout
