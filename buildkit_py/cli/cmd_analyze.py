"""pybuild analyze: where an image's bytes go, dive's efficiency, findings with fixes, and dive-compatible CI gates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..fs.output import check_output_path, write_output
from .common import open_store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="show where an image's bytes go",
        description="Per layer: size, the Dockerfile step that made it, files added/changed/removed. For the image: "
        "total size, wasted bytes and efficiency as dive computes them, the largest files and directories, and "
        "findings that name their cause and a fix.",
    )
    parser.add_argument("image", metavar="NAME", help="image name or id")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (json: dive's)")
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report")
    parser.add_argument("--top", type=int, default=20, help="how many largest files and directories (default 20)")
    parser.add_argument("--no-file-list", action="store_true", help="json: leave each layer's fileList empty")
    ci = parser.add_argument_group("CI (dive-compatible)")
    ci.add_argument("--ci", action="store_true", help="judge the image against the rules; exit 1 when one fails")
    ci.add_argument(
        "--ci-config",
        type=Path,
        default=Path(".dive-ci"),
        help="a .dive-ci file; when it exists its rules replace the flags (default: .dive-ci)",
    )
    ci.add_argument(
        "--exclude-base",
        action="store_true",
        help="leave the base image's layers out of the efficiency and waste figures (default: dive's figures, "
        "which count every layer but the first)",
    )
    ci.add_argument("--lowestEfficiency", help="lowest allowable efficiency, 0-1, or 'disabled' (default 0.9)")
    ci.add_argument("--highestWastedBytes", help="highest allowable wasted bytes, e.g. 20MB, or 'disabled' (default)")
    ci.add_argument(
        "--highestUserWastedPercent",
        help="highest allowable wasted bytes over bytes above the base layer, 0-1, or 'disabled' (default 0.1)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: analyze (57 modules) loads when the command runs, not for `--help`
    from ..analyze import analyze, dive_ci, report_json, report_text

    if args.html:
        check_output_path(args.html, "HTML report")
    rules = source = None
    if args.ci:
        # Rules first: a misconfigured gate should fail before minutes of reading layers.
        flags = {
            dive_ci.LOWEST_EFFICIENCY: args.lowestEfficiency,
            dive_ci.HIGHEST_WASTED_BYTES: args.highestWastedBytes,
            dive_ci.HIGHEST_USER_WASTED_PERCENT: args.highestUserWastedPercent,
        }
        rules, source = dive_ci.load_rules(flags, args.ci_config)
    with open_store(args) as store:
        analysis = analyze(store, args.image, top=args.top, exclude_base=args.exclude_base)
    if args.html:
        from ..analyze.report_html import render_analysis  # lazy: only --html renders

        write_output(args.html, render_analysis(analysis), "HTML report")
    results = rules.evaluate(analysis.efficiency) if rules is not None else None
    if args.format == "json":
        document = report_json.export(analysis, file_lists=not args.no_file_list)
        if results is not None:
            document["pybuild"]["ci"] = {
                "source": source,
                "pass": dive_ci.passed(results),
                "rules": [{"key": r.key, "status": r.status, "message": r.message} for r in results],
            }
        print(json.dumps(document, indent=2))
    elif results is not None:
        print(report_text.render_ci(analysis, results, source or ""))
    else:
        print(report_text.render(analysis, shown=min(args.top, 20)))
    return 0 if results is None or dive_ci.passed(results) else 1
