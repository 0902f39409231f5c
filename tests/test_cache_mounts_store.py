"""The store's cache mount folders: made once, reused, shared as asked, counted, and pruned only when no step holds them."""

from __future__ import annotations

import threading
from pathlib import Path

from buildkit_py.store import Store
from buildkit_py.store.gc import cache_totals, prune_cache, system_df


def make(path: Path) -> None:
    path.mkdir()


def test_an_instance_is_made_once_and_kept(tmp_path: Path) -> None:
    made: list[Path] = []
    with Store(tmp_path / "root") as store:
        for _ in range(2):
            with store.cache_mounts.use("pip", "shared", lambda path: (made.append(path), path.mkdir())[1]) as data:
                (data / "wheel").write_bytes(b"x" * 1000)
        assert len(made) == 1
        [usage] = store.cache_mounts.usage()
        assert (usage.record.id, usage.record.instance, usage.size, usage.in_use) == ("pip", 0, 1000, False)
        assert cache_totals(store).private == 1000
        assert system_df(store).build_cache.size == 1000


def test_shared_and_locked_use_one_folder_private_takes_a_free_one(tmp_path: Path) -> None:
    with Store(tmp_path / "root") as store:
        mounts = store.cache_mounts
        with mounts.use("c", "shared", make) as first, mounts.use("c", "shared", make) as second:
            assert first == second
        with mounts.use("c", "private", make) as first, mounts.use("c", "private", make) as second:
            assert first != second  # the first is held: the second gets a copy of its own
            assert [usage.in_use for usage in mounts.usage()] == [True, True]
        with mounts.use("c", "private", make) as again:
            assert again in (first, second)  # free again: reused, no third one
        assert sorted(record.instance for record in mounts.records()) == [0, 1]


def test_locked_waits_for_the_holder(tmp_path: Path) -> None:
    order: list[str] = []
    with Store(tmp_path / "root") as store:
        entered = threading.Event()

        def second() -> None:
            entered.set()
            with store.cache_mounts.use("l", "locked", make):
                order.append("second")

        with store.cache_mounts.use("l", "locked", make):
            waiter = threading.Thread(target=second)
            waiter.start()
            entered.wait()
            order.append("first")
        waiter.join()
    assert order == ["first", "second"]


def test_prune_removes_idle_instances_only(tmp_path: Path) -> None:
    with Store(tmp_path / "root") as store:
        mounts = store.cache_mounts
        with mounts.use("idle", "shared", make) as data:
            (data / "f").write_bytes(b"y" * 10)
        with mounts.use("busy", "shared", make) as busy:
            (busy / "f").write_bytes(b"z" * 20)
            report = prune_cache(store)
            assert [record.id for record in report.cache_mounts_removed] == ["idle"]
            assert report.bytes_freed == 10
            assert busy.is_dir()
            assert not mounts.remove(mounts.records()[0])  # held: not removed
        assert prune_cache(store, until_seconds=3600).cache_mounts_removed == ()  # used just now
        assert [record.id for record in prune_cache(store, all=True).cache_mounts_removed] == ["busy"]
        assert mounts.records() == [] and list(mounts.folder.iterdir()) == []


def test_keep_storage_removes_the_least_recently_used_first(tmp_path: Path) -> None:
    with Store(tmp_path / "root") as store:
        for name in ("old", "new"):
            with store.cache_mounts.use(name, "shared", make) as data:
                (data / "f").write_bytes(b"x" * 100)
        report = prune_cache(store, keep_storage=150)
        assert [record.id for record in report.cache_mounts_removed] == ["old"]
        assert [record.id for record in store.cache_mounts.records()] == ["new"]
