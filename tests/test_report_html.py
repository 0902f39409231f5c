"""The HTML reports: self-contained, no scripts, and they render in headless Chromium (screenshot checked)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from analyze_images import APT, CHMOD, DELETED, make_image
from helpers import required_tool

from buildkit_py.analyze import analyze
from buildkit_py.analyze.analysis import analyze_image
from buildkit_py.analyze.imagediff import diff
from buildkit_py.analyze.report_html import render_analysis, render_diff
from buildkit_py.cli.main import main
from buildkit_py.store import Store


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "root") as opened:
        make_image(opened, "deleted", DELETED)
        make_image(opened, "chmod", CHMOD)
        make_image(opened, "apt", APT)
        yield opened


def test_page_is_self_contained_and_has_the_chart(store: Store) -> None:
    page = render_analysis(analyze(store, "deleted"))
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert page.count("<svg") == 1
    # one bar segment for the 10 MB layer, at the full bar width, and the red band of bytes deleted later
    assert 'width="470.0" height="16" fill="#4e79a7"><title>/: 10 MB</title>' in page
    assert 'height="5" fill="#d62728"><title>wasted: 10 MB</title>' in page
    assert "deleted-later" in page and "/big" in page


def test_diff_page_shows_both_images_on_one_scale(store: Store) -> None:
    result = diff(store, "deleted", "apt")
    page = render_diff(result, analyze_image(result.a), analyze_image(result.b))
    assert page.count("<svg") == 2 and '<div class="cols">' in page
    assert "-10 MB" in page and "/usr/bin/tool" in page


def _png_pixels(path: Path) -> tuple[int, int, set[bytes]]:
    """Width, height and the set of distinct RGB(A) pixels of an 8-bit non-interlaced PNG, read without Pillow."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    offset = 0
    for _ in range(height):
        filter_type, line = raw[offset], bytearray(raw[offset + 1 : offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predictor) & 0xFF
        colours.update(bytes(line[i : i + 3]) for i in range(0, stride, channels * 7))
        previous = line
    return width, height, colours


@pytest.mark.parametrize("kind", ["analyze", "diff"])
def test_report_renders_in_headless_chromium(store: Store, tmp_path: Path, kind: str) -> None:
    report = tmp_path / f"{kind}.html"
    root = str(store.root)
    if kind == "analyze":
        assert main(["--root", root, "analyze", "deleted", "--html", str(report)]) == 0
    else:
        assert main(["--root", root, "diff", "chmod", "deleted", "--html", str(report)]) == 0
    screenshot = tmp_path / f"{kind}.png"
    profile = tempfile.mkdtemp(dir=tmp_path)
    completed = subprocess.run(
        [
            required_tool("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={screenshot}",
            "--window-size=1200,900",
            report.as_uri(),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Uncaught" not in completed.stderr and "CONSOLE" not in completed.stderr
    width, height, colours = _png_pixels(screenshot)
    assert (width, height) == (1200, 900)
    assert len(colours) > 20  # not blank: text, cards and the chart
    assert bytes.fromhex("4e79a7") in colours  # the chart's first directory colour is on screen
    keep = os.environ.get("PYBUILD_KEEP_SCREENSHOTS")
    if keep:
        shutil.copy(screenshot, Path(keep) / screenshot.name)
