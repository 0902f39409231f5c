"""ADD of http(s) URLs, from a file server on 127.0.0.1 that the tests start and stop: the download, its
revalidation (ETag, Last-Modified) on rebuilds, names, modes and times, --checksum, and failures that leave nothing
half-written. Cases from BuildKit's dockerfile_add_test.go (testDockerfileADDFromURL, testAddURLChmod,
testDockerfileAddArchive, testAddChecksum)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import BASE_IMAGE, pybuild_tree

from buildkit_py.builder import build
from buildkit_py.errors import InstructionError, StepError
from buildkit_py.image.stored import image_config


@dataclass
class Resource:
    content: bytes
    etag: str = ""
    last_modified: float | None = None  # Unix time
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


class FileServer:
    """Serves `resources` by path, answering conditional GETs with 304, and records every request."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                with outer._lock:
                    outer.requests.append(Request("GET", self.path, headers))
                    resource = outer.resources.get(self.path)
                if resource is None:
                    self._answer(404, b"not found", {})
                    return
                validators = dict(resource.headers)
                if resource.etag:
                    validators["ETag"] = resource.etag
                if resource.last_modified is not None:
                    validators["Last-Modified"] = formatdate(resource.last_modified, usegmt=True)
                if resource.etag and headers.get("if-none-match") == resource.etag:
                    self._answer(304, b"", validators)
                    return
                since = headers.get("if-modified-since")
                modified = resource.last_modified
                if (
                    not resource.etag
                    and since
                    and modified is not None
                    and parsedate_to_datetime(since).timestamp() >= int(modified)
                ):
                    self._answer(304, b"", validators)
                    return
                self._answer(200, resource.content, validators)

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def gets(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join()


def dockerfile(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Dockerfile").write_text(text)
    return folder


def test_download_then_revalidate_with_the_etag(base_store: object, files: FileServer, tmp_path: Path) -> None:
    files.resources["/foo"] = Resource(b"content1", etag='"v1"')
    context = dockerfile(tmp_path, f"FROM scratch\nADD {files.url('/foo')} /dest/\n")
    first = build(context, tags=["test/add-url"], store=base_store)  # type: ignore[arg-type]
    entry = pybuild_tree(base_store, "test/add-url")["/dest/foo"]
    assert entry.content == hashlib.sha256(b"content1").hexdigest()
    assert (stat.S_IMODE(entry.mode), entry.uid, entry.gid) == (0o600, 0, 0)
    assert len(first.stats.executed) == 1

    again = build(context, tags=["test/add-url"], store=base_store)  # type: ignore[arg-type]
    assert again.stats.executed == set() and again.image_id == first.image_id
    second = files.gets("/foo")[1]
    assert second.headers.get("if-none-match") == '"v1"'
    assert second.headers["user-agent"].startswith("pybuild/")

    files.resources["/foo"] = Resource(b"content2", etag='"v2"')
    changed = build(context, tags=["test/add-url"], store=base_store)  # type: ignore[arg-type]
    assert len(changed.stats.executed) == 1
    entry = pybuild_tree(base_store, "test/add-url")["/dest/foo"]
    assert entry.content == hashlib.sha256(b"content2").hexdigest()
    assert len(files.gets("/foo")) == 3


def _mtime(store: object, image: str, path: str) -> int:
    config = image_config(store, store.resolve(image))  # type: ignore[attr-defined]
    for diff_id in reversed(config.diff_ids):
        with store.layers.open(diff_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[attr-defined]
            for member in archive:
                if member.name == path:
                    return int(member.mtime)
    raise AssertionError(f"{path} is in no layer")


def test_last_modified_sets_the_time_and_revalidates(base_store: object, files: FileServer, tmp_path: Path) -> None:
    """testDockerfileADDFromURL's second case: the root path has no name (BuildKit's __unnamed__), Last-Modified
    gives the file's time."""
    modified = 1_700_000_000.0
    files.resources["/"] = Resource(b"content2", last_modified=modified)
    context = dockerfile(tmp_path, f"FROM scratch\nADD {files.url('/')} /dest/\n")
    build(context, tags=["test/add-unnamed"], store=base_store)  # type: ignore[arg-type]
    assert "/dest/__unnamed__" in pybuild_tree(base_store, "test/add-unnamed")
    assert _mtime(base_store, "test/add-unnamed", "dest/__unnamed__") == int(modified)
    rebuilt = build(context, store=base_store)  # type: ignore[arg-type]
    assert rebuilt.stats.executed == set()
    (_, second) = files.gets("/")
    assert parsedate_to_datetime(second.headers["if-modified-since"]).timestamp() == modified
    assert "if-none-match" not in second.headers


def test_names_come_from_the_url_then_content_disposition(
    base_store: object, files: FileServer, tmp_path: Path
) -> None:
    files.resources["/download/"] = Resource(
        b"report", headers={"Content-Disposition": 'attachment; filename="../r.txt"'}
    )
    files.resources["/a%20b.txt"] = Resource(b"spaced")
    files.resources["/named.txt"] = Resource(b"x", headers={"Content-Disposition": 'attachment; filename="other.txt"'})
    context = dockerfile(
        tmp_path,
        f"FROM scratch\nADD {files.url('/download/')} /d/\nADD {files.url('/a%20b.txt')} /d/\n"
        f"ADD {files.url('/named.txt')} /d/\nADD {files.url('/named.txt')} /renamed\n",
    )
    build(context, tags=["test/add-names"], store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/add-names")
    assert {"/d/r.txt", "/d/a b.txt", "/d/named.txt", "/renamed"} <= set(tree)
    assert "/d/other.txt" not in tree


def test_a_remote_archive_is_not_extracted(base_store: object, files: FileServer, tmp_path: Path) -> None:
    """testDockerfileAddArchive: ADD from a URL does not extract, to a directory or under a new name."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("foo")
        info.size = len(b"content0")
        archive.addfile(info, io.BytesIO(b"content0"))
    packed = gzip.compress(raw.getvalue())
    files.resources["/t.tar.gz"] = Resource(packed, etag='"t"')
    context = dockerfile(
        tmp_path, f"FROM scratch\nADD {files.url('/t.tar.gz')} /\nADD {files.url('/t.tar.gz')} /newname.tar.gz\n"
    )
    build(context, tags=["test/add-archive-url"], store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/add-archive-url")
    digest = hashlib.sha256(packed).hexdigest()
    assert tree["/t.tar.gz"].content == digest and tree["/newname.tar.gz"].content == digest
    assert "/foo" not in tree


def test_chown_and_chmod_apply_to_downloads(base_store: object, files: FileServer, tmp_path: Path) -> None:
    """testAddURLChmod, with --chown."""
    files.resources["/foo"] = Resource(b"content1", etag='"c"')
    url = files.url("/foo")
    context = dockerfile(
        tmp_path,
        f"FROM {BASE_IMAGE}\nADD --chmod=644 {url} /tmp/foo1\nADD --chmod=755 {url} /tmp/foo2\n"
        f"ADD --chmod=0413 {url} /tmp/foo3\nARG mode\nADD --chmod=${{mode}} {url} /tmp/foo4\n"
        f"ADD --chown=10:20 {url} /tmp/foo5\n",
    )
    build(context, tags=["test/add-url-chmod"], build_args={"mode": "400"}, store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/add-url-chmod")
    modes = [stat.S_IMODE(tree[f"/tmp/foo{n}"].mode) for n in range(1, 5)]
    assert modes == [0o644, 0o755, 0o413, 0o400]
    assert (tree["/tmp/foo5"].uid, tree["/tmp/foo5"].gid, stat.S_IMODE(tree["/tmp/foo5"].mode)) == (10, 20, 0o600)


def _store_state(store: object) -> tuple[set[str], int, list[str]]:
    root: Path = store.root  # type: ignore[attr-defined]
    blobs = {path.name for path in (root / "blobs" / "sha256").iterdir()}
    downloads = len(store.downloads.all())  # type: ignore[attr-defined]
    leftovers = [path.name for path in (root / "tmp").iterdir() if path.name.startswith(("download", "file-"))]
    return blobs, downloads, leftovers


def test_checksum_is_verified(base_store: object, files: FileServer, tmp_path: Path) -> None:
    """testAddChecksum: a right checksum (also from ENV), a wrong one (nothing half-written), bad formats."""
    content = b"content-for-checksum"
    files.resources["/sum"] = Resource(content, etag='"s"')
    url = files.url("/sum")
    good = f"sha256:{hashlib.sha256(content).hexdigest()}"
    context = dockerfile(
        tmp_path / "env",
        f"FROM scratch\nENV DIGEST={good}\nENV LINK={url}\nADD --checksum=${{DIGEST}} ${{LINK}} /tmp/foo\n",
    )
    build(context, tags=["test/add-checksum"], store=base_store)  # type: ignore[arg-type]
    assert pybuild_tree(base_store, "test/add-checksum")["/tmp/foo"].size == len(content)
    requests = len(files.gets("/sum"))
    build(context, store=base_store)  # type: ignore[arg-type]
    assert len(files.gets("/sum")) == requests  # pinned and already stored: no request at all

    files.resources["/other"] = Resource(b"other content", etag='"o"')
    before = _store_state(base_store)
    wrong = f"sha256:{hashlib.sha256(b'').hexdigest()}"
    context = dockerfile(tmp_path / "wrong", f"FROM scratch\n\nADD --checksum={wrong} {files.url('/other')} /tmp/foo\n")
    with pytest.raises(StepError, match="digest mismatch") as caught:
        build(context, store=base_store)  # type: ignore[arg-type]
    assert str(caught.value).startswith("Dockerfile:3: ADD --checksum=")
    assert _store_state(base_store) == before
    assert base_store.downloads.get(files.url("/other")) is None  # type: ignore[attr-defined]

    refused = {
        f"md5:{hashlib.md5(content).hexdigest()}": "unsupported digest algorithm",
        f"unknown:{hashlib.sha256(content).hexdigest()}": "unsupported digest algorithm",
        hashlib.sha256(content).hexdigest(): "invalid checksum digest format",
        "sha256:abc": "invalid checksum digest length",
    }
    for checksum, message in refused.items():
        context = dockerfile(tmp_path / "bad", f"FROM scratch\nADD --checksum={checksum} {url} /tmp/foo\n")
        with pytest.raises(InstructionError, match=message):
            build(context, store=base_store)  # type: ignore[arg-type]
    local = dockerfile(tmp_path / "local", f"FROM scratch\nADD --checksum={good} foo /tmp/foo\n")
    (local / "foo").write_bytes(content)
    with pytest.raises(InstructionError, match="checksum requires HTTP\\(S\\) or Git sources"):
        build(local, store=base_store)  # type: ignore[arg-type]
    several = dockerfile(tmp_path / "several", f"FROM scratch\nADD --checksum={good} {url} {url} /tmp/\n")
    with pytest.raises(InstructionError, match="checksum can't be specified for multiple sources"):
        build(several, store=base_store)  # type: ignore[arg-type]


def test_a_server_that_does_not_answer_fails_within_the_deadline(
    base_store: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does) and never answers
    try:
        port = silent.getsockname()[1]
        context = dockerfile(tmp_path, f"FROM scratch\nADD http://127.0.0.1:{port}/slow /x\n")
        before = _store_state(base_store)
        monkeypatch.setenv("PYBUILD_REGISTRY_TIMEOUT", "1")
        with pytest.raises(StepError, match="within the deadline") as caught:
            build(context, store=base_store)  # type: ignore[arg-type]
        assert str(caught.value).startswith(f"Dockerfile:2: ADD http://127.0.0.1:{port}/slow /x: failed to download")
        assert _store_state(base_store) == before
        result = subprocess.run(
            [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(base_store.root), "build", str(context)],  # type: ignore[attr-defined]
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYBUILD_REGISTRY_TIMEOUT": "1"},
        )
        assert result.returncode == 1
        assert "Dockerfile:2" in result.stderr and "failed to download" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        silent.close()


def test_unreachable_and_missing_urls_fail_clearly(base_store: object, files: FileServer, tmp_path: Path) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    context = dockerfile(tmp_path / "refused", f"FROM scratch\nADD http://127.0.0.1:{port}/x /x\n")
    with pytest.raises(StepError, match="failed to download"):
        build(context, store=base_store)  # type: ignore[arg-type]
    context = dockerfile(tmp_path / "missing", f"FROM scratch\nADD {files.url('/nope')} /x\n")
    with pytest.raises(StepError, match="the server answered 404"):
        build(context, store=base_store)  # type: ignore[arg-type]


def test_downloads_go_through_the_proxy_of_the_environment(
    base_store: object, files: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the registry client: HTTP_PROXY for a host that is not loopback (a name no resolver knows, so the file
    can only arrive through the proxy)."""
    from hostile_servers import run_proxy

    files.resources["/via-proxy.txt"] = Resource(b"proxied", etag='"p"')
    with run_proxy({"files.invalid:80": ("127.0.0.1", files.server.server_address[1])}) as proxy:
        for name in (
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        context = dockerfile(tmp_path, "FROM scratch\nADD http://files.invalid/via-proxy.txt /x\n")
        build(context, tags=["test/add-proxy"], store=base_store)  # type: ignore[arg-type]
    assert pybuild_tree(base_store, "test/add-proxy")["/x"].size == len(b"proxied")
    assert [seen.target for seen in proxy.seen] == ["http://files.invalid/via-proxy.txt"]


def test_cache_prune_all_forgets_downloads(files: FileServer, tmp_path: Path) -> None:
    from buildkit_py.store import Store
    from buildkit_py.store.gc import prune_cache

    files.resources["/pruned.txt"] = Resource(b"to be pruned", etag='"x"')
    with Store(tmp_path / "root") as store:
        context = dockerfile(tmp_path / "context", f"FROM scratch\nADD {files.url('/pruned.txt')} /p\n")
        build(context, store=store)
        (download,) = store.downloads.all()
        assert store.blobs.has(download.digest)
        report = prune_cache(store, all=True)
        assert store.downloads.all() == [] and not store.blobs.has(download.digest)
        assert report.bytes_freed >= len(b"to be pruned")
        build(context, store=store)  # downloaded again, not revalidated: nothing is left to revalidate
        assert "if-none-match" not in files.gets("/pruned.txt")[-1].headers


def test_add_link_of_a_url(base_store: object, files: FileServer, tmp_path: Path) -> None:
    files.resources["/linked.txt"] = Resource(b"linked", etag='"l"')
    context = dockerfile(tmp_path, f"FROM {BASE_IMAGE}\nADD --link {files.url('/linked.txt')} /srv/\n")
    result = build(context, tags=["test/add-link-url"], store=base_store)  # type: ignore[arg-type]
    tree = pybuild_tree(base_store, "test/add-link-url")
    assert tree["/srv/linked.txt"].size == len(b"linked") and "/bin/busybox" in tree
    assert len(result.config.diff_ids) == len(image_config(base_store, base_store.resolve(BASE_IMAGE)).diff_ids) + 1  # type: ignore[attr-defined]
