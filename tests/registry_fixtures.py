"""Servers for the registry tests, each bound to 127.0.0.1 on a free port and stopped by its fixture:

- `RegistryServer`: Debian's docker-registry (distribution 2.8) with a temp storage folder and htpasswd or token
  auth, over http or TLS;
- `TokenServer`: a token service issuing RS256 JWTs (signed with `openssl dgst`, certificate in the `x5c` header,
  trusted by the registry through its rootcertbundle) to users with the right Basic credentials;
- `FakeRegistry`: a scripted registry serving whatever manifests and blobs a test gives it, true or not;
and helpers: certificates made with openssl, images made directly in a Store from tar layers.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from helpers import required_tool

from buildkit_py.digest import Digest
from buildkit_py.image.config import ContainerConfig, HistoryEntry, ImageConfig
from buildkit_py.image.stored import put_image
from buildkit_py.store import Store

LOOPBACK = "127.0.0.1"
SERVICE = "pybuild-test-registry"
ISSUER = "pybuild-test-issuer"


def require_registry_tools() -> None:
    """The registry tests' servers and certificates come from docker-registry, openssl and htpasswd."""
    for tool in ("docker-registry", "openssl", "htpasswd"):
        required_tool(tool)


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


# -- certificates --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    token_cert: Path
    token_key: Path


def make_certificates(folder: Path) -> Certificates:
    """A test CA, a server certificate signed by it for 127.0.0.1, localhost and registry.invalid (a name only a
    test proxy resolves), and a self-signed token signing pair."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = folder / "ca.key", folder / "ca.crt"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_cert,
         "-days", "2", "-subj", "/CN=pybuild test CA")  # fmt: skip
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    extensions = folder / "san.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:registry.invalid\nextendedKeyUsage=serverAuth\n"
    )
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "2", "-extfile", extensions)  # fmt: skip
    token_key, token_cert = folder / "token.key", folder / "token.crt"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", token_key, "-out", token_cert,
         "-days", "2", "-subj", "/CN=pybuild token signer")  # fmt: skip
    return Certificates(ca_cert, cert, key, token_cert, token_key)


# -- docker-registry -----------------------------------------------------------------------------------------------


@dataclass
class RegistryServer:
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    scheme: str

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def blob_upload_requests(self) -> int:
        """Upload requests that carry blob bytes (PATCH, or PUT of an upload) seen in the access log."""
        return sum(
            1
            for line in self.log().splitlines()
            if ('"PATCH /v2/' in line or '"PUT /v2/' in line) and "/blobs/uploads/" in line
        )


_LISTENING = re.compile(rf'msg="listening on {re.escape(LOOPBACK)}:(\d+)[,"]')


def _wait_for_listening(process: subprocess.Popen[bytes], log_path: Path) -> int:
    """The port the registry bound (it was given port 0, so no other process can hold it), read from its log."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = _LISTENING.search(log_path.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not start listening: {log_path.read_text(errors='replace')[-2000:]}")


