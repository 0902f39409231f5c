"""Images that are the same bit for bit: with SOURCE_DATE_EPOCH, the same Dockerfile and context built on two fresh
stores, at different times, give the same image id and the same manifest digest; without it, `build --verify` names
what differs. And cache keys that hold nothing of the machine: the same build in two folders on two stores has the
same keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from helpers import BUSYBOX

from buildkit_py.builder import build
from buildkit_py.image.build_metadata import build_metadata
from buildkit_py.store import Store

REPO = Path(__file__).resolve().parents[1]
EPOCH = 1_700_000_000

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY app/ /app/
RUN echo built > /app/built-at && mkdir -p /var/lib/thing && echo made > /var/lib/thing/state
RUN rm /app/remove-me
CMD ["cat", "/app/hello.txt"]
"""


def make_context(folder: Path) -> Path:
    (folder / "app").mkdir(parents=True)
    shutil.copy2(BUSYBOX, folder / "busybox")
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / "app" / "hello.txt").write_text("hello\n")
    (folder / "app" / "remove-me").write_text("gone\n")
    return folder


def pybuild(root: Path, *args: str, epoch: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "SOURCE_DATE_EPOCH"}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    return subprocess.run(
        [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(root), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
    )


def test_two_fresh_stores_a_few_seconds_apart_give_the_same_image(tmp_path: Path) -> None:
    context = make_context(tmp_path / "context")
    first = pybuild(tmp_path / "a", "build", "--metadata-file", str(tmp_path / "a.json"), str(context), epoch=EPOCH)
    assert first.returncode == 0, first.stderr
    time.sleep(2)  # another second on the clock, and fresh times on the context's files (another checkout)
    for path in context.rglob("*"):
        os.utime(path)
    second = pybuild(tmp_path / "b", "build", "--metadata-file", str(tmp_path / "b.json"), str(context), epoch=EPOCH)
    assert second.returncode == 0, second.stderr
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a["containerimage.config.digest"] == b["containerimage.config.digest"]
    assert a["containerimage.digest"] == b["containerimage.digest"]
    assert a["pybuild.layers"] == b["pybuild.layers"]
    assert a["containerimage.descriptor"]["digest"] == a["containerimage.digest"]
    assert {"mediaType", "digest", "size", "diffID"} <= set(a["pybuild.layers"][0])

    store = Store(tmp_path / "a")
    config = json.loads(store.images.config_bytes(store.resolve(a["containerimage.config.digest"])))
    assert config["created"].startswith("2023-11-14T22:13:20")
    assert {entry["created"] for entry in config["history"]} == {config["created"]}
    for diff_id in config["rootfs"]["diff_ids"]:
        with store.layers.open(diff_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            assert all(member.mtime <= EPOCH for member in archive)


def test_the_epoch_is_a_build_arg_too_and_the_same_metadata_comes_from_the_library(tmp_path: Path) -> None:
    context = make_context(tmp_path / "context")
    store = Store(tmp_path / "root")
    result = build(context, store=store, build_args={"SOURCE_DATE_EPOCH": str(EPOCH)})
    again = pybuild(tmp_path / "other", "build", "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}", "-q", str(context))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(result.image_id)
    assert "were not consumed" not in again.stderr
    metadata = build_metadata(store, result.image_id, ())
    assert metadata["containerimage.config.digest"] == str(result.image_id)


def test_verify_names_the_field_and_the_file_that_differ_without_an_epoch(tmp_path: Path) -> None:
    context = make_context(tmp_path / "context")
    root = tmp_path / "root"
    first = pybuild(root, "build", "-q", str(context))
    assert first.returncode == 0, first.stderr
    time.sleep(1.1)  # the rebuild's dates and RUN's file times are a second later at least
    verified = pybuild(root, "build", "--verify", "-q", str(context))
    assert verified.returncode == 1, verified.stderr
    assert "not reproducible" in verified.stderr
    assert "first differing config field: created:" in verified.stderr
    # The COPY made /bin a second later: its directory's time is the first difference, in the first layer.
    assert "first differing file: layer 1 (COPY busybox /bin/busybox" in verified.stderr
    assert "/bin: mtime " in verified.stderr
    reproducible = pybuild(root, "build", "--verify", "-q", str(context), epoch=EPOCH)
    assert reproducible.returncode == 0, reproducible.stderr
    assert "reproducible: a rebuild without the cache gave the same image" in reproducible.stderr


def test_cache_keys_hold_no_path_no_store_and_no_time(tmp_path: Path) -> None:
    one = make_context(tmp_path / "checkout-one" / "x")
    other = tmp_path / "elsewhere" / "deeper" / "y"
    shutil.copytree(one, other)
    for path in other.rglob("*"):
        os.utime(path, (1, 1))
    first = build(one, store=Store(tmp_path / "store-one"))
    time.sleep(1.1)
    second = build(other, store=Store(tmp_path / "store-two"))
    assert sorted(map(str, first.keys.values())) == sorted(map(str, second.keys.values()))


def test_a_miss_that_only_the_epoch_caused_says_so(tmp_path: Path) -> None:
    context = make_context(tmp_path / "context")
    store = Store(tmp_path / "root")

    def reason_of_first_copy(epoch: int | None) -> str:
        build_args = {} if epoch is None else {"SOURCE_DATE_EPOCH": str(epoch)}
        result = build(context, store=store, build_args=build_args)
        reasons = {result.plan.graph.meta(op).name: reason for op, reason in result.stats.reasons.items()}
        return next(reason for name, reason in reasons.items() if "COPY busybox" in name)

    reason_of_first_copy(EPOCH)
    assert reason_of_first_copy(EPOCH + 100) == (
        f"SOURCE_DATE_EPOCH changed: {EPOCH} -> {EPOCH + 100} (part of the key of every step that makes a layer)"
    )
    assert reason_of_first_copy(None).startswith("SOURCE_DATE_EPOCH unset (it was ")
