"""dive's CI rules: values read as dive reads them, the .dive-ci file, verdict lines and the exit code."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from analyze_images import CHMOD, DELETED, make_image

from buildkit_py.analyze.dive_ci import CIConfigError, Rules, load_rules, parse_bytes, passed, summary
from buildkit_py.analyze.efficiency import Efficiency
from buildkit_py.cli.main import main
from buildkit_py.store import Store


def _result(score: float, wasted: int, user: int) -> Efficiency:
    from buildkit_py.analyze.efficiency import PathEfficiency

    inefficient = (PathEfficiency("/x", [0, 1], wasted, 0),) if wasted else ()
    return Efficiency(score=score, inefficient=inefficient, size_bytes=user + 100, user_size_bytes=user)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20MB", 20_000_000),
        ("20mb", 20_000_000),
        ("20 MiB", 20 * 1024 * 1024),
        ("1.5GB", 1_500_000_000),
        ("42", 42),
        ("1,000 kB", 1_000_000),
        ("7k", 7000),
        ("3ki", 3072),
        ("10 b", 10),
    ],
)
def test_bytes_parse_as_go_humanize(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["MB", " 20MB", "20 XB", "-5MB"])
def test_bad_byte_values_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bytes(text)


@pytest.mark.parametrize("value", ["disabled", "DISABLED", "off", "false", "", "  Off "])
def test_disabled_values(value: str) -> None:
    rules = Rules.parse({"lowestEfficiency": value, "highestWastedBytes": value, "highestUserWastedPercent": value})
    results = rules.evaluate(_result(0.1, 10**9, 10))
    assert [result.status for result in results] == ["SKIP", "SKIP", "SKIP"]
    assert passed(results) and summary(results) == "PASS [skip:3]"


def test_defaults_are_dives() -> None:
    rules = Rules.parse({})
    assert (rules.lowest_efficiency, rules.highest_wasted_bytes, rules.highest_user_wasted_percent) == (0.9, None, 0.1)


@pytest.mark.parametrize("value", ["1.5", "-0.1", "abc", "0.5 ", "1_0"])
def test_out_of_range_or_malformed_ratios_fail_as_in_dive(value: str) -> None:
    with pytest.raises(CIConfigError):
        Rules.parse({"lowestEfficiency": value})


def test_verdict_lines_match_dives_wording() -> None:
    rules = Rules.parse({"lowestEfficiency": "0.95", "highestWastedBytes": "1kB", "highestUserWastedPercent": "0.2"})
    results = rules.evaluate(_result(0.9, 5000, 10000))
    assert [result.line() for result in results] == [
        (
            "  FAIL  highestUserWastedPercent (too many bytes wasted, relative to the user bytes added "
            "(%-user-wasted-bytes=0.50 > threshold=0.2))"
        ),
        "  FAIL  highestWastedBytes (too many bytes wasted (wasted-bytes=5000 > threshold=1000))",
        "  FAIL  lowestEfficiency (image efficiency is too low (efficiency=0.90 < threshold=0.95))",
    ]
    assert summary(results) == "FAIL [fail:3]"
    results = rules.evaluate(_result(0.99, 0, 10000))
    assert [result.line() for result in results] == [
        "  PASS  highestUserWastedPercent (0.2)",
        "  PASS  highestWastedBytes (1kB)",
        "  PASS  lowestEfficiency (0.95)",
    ]


def test_single_layer_image_divides_by_zero_as_go_does() -> None:
    rules = Rules.parse({})
    assert math.isinf(_result(0.5, 10, 0).wasted_user_percent)
    assert next(r.status for r in rules.evaluate(_result(0.5, 10, 0))) == "FAIL"  # +Inf > 0.1
    assert next(r.status for r in rules.evaluate(_result(1.0, 0, 0))) == "PASS"  # NaN > 0.1 is false


def test_dive_ci_file_replaces_flags(tmp_path: Path) -> None:
    config = tmp_path / ".dive-ci"
    config.write_text("rules:\n  lowestEfficiency: 0.95\n  highestWastedBytes: 20MB\n  highestUserWastedPercent: off\n")
    rules, source = load_rules({"lowestEfficiency": "0.1"}, config)
    assert source == str(config)
    assert (rules.lowest_efficiency, rules.highest_wasted_bytes, rules.highest_user_wasted_percent) == (
        0.95,
        20_000_000,
        None,
    )
    config.write_text("rules:\n  highestWastedBytes: 1.0e3\n")  # the YAML text, not PyYAML's float, is parsed
    with pytest.raises(CIConfigError):
        load_rules({}, config)
    rules, source = load_rules({"highestWastedBytes": "5MB"}, tmp_path / "absent")
    assert source == "flags" and rules.highest_wasted_bytes == 5_000_000 and rules.lowest_efficiency == 0.9


def test_cli_ci_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .dive-ci here
    root = tmp_path / "root"
    with Store(root) as store:
        make_image(store, "chmod", CHMOD)
        make_image(store, "deleted", DELETED)
    # chmod: efficiency 6000/11000 = 0.545..., wasted 10000 of 10000 user bytes.
    assert main(["--root", str(root), "analyze", "chmod", "--ci"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  lowestEfficiency (image efficiency is too low (efficiency=0.55 < threshold=0.9))" in out
    assert out.rstrip().endswith("FAIL [fail:2 skip:1]")
    args = ["--lowestEfficiency=0.5", "--highestUserWastedPercent", "disabled", "--highestWastedBytes", "10kB"]
    assert main(["--root", str(root), "analyze", "chmod", "--ci", *args]) == 0
    assert capsys.readouterr().out.rstrip().endswith("PASS [pass:2 skip:1]")
    assert (
        main(
            [
                "--root",
                str(root),
                "analyze",
                "deleted",
                "--ci",
                "--highestWastedBytes",
                "9.9MB",
                "--lowestEfficiency",
                "off",
                "--highestUserWastedPercent",
                "off",
            ]
        )
        == 1
    )
    assert "wasted-bytes=10000000 > threshold=9900000" in capsys.readouterr().out
    (tmp_path / ".dive-ci").write_text("rules:\n  lowestEfficiency: disabled\n  highestUserWastedPercent: disabled\n")
    assert main(["--root", str(root), "analyze", "deleted", "--ci", "--highestWastedBytes", "1B"]) == 0
    assert (
        main(["--root", str(root), "analyze", "chmod", "--ci", "--ci-config", "nowhere", "--lowestEfficiency", "2"])
        == 1
    )
    assert "outside allowed range" in capsys.readouterr().err
