"""The schema of meta.db, as numbered migrations. A store records its version in `PRAGMA user_version`.

To change the schema, append a Migration with the next number; never edit one that has shipped. Each runs once,
inside the write transaction that opens the store, and must work both on a store made by the release before it
and on a fresh one (where every earlier migration has just run).

    1  pybuild 0.1.0: layers, images, image_layers, tags, cache, cache_layers, stat_cache
    2  one database: the step log (which the solver's explainer kept in its own table), compressed forms of layers
       (recorded twice before, here and in registry/blobs.db), where blobs and manifests live in registries (from
       registry/blobs.db, which is then removed), damage found by `pybuild system check`; stat cache keys become
       the paths' bytes
    3  how long each step in the step log took (for `pybuild graph`'s critical path)
    4  a layer may be kept as its snapshot plus a recipe that rebuilds its tar, instead of the tar itself
    5  containers, named volumes, and which containers use which volumes
    6  what ADD downloaded from URLs: the content's blob, its name and the validators a rebuild revalidates it with
    7  each layer's content size (Docker's measure of an image: the bytes of its files and symlinks, not of its
       tar), NULL until measured
    8  cache mounts (`RUN --mount=type=cache`): one row per instance of an id, and its folder under cache-mounts/
    9  the fingerprint of each project's last build, so that a no-op rebuild needs no build machinery
    10 the host ports a running container's published ports were given (random ones are picked at each start)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration"]


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    apply: Callable[[sqlite3.Connection, Path], None]  # the open write transaction, and the store's root


def _execute_all(connection: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


_VERSION_1 = """
CREATE TABLE IF NOT EXISTS layers (
    diff_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    image_id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(image_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_by_diff_id ON image_layers(diff_id);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(image_id),
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cache_layers (
    key TEXT NOT NULL REFERENCES cache(key) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    PRIMARY KEY (key, position)
);
CREATE INDEX IF NOT EXISTS cache_layers_by_diff_id ON cache_layers(diff_id);
CREATE TABLE IF NOT EXISTS stat_cache (
    key TEXT PRIMARY KEY,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL
) WITHOUT ROWID
"""


def _version_1(connection: sqlite3.Connection, root: Path) -> None:
    del root
    _execute_all(connection, _VERSION_1)


_VERSION_2 = """
CREATE TABLE IF NOT EXISTS step_log (
    key TEXT PRIMARY KEY,
    input_keys TEXT NOT NULL,
    kind TEXT NOT NULL,
    instruction TEXT NOT NULL,
    stage TEXT NOT NULL,
    definition TEXT NOT NULL,
    files BLOB NOT NULL,
    created REAL NOT NULL,
    number INTEGER NOT NULL DEFAULT 0,
    project TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS step_log_inputs ON step_log(input_keys, kind);
CREATE INDEX IF NOT EXISTS step_log_instruction ON step_log(instruction, stage);
CREATE TABLE compressed_forms (
    diff_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    media_type TEXT NOT NULL,
    added REAL NOT NULL,
    PRIMARY KEY (diff_id, digest)
);
CREATE INDEX compressed_forms_by_algorithm ON compressed_forms(diff_id, algorithm);
CREATE TABLE blob_sources (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    PRIMARY KEY (digest, registry, repository)
);
CREATE TABLE pulled_manifests (
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY (registry, repository, digest)
);
CREATE TABLE damage (
    digest TEXT PRIMARY KEY,
    what TEXT NOT NULL,
    problem TEXT NOT NULL,
    found REAL NOT NULL
)
"""


def _columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def _version_2(connection: sqlite3.Connection, root: Path) -> None:
    existing = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "step_log" in existing:  # written by the explainer of 0.1.0, which added two columns as it went
        columns = _columns(connection, "step_log")
        for column, kind in (("number", "INTEGER NOT NULL DEFAULT 0"), ("project", "TEXT NOT NULL DEFAULT ''")):
            if column not in columns:
                connection.execute(f"ALTER TABLE step_log ADD COLUMN {column} {kind}")
    _execute_all(connection, _VERSION_2)
    connection.execute("UPDATE stat_cache SET key = CAST(key AS BLOB) WHERE typeof(key) = 'text'")
    if "compressed_blobs" in existing:
        connection.execute(
            "INSERT OR IGNORE INTO compressed_forms (diff_id, digest, size, algorithm, media_type, added) "
            "SELECT diff_id, digest, size, algorithm, '', added FROM compressed_blobs"
        )
        connection.execute("DROP TABLE compressed_blobs")
    _import_registry_records(connection, root / "registry" / "blobs.db")


def _import_registry_records(connection: sqlite3.Connection, path: Path) -> None:
    """0.1.0 kept what pull and push learnt about registries in a database of its own: move it in. It is a cache,
    so a damaged one is dropped rather than stopping the store from opening."""
    if not path.exists():
        return
    try:
        old = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "blob_sources" in tables:
                connection.executemany(
                    "INSERT OR IGNORE INTO blob_sources VALUES (?, ?, ?)",
                    old.execute("SELECT digest, registry, repository FROM blob_sources").fetchall(),
                )
            if "compressed_forms" in tables:
                connection.executemany(
                    "INSERT INTO compressed_forms (diff_id, digest, size, algorithm, media_type, added) "
                    "VALUES (?, ?, ?, '', ?, 0) ON CONFLICT(diff_id, digest) DO UPDATE SET media_type = excluded.media_type",
                    old.execute("SELECT diff_id, digest, size, media_type FROM compressed_forms").fetchall(),
                )
            if "manifests" in tables:
                connection.executemany(
                    "INSERT OR IGNORE INTO pulled_manifests VALUES (?, ?, ?, ?)",
                    old.execute("SELECT registry, repository, digest, image_id FROM manifests").fetchall(),
                )
        finally:
            old.close()
    except sqlite3.DatabaseError:
        pass
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def _version_3(connection: sqlite3.Connection, root: Path) -> None:
    del root
    connection.execute("ALTER TABLE step_log ADD COLUMN duration REAL NOT NULL DEFAULT 0")


def _version_4(connection: sqlite3.Connection, root: Path) -> None:
    del root
    connection.execute("ALTER TABLE layers ADD COLUMN recipe TEXT")


_VERSION_5 = """
CREATE TABLE IF NOT EXISTS containers (
    container_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    image_name TEXT NOT NULL,
    created REAL NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER NOT NULL DEFAULT 0,
    monitor_pid INTEGER NOT NULL DEFAULT 0,
    monitor_start INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL DEFAULT 0,
    finished_at REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    restart_count INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS containers_by_image ON containers(image_id);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS container_volumes (
    container_id TEXT NOT NULL REFERENCES containers(container_id) ON DELETE CASCADE,
    volume TEXT NOT NULL REFERENCES volumes(name),
    PRIMARY KEY (container_id, volume)
);
CREATE INDEX IF NOT EXISTS container_volumes_by_volume ON container_volumes(volume)
"""


def _version_5(connection: sqlite3.Connection, root: Path) -> None:
    del root
    _execute_all(connection, _VERSION_5)


_VERSION_6 = """
CREATE TABLE IF NOT EXISTS downloads (
    url TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    filename TEXT NOT NULL,
    etag TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    fetched REAL NOT NULL
)
"""


def _version_6(connection: sqlite3.Connection, root: Path) -> None:
    del root
    _execute_all(connection, _VERSION_6)


def _version_7(connection: sqlite3.Connection, root: Path) -> None:
    del root
    connection.execute("ALTER TABLE layers ADD COLUMN content_size INTEGER")


_VERSION_8 = """
CREATE TABLE cache_mounts (
    id TEXT NOT NULL,
    instance INTEGER NOT NULL,
    folder TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    PRIMARY KEY (id, instance)
)
"""


def _version_8(connection: sqlite3.Connection, root: Path) -> None:
    del root
    _execute_all(connection, _VERSION_8)


def _version_9(connection: sqlite3.Connection, root: Path) -> None:
    del root
    connection.execute(
        "CREATE TABLE build_fingerprints (project TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, record TEXT NOT NULL, "
        "updated REAL NOT NULL)"
    )


def _version_10(connection: sqlite3.Connection, root: Path) -> None:
    del root
    connection.execute("ALTER TABLE containers ADD COLUMN ports TEXT NOT NULL DEFAULT ''")


MIGRATIONS = (
    Migration(1, "images, tags, layers, build cache records, the context stat cache", _version_1),
    Migration(2, "one database: step log, compressed forms, registry records, damage", _version_2),
    Migration(3, "step durations", _version_3),
    Migration(4, "layers kept as snapshot and recipe", _version_4),
    Migration(5, "containers and volumes", _version_5),
    Migration(6, "ADD downloads", _version_6),
    Migration(7, "layer content sizes", _version_7),
    Migration(8, "cache mounts", _version_8),
    Migration(9, "build fingerprints", _version_9),
    Migration(10, "published ports of running containers", _version_10),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