@contextmanager
def run_registry(
    work: Path, auth: Mapping[str, Any] | None, tls: Certificates | None = None
) -> Iterator[RegistryServer]:
    work.mkdir(parents=True, exist_ok=True)
    http: dict[str, Any] = {"addr": f"{LOOPBACK}:0", "secret": uuid.uuid4().hex}
    if tls is not None:
        http["tls"] = {"certificate": str(tls.server_cert), "key": str(tls.server_key)}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(work / "data")}, "delete": {"enabled": True}},
        "http": http,
    }
    if auth is not None:
        config["auth"] = dict(auth)
    config_path = work / "config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    log_path = work / "registry.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=work
        )
    try:
        port = _wait_for_listening(process, log_path)
        yield RegistryServer(port, log_path, process, "https" if tls else "http")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def htpasswd_file(path: Path, users: Mapping[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    for number, (user, password) in enumerate(users.items()):
        flags = "-Bbc" if number == 0 else "-Bb"
        _run("htpasswd", flags, path, user, password)
    return path


# -- token service -------------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    users: Mapping[str, str]
    certificates: Certificates
    port: int = 0
    requests: list[dict[str, list[str]]] = field(default_factory=list)

    @property
    def realm(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/token"

    def sign(self, scopes: list[str], subject: str) -> str:
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.certificates.token_cert), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.certificates.token_key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"


@contextmanager
def run_token_server(users: Mapping[str, str], certificates: Certificates) -> Iterator[TokenServer]:
    service = TokenServer(users, certificates)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            service.requests.append(query)
            header = self.headers.get("Authorization", "")
            user = None
            if header.startswith("Basic "):
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                if service.users.get(name) == password:
                    user = name
            if user is None or query.get("service") != [SERVICE]:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            token = service.sign(query.get("scope", []), user)
            body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with _serve(Handler) as port:
        service.port = port
        yield service


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# -- a proxy that holds some blob downloads ------------------------------------------------------------------------


@dataclass
class HoldingProxy:
    """Forwards every request to a registry, except that the answer to a GET of a blob in `hold` stops half-way
    through its body until `release` is set; `held` is set once the first half is sent. A test uses it to stop a
    client at a known point: in the middle of a download."""

    upstream: str
    hold: frozenset[str]
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@contextmanager
def run_holding_proxy(upstream: str, hold: frozenset[str]) -> Iterator[HoldingProxy]:
    proxy = HoldingProxy(upstream, hold)

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            path = urlsplit(self.path).path
            holding = self.command == "GET" and "/blobs/" in path and path.rsplit("/", 1)[-1] in proxy.hold
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
            headers["Host"] = proxy.upstream
            connection = http.client.HTTPConnection(proxy.upstream, timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value.replace(proxy.upstream, proxy.host))
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command == "HEAD":
                    return
                if holding and response.status == 200:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    proxy.held.set()
                    proxy.release.wait(timeout=300)
                    data = data[len(data) // 2 :]
                self.wfile.write(data)
            finally:
                connection.close()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with _serve(Handler) as port:
        proxy.port = port
        try:
            yield proxy
        finally:
            proxy.release.set()  # before the server stops: no handler is left waiting


# -- a registry that serves what it is told ------------------------------------------------------------------------


@dataclass
class FakeRegistry:
    """Serves `manifests[(repo, ref)] = (media type, bytes)` and `blobs[digest] = bytes`, whatever they hold."""

    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    port: int = 0
    redirect_blobs: bool = False  # answer blob GETs with a 307 to /storage/ on `localhost` (another host name)
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Authorization header)

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"


@contextmanager
def run_fake_registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: bytes = b"", content_type: str = "application/octet-stream") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            fake.seen.append((self.command, path, self.headers.get("Authorization", "")))
            if path.startswith("/storage/") and path[len("/storage/") :] in fake.blobs:
                self._send(200, fake.blobs[path[len("/storage/") :]])
                return
            if path == "/v2/":
                self._send(200, b"{}", "application/json")
                return
            rest = path[len("/v2/") :]
            kind, repo, ref = "", "", ""
            for candidate in ("manifests", "blobs"):
                if f"/{candidate}/" in rest:
                    kind = candidate
                    repo, ref = rest.rsplit(f"/{candidate}/", 1)
            if kind == "manifests" and (repo, ref) in fake.manifests:
                media_type, body = fake.manifests[(repo, ref)]
                self._send(200, body, media_type)
            elif kind == "blobs" and ref in fake.blobs and fake.redirect_blobs:
                self.send_response(307)
                self.send_header("Location", f"http://localhost:{fake.port}/storage/{ref}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif kind == "blobs" and ref in fake.blobs:
                self._send(200, fake.blobs[ref])
            else:
                self._send(404, b'{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}', "application/json")

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with _serve(Handler) as port:
        fake.port = port
        yield fake


# -- images --------------------------------------------------------------------------------------------------------


def tar_bytes(files: Mapping[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A layer tar with parent dirs, files (mode 0755) and any extra raw members (for hostile layers)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        dirs = sorted({str(Path(name).parent) for name in files} - {"."})
        for folder in dirs:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1
            archive.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 1
            archive.addfile(info, io.BytesIO(data))
        for member in extra or []:
            archive.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return buffer.getvalue()


def sha256(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def make_image(
    store: Store, layers: list[bytes], tag: str | None = None, architecture: str = "amd64", cmd: str = "sh"
) -> Digest:
    """An image in the store from uncompressed layer tars, tagged `tag`."""
    for data in layers:
        diff_id = sha256(data)
        with store.temp_path("layer") as path:
            path.write_bytes(data)
            store.layers.commit(path, diff_id, len(data))
    config = ImageConfig(
        config=ContainerConfig(env=("PATH=/bin",), cmd=(cmd,)),
        diff_ids=tuple(sha256(data) for data in layers),
        history=tuple(
            HistoryEntry(created="2024-01-01T00:00:00Z", created_by=f"layer {n}") for n in range(len(layers))
        ),
        architecture=architecture,
        created="2024-01-01T00:00:00Z",
    )
    image_id = put_image(store, config)
    if tag is not None:
        store.tags.set(tag, image_id)
    return image_id


def busybox_layer() -> bytes:
    return tar_bytes({"bin/busybox": Path("/bin/busybox").read_bytes()})


def write_oci_layout(folder: Path, layers: list[bytes], tag: str = "latest") -> Digest:
    """An OCI image layout with gzip layers, as `skopeo copy oci:DIR:TAG ...` reads it; returns the config digest."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> Digest:
        digest = sha256(data)
        (blobs / digest.hex).write_bytes(data)
        return digest

    compressed = [gzip_bytes(layer) for layer in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [str(sha256(layer)) for layer in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "skopeo test layer"} for _ in layers],
    }
    config_bytes = json.dumps(config).encode()
    config_digest = put(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(config_digest),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": str(put(blob)),
                    "size": len(blob)} for blob in compressed],
    }  # fmt: skip
    manifest_bytes = json.dumps(manifest).encode()
    manifest_digest = put(manifest_bytes)
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": str(manifest_digest),
                       "size": len(manifest_bytes), "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }  # fmt: skip
    (folder / "index.json").write_text(json.dumps(index))
    (folder / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return config_digest


def store_is_clean(store: Store) -> bool:
    """No temp files or folders left behind in the store's tmp."""
    return not any(os.scandir(store.tmp_dir))


def push_test_base(registry: RegistryServer, store: Any) -> str:
    """The busybox base of the tests, pushed to `registry`: each runner pulls it when it resolves FROM, as a CI
    runner pulls its base. Returns its reference there."""
    from buildkit_py.registry.push import push_image

    ref = f"{registry.host}/base/busybox:1"
    store.tags.set(ref, store.resolve("pybuild-test/busybox:latest"))
    push_image(store, ref)
    return ref


def isolate_registry_env(monkeypatch: Any, tmp_path: Path) -> None:
    """A Docker config of the test's own, no proxies and no SOURCE_DATE_EPOCH from the caller's environment."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
