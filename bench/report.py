"""Medians, ratios, and the Markdown table (the shared README's shape plus pybuild ÷ engine columns)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

MEASUREMENTS = ("a", "b", "c", "d")
HEADERS = {"a": "a. cold", "b": "b. no-op", "c": "c. late change", "d": "d. early change"}


@dataclass
class Results:
    # (scenario, engine label, measurement) -> seconds of each successful run
    seconds: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    # (scenario, engine label, measurement) -> peak RSS in KiB of each run (pybuild only is reported)
    peak_rss_kib: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    # (scenario, engine label, measurement) -> CPU seconds (user + system) of each successful run
    cpu_seconds: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    failures: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    rows: list[tuple[str, str]] = field(default_factory=list)  # (scenario, engine label) in table order
    notes: list[str] = field(default_factory=list)

    def add_row(self, scenario: str, engine: str) -> None:
        if (scenario, engine) not in self.rows:
            self.rows.append((scenario, engine))

    def median(self, scenario: str, engine: str, measurement: str) -> float | None:
        values = self.seconds.get((scenario, engine, measurement))
        return statistics.median(values) if values else None

    def median_cpu(self, scenario: str, engine: str, measurement: str) -> float | None:
        values = self.cpu_seconds.get((scenario, engine, measurement))
        return statistics.median(values) if values else None

    def peak_rss_mb(self, scenario: str, engine: str, measurement: str) -> float | None:
        values = self.peak_rss_kib.get((scenario, engine, measurement))
        return max(values) * 1024 / 1e6 if values else None


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _pybuild_peer(engine: str, rows: Iterable[tuple[str, str]], scenario: str) -> str | None:
    """The pybuild row a peer row is compared with: the one with the same --jobs if there is one."""
    labels = [e for s, e in rows if s == scenario and e.startswith("pybuild")]
    if not labels:
        return None
    jobs = engine.partition(" ")[2]
    for label in labels:
        if jobs and label.endswith(jobs):
            return label
    return "pybuild" if "pybuild" in labels else labels[0]


def markdown_table(results: Results) -> str:
    cells = [HEADERS[m] for m in MEASUREMENTS] + [f"pybuild ÷ engine {m}." for m in MEASUREMENTS]
    lines = ["| scenario | engine | " + " | ".join(cells) + " |", "|---|---|" + "---|" * len(cells)]
    for scenario, engine in results.rows:
        row = [scenario, engine]
        for m in MEASUREMENTS:
            value = results.median(scenario, engine, m)
            failed = results.failures.get((scenario, engine, m))
            row.append("fail" if value is None and failed else fmt_seconds(value))
        peer = None if engine.startswith("pybuild") else _pybuild_peer(engine, results.rows, scenario)
        for m in MEASUREMENTS:
            mine = results.median(scenario, peer, m) if peer else None
            theirs = results.median(scenario, engine, m)
            row.append(fmt_ratio(mine / theirs) if mine is not None and theirs else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def rss_table(results: Results) -> str:
    """Peak RSS of the pybuild process (MB, the largest of the runs) for each measurement."""
    lines = [
        "| scenario | engine | " + " | ".join(HEADERS[m] for m in MEASUREMENTS) + " |",
        "|---|---|" + "---|" * len(MEASUREMENTS),
    ]
    for scenario, engine in results.rows:
        if not engine.startswith("pybuild"):
            continue
        row = [scenario, engine]
        for m in MEASUREMENTS:
            values = results.peak_rss_kib.get((scenario, engine, m))
            row.append(f"{max(values) * 1024 / 1e6:.0f}" if values else "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def cpu_table(results: Results) -> str:
    """Median CPU seconds (user + system) of the timed process and the children it waited for."""
    lines = [
        "| scenario | engine | " + " | ".join(HEADERS[m] for m in MEASUREMENTS) + " |",
        "|---|---|" + "---|" * len(MEASUREMENTS),
    ]
    for scenario, engine in results.rows:
        row = [scenario, engine] + [fmt_seconds(results.median_cpu(scenario, engine, m)) for m in MEASUREMENTS]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def _check(out: list[str], label: str, ok: bool | None, detail: str) -> None:
    mark = "n/a" if ok is None else ("PASS" if ok else "FAIL")
    out.append(f"- {mark}: {label} ({detail})")


def _at_most(mine: float | None, theirs: float | None) -> bool | None:
    return None if mine is None or theirs is None else mine <= theirs


def goals_issue14(results: Results, shared_scenarios: Iterable[str]) -> list[str]:
    """The benchmark goals of issue 14, checked against this run."""
    out: list[str] = []
    m, cpu = results.median, results.median_cpu
    for scenario, phase, what in (("tiny", "b", "no-op"), ("many-steps", "b", "no-op")):
        py, dk = m(scenario, "pybuild", phase), m(scenario, "docker", phase)
        _check(
            out,
            f"{scenario} {what} ≤ docker",
            _at_most(py, dk),
            f"pybuild {fmt_seconds(py)} s, docker {fmt_seconds(dk)} s",
        )
    py_cpu = cpu("tiny", "pybuild", "b")
    _check(out, "tiny no-op ≤ 0.08 s of CPU", _at_most(py_cpu, 0.08), f"{fmt_seconds(py_cpu)} s")
    for scenario in dict.fromkeys(s for s, _ in results.rows):
        py, dk = m(scenario, "pybuild", "c"), m(scenario, "docker", "c")
        if py is not None or dk is not None:
            _check(
                out,
                f"{scenario} late change ≤ docker",
                _at_most(py, dk),
                f"pybuild {fmt_seconds(py)} s, docker {fmt_seconds(dk)} s",
            )
    for scenario, phase, limit in (("big-context", "a", 6.0), ("big-context", "d", 4.0), ("multi-stage", "a", 2.5)):
        py = m(scenario, "pybuild", phase)
        _check(out, f"{scenario} {HEADERS[phase]} ≤ {limit:g} s", _at_most(py, limit), f"{fmt_seconds(py)} s")
    for phase, limit in (("b", 1.5), ("a", 30.0)):
        py = m("many-files", "pybuild", phase)
        _check(out, f"many-files {HEADERS[phase]} ≤ {limit:g} s", _at_most(py, limit), f"{fmt_seconds(py)} s")
    peaks = [results.peak_rss_mb("many-files", "pybuild", phase) for phase in MEASUREMENTS]
    peak = max((p for p in peaks if p is not None), default=None)
    _check(out, "many-files peak RSS ≤ 150 MB", _at_most(peak, 150), "—" if peak is None else f"{peak:.0f} MB")
    shared = set(shared_scenarios)
    peaks = [
        results.peak_rss_mb(scenario, engine, phase)
        for scenario, engine in results.rows
        if scenario in shared and engine.startswith("pybuild")
        for phase in MEASUREMENTS
    ]
    peak = max((p for p in peaks if p is not None), default=None)
    _check(
        out,
        "peak RSS < 100 MB on every shared scenario",
        None if peak is None else peak < 100,
        "—" if peak is None else f"largest {peak:.0f} MB",
    )
    return out


def goals(results: Results) -> list[str]:
    """The benchmark figures of issue 3's "Done when", checked against this run."""
    out: list[str] = []

    def check(label: str, ok: bool | None, detail: str) -> None:
        mark = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        out.append(f"- {mark}: {label} ({detail})")

    m = results.median
    py, dk = m("big-context", "pybuild", "b"), m("big-context", "docker", "b")
    ok = None if py is None or dk is None else py <= dk / 10
    check("big-context no-op ≤ 1/10 of docker", ok, f"pybuild {fmt_seconds(py)} s, docker {fmt_seconds(dk)} s")
    py, dk = m("many-steps", "pybuild", "a"), m("many-steps", "docker", "a")
    ok = None if py is None or dk is None else py <= dk
    check("many-steps cold ≤ docker", ok, f"pybuild {fmt_seconds(py)} s, docker {fmt_seconds(dk)} s")
    for label in ("pybuild", "pybuild --jobs=3"):
        py = m("multi-stage", label, "a")
        if py is not None or label == "pybuild":
            check(f"multi-stage cold < 3.5 s ({label})", None if py is None else py < 3.5, f"{fmt_seconds(py)} s")
    py = m("tiny", "pybuild", "b")
    check("tiny no-op < 0.5 s", None if py is None else py < 0.5, f"{fmt_seconds(py)} s")
    rss = results.peak_rss_kib.get(("big-context", "pybuild", "a"))
    peak = max(rss) * 1024 / 1e6 if rss else None
    check("big-context cold peak RSS < 250 MB", None if peak is None else peak < 250, f"{peak:.0f} MB" if peak else "—")
    return out
