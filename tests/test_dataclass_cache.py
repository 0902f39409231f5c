"""buildkit_py/dataclass_cache.py: the methods @dataclass writes are compiled once, kept beside the module, used again
only for the same text, and never read from a root other than the one the process started with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# A child Python that imports buildkit_py (which installs the cache), then makes a module named like one of ours at
# PROBE (its __file__), defines the dataclass in SOURCE there, and reports what happened as JSON on stdout.
_CHILD = textwrap.dedent(
    """
    import builtins, json, os, sys, types
    import buildkit_py  # installs the cache
    from buildkit_py import dataclass_cache

    probe, source, new_root = sys.argv[1], sys.argv[2], sys.argv[3]
    compiled = []
    real_compile = builtins.compile

    def counting_compile(text, filename, *args, **kwargs):
        if filename == "<string>":
            compiled.append(text)
        return real_compile(text, filename, *args, **kwargs)

    builtins.compile = counting_compile
    if new_root:
        os.chroot(new_root)
        os.chdir("/")
    module = types.ModuleType("buildkit_py.cache_probe")
    module.__file__ = probe
    sys.modules[module.__name__] = module
    exec(source, module.__dict__)
    Point = module.Point
    point = Point(1, 2)
    try:
        point.x = 5
        frozen = False
    except Exception as error:
        frozen = type(error).__name__ == "FrozenInstanceError"
    dataclass_cache.save()
    print(json.dumps({
        "compiled": len(compiled),
        "repr": repr(point),
        "equal": point == Point(1, 2),
        "frozen": frozen,
    }))
    """
)

_POINT = "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass Point:\n    x: int\n    y: int\n"


def _run(probe: Path, source: str = _POINT, *, new_root: Path | None = None, flags: tuple[str, ...] = ()) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [sys.executable, *flags, "-c", _CHILD, str(probe), source, str(new_root or "")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _cache_files(folder: Path) -> list[Path]:
    return sorted((folder / "__pycache__").glob("probe.dataclasses.*"))


def test_the_second_process_compiles_nothing_and_gets_the_same_class(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    first = _run(probe)
    assert first["compiled"] > 0
    assert len(_cache_files(tmp_path)) == 1
    second = _run(probe)
    assert second["compiled"] == 0
    for report in (first, second):
        assert report["repr"] == "Point(x=1, y=2)" and report["equal"] and report["frozen"]


def test_changed_fields_are_compiled_anew_and_the_file_keeps_only_the_current_ones(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    _run(probe)
    (cache,) = _cache_files(tmp_path)
    before = cache.stat().st_size
    changed = _POINT.replace("    y: int\n", "    y: int\n    z: int = 0\n")
    report = _run(probe, changed)
    assert report["compiled"] > 0 and report["repr"] == "Point(x=1, y=2, z=0)"
    assert _run(probe, changed)["compiled"] == 0
    assert _run(probe)["compiled"] > 0  # the old class's code is no longer kept
    assert cache.stat().st_size == before


def test_a_damaged_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    _run(probe)
    (cache,) = _cache_files(tmp_path)
    for damage in (b"", b"not a cache", cache.read_bytes()[:40], cache.read_bytes()[:-7]):
        cache.write_bytes(damage)
        report = _run(probe)
        assert report["compiled"] > 0 and report["equal"] and report["frozen"]
    assert _run(probe)["compiled"] == 0


def test_nothing_is_written_when_bytecode_is_not(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    assert _run(probe, flags=("-B",))["compiled"] > 0
    assert _cache_files(tmp_path) == []


def test_after_a_change_of_root_no_file_is_read_or_written(tmp_path: Path) -> None:
    """A sandbox after pivot_root sees an image: a cache file at the module's path there is never read as code."""
    made = tmp_path / "made"
    _run(made / "probe.py")
    (kept,) = _cache_files(made)
    image = tmp_path / "image"
    (image / "probe" / "__pycache__").mkdir(parents=True)
    planted = image / "probe" / "__pycache__" / kept.name
    planted.write_bytes(kept.read_bytes())
    assert _run(image / "probe" / "probe.py")["compiled"] == 0  # from the process's own root, the file is used
    report = _run(Path("/probe/probe.py"), new_root=image)
    assert report["compiled"] > 0 and report["equal"] and report["frozen"]
    assert planted.read_bytes() == kept.read_bytes()
    assert sorted(path.name for path in planted.parent.iterdir()) == [kept.name]  # nothing written beside it
