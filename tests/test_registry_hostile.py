"""The registry client against registries that try to take credentials elsewhere or to keep it waiting: scripted
servers on loopback addresses (hostile_servers.py), a second one standing for another host. No Docker needed."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hostile_servers import (
    LOOPBACK,
    OTHER_LOOPBACK,
    Exchange,
    Respond,
    ScriptedServer,
    endless,
    run_proxy,
    run_scripted,
)
from registry_fixtures import gzip_bytes, make_image, sha256, tar_bytes

from buildkit_py.cli.main import main
from buildkit_py.errors import RegistryError
from buildkit_py.image.manifest import DOCKER_MANIFEST
from buildkit_py.registry import RegistryClient, pull_image, push_image
from buildkit_py.registry.client import AuthenticationError
from buildkit_py.registry.credentials import Credentials
from buildkit_py.registry.deadline import MIN_RATE_ENV, TIMEOUT_ENV
from buildkit_py.registry.transport import bypasses_proxy
from buildkit_py.store import Store

ALICE = Credentials("alice", "wonderland")
ALICE_BASIC = "Basic " + base64.b64encode(b"alice:wonderland").decode()
TOKEN = "token-for-alice"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Credentials in a per-test DOCKER_CONFIG; no proxy, deadline or CA setting from the machine."""
    folder = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    for name in ("PYBUILD_CA_CERT", TIMEOUT_ENV, MIN_RATE_ENV):
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return folder


@dataclass
class Image:
    """A small image as a registry serves it: manifest bytes and blobs by digest."""

    manifest: bytes
    blobs: dict[str, bytes]
    config_digest: str
    layer_digest: str


def _image() -> Image:
    layer = tar_bytes({"etc/hostile": b"test\n"})
    blob = gzip_bytes(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [str(sha256(layer))]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": str(sha256(config)),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": str(sha256(blob)),
                    "size": len(blob)}],
    }  # fmt: skip
    blobs = {str(sha256(config)): config, str(sha256(blob)): blob}
    return Image(json.dumps(manifest).encode(), blobs, str(sha256(config)), str(sha256(blob)))


def _digest_in(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _credentialed(server: ScriptedServer) -> list[str]:
    """What of the server's requests carried an Authorization or a Cookie header."""
    return [f"{s.method} {s.path}" for s in server.seen if "authorization" in s.headers or "cookie" in s.headers]


# -- credentials stay with the registry ------------------------------------------------------------------------------


@dataclass
class UploadState:
    blobs: dict[str, bytes] = field(default_factory=dict)
    partial: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)


def _registry_uploading_elsewhere(state: UploadState, storage: list[str]) -> Respond:
    """A Basic-auth registry whose uploads go to `storage[0]` (another host), and which sets a cookie."""

    def respond(exchange: Exchange) -> None:
        cookie = {"Set-Cookie": "session=registry-secret; Path=/"}
        if exchange.headers.get("authorization") != ALICE_BASIC:
            exchange.reply(401, headers={"WWW-Authenticate": 'Basic realm="fake"', **cookie})
        elif exchange.path == "/v2/":
            exchange.reply(200, b"{}", cookie)
        elif exchange.method == "HEAD" and "/blobs/" in exchange.path:
            exchange.reply(200 if _digest_in(exchange.path) in state.blobs else 404)
        elif exchange.method == "POST" and exchange.path.endswith("/blobs/uploads/"):
            location = f"http://{storage[0]}/upload/{uuid.uuid4().hex}?_state=abc%3D%3D"
            exchange.reply(202, headers={"Location": location, **cookie})
        elif exchange.method == "PUT" and "/manifests/" in exchange.path:
            state.manifests[_digest_in(exchange.path)] = exchange.body
            exchange.reply(201, headers={"Docker-Content-Digest": str(sha256(exchange.body))})
        else:
            exchange.reply(404)

    return respond


def _storage(state: UploadState) -> Respond:
    """Where uploads land: PATCH appends (answering with a relative Location), PUT ?digest= completes."""

    def respond(exchange: Exchange) -> None:
        upload = exchange.path.removeprefix("/upload/")
        data = state.partial.pop(upload, b"") + exchange.body
        if exchange.method == "PATCH":
            state.partial[upload] = data
            exchange.reply(202, headers={"Location": f"/upload/{upload}", "Range": f"0-{len(data) - 1}"})
        elif exchange.method == "PUT" and exchange.query.get("digest") == str(sha256(data)):
            state.blobs[str(sha256(data))] = data
            exchange.reply(201, headers={"Docker-Content-Digest": str(sha256(data))})
        else:
            exchange.reply(400)

    return respond


@pytest.mark.parametrize("monolithic_limit", [1 << 30, 0], ids=["monolithic", "chunked"])
def test_an_upload_location_on_another_host_is_sent_no_credentials(tmp_path: Path, monolithic_limit: int) -> None:
    state = UploadState()
    storage_netloc: list[str] = []
    store = Store(tmp_path / "s")
    with (
        run_scripted(_storage(state), host=OTHER_LOOPBACK) as storage,
        run_scripted(_registry_uploading_elsewhere(state, storage_netloc)) as registry,
    ):
        storage_netloc.append(storage.netloc)
        name = f"{registry.netloc}/app:1"
        image_id = make_image(store, [tar_bytes({"etc/a": b"a" * 5000}), tar_bytes({"etc/b": b"b"})], tag=name)
        with RegistryClient(registry.netloc, credentials=ALICE) as client:
            result = push_image(store, name, client=client, monolithic_limit=monolithic_limit, chunk_size=1000)

    assert result.uploaded == 3  # two layers and the config, all sent to the storage host
    assert state.blobs[str(sha256(store.images.config_bytes(image_id)))] == store.images.config_bytes(image_id)
    assert json.loads(state.manifests["1"])["config"]["digest"] == str(sha256(store.images.config_bytes(image_id)))
    methods = {seen.method for seen in storage.seen}
    assert methods == ({"PATCH", "PUT"} if monolithic_limit == 0 else {"PUT"})
    assert _credentialed(storage) == []  # neither the password nor the registry's cookie went there
    assert all(seen.headers.get("authorization") == ALICE_BASIC for seen in registry.seen[1:])


def _token_registry(image: Image, realm: str, cdn: list[str]) -> Respond:
    """A Bearer registry (token service at `realm`) that redirects blob GETs to `cdn[0]`, another host."""

    def respond(exchange: Exchange) -> None:
        if exchange.headers.get("authorization") != f"Bearer {TOKEN}":
            challenge = f'Bearer realm="{realm}",service="fake"'
            exchange.reply(401, headers={"WWW-Authenticate": challenge, "Set-Cookie": "session=registry-secret"})
        elif exchange.path == "/v2/":
            exchange.reply(200, b"{}")
        elif exchange.path == "/v2/app/manifests/latest":
            exchange.reply(200, image.manifest, {"Content-Type": DOCKER_MANIFEST})
        elif "/blobs/" in exchange.path:
            exchange.reply(307, headers={"Location": f"http://{cdn[0]}/cdn/{_digest_in(exchange.path)}"})
        else:
            exchange.reply(404)

    return respond


def _token_service(exchange: Exchange) -> None:
    if exchange.headers.get("authorization") == ALICE_BASIC:
        exchange.reply(200, json.dumps({"token": TOKEN, "expires_in": 300}).encode())
    else:
        exchange.reply(401)


def _cdn(image: Image, realm: str | None) -> Respond:
    """Serves blobs, or (with `realm`) answers 401 with a Bearer challenge naming a token service of its own."""

    def respond(exchange: Exchange) -> None:
        if realm is not None:
            exchange.reply(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="cdn"'})
        else:
            exchange.reply(200, image.blobs[_digest_in(exchange.path)])

    return respond


@pytest.mark.parametrize("cdn_challenges", [False, True], ids=["cdn-serves", "cdn-challenges"])
def test_the_token_realm_gets_the_credentials_a_redirect_target_does_not(tmp_path: Path, cdn_challenges: bool) -> None:
    image = _image()
    cdn_netloc: list[str] = []
    store = Store(tmp_path / "s")
    with (
        run_scripted(_token_service, host=OTHER_LOOPBACK) as realm,
        run_scripted(_token_service) as cdn_realm,
        run_scripted(_cdn(image, cdn_realm.url("/token") if cdn_challenges else None), host=OTHER_LOOPBACK) as cdn,
        run_scripted(_token_registry(image, realm.url("/token"), cdn_netloc)) as registry,
    ):
        cdn_netloc.append(cdn.netloc)
        with RegistryClient(registry.netloc, credentials=ALICE) as client:
            if cdn_challenges:
                with pytest.raises(AuthenticationError, match=f"credentials for {registry.netloc} are not sent to"):
                    pull_image(store, f"{registry.netloc}/app", client=client)
            else:
                result = pull_image(store, f"{registry.netloc}/app", client=client)
                assert str(result.image_id) == image.config_digest

    assert realm.seen and all(seen.headers.get("authorization") == ALICE_BASIC for seen in realm.seen)
    assert cdn.seen and _credentialed(cdn) == []
    assert cdn_realm.seen == []  # the token service a redirect target names is never asked
    assert [seen.headers.get("authorization") for seen in registry.seen[1:]] == [f"Bearer {TOKEN}"] * (
        len(registry.seen) - 1
    )


# -- deadlines -------------------------------------------------------------------------------------------------------


def _dripping_registry(image: Image, where: str) -> Respond:
    """Serves `image`, except that one answer comes a byte at a time, for ever."""
    manifest_head = f"HTTP/1.1 200 OK\r\nContent-Type: {DOCKER_MANIFEST}\r\n".encode()

    def respond(exchange: Exchange) -> None:
        if exchange.path == "/v2/app/manifests/latest":
            if where == "manifest-headers":
                exchange.drip(endless(manifest_head, b"X-Drip: 1\r\n"))
            elif where == "manifest-body":
                exchange.drip(endless(b"", b" "), head=manifest_head + b"Content-Length: 1000000\r\n\r\n")
            else:
                exchange.reply(200, image.manifest, {"Content-Type": DOCKER_MANIFEST})
        elif "/blobs/" in exchange.path:
            blob = image.blobs[_digest_in(exchange.path)]
            if where == "layer-body" and _digest_in(exchange.path) == image.layer_digest:
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(blob)}\r\n\r\n".encode()
                exchange.drip(iter(blob), head=head, interval=0.2)
            else:
                exchange.reply(200, blob)
        else:
            exchange.reply(200, b"{}")

    return respond


@pytest.mark.parametrize("where", ["manifest-headers", "manifest-body", "layer-body"])
def test_a_registry_that_drips_its_answer_fails_at_the_deadline(tmp_path: Path, where: str) -> None:
    image = _image()
    with run_scripted(_dripping_registry(image, where)) as registry:
        layer_size = len(image.blobs[image.layer_digest])
        pull = subprocess.run(
            [sys.executable, "-m", "buildkit_py.cli.main", "--root", str(tmp_path / "root"), "pull",
             f"{registry.netloc}/app"],
            env={**os.environ, TIMEOUT_ENV: "2", MIN_RATE_ENV: str(layer_size)},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    if where == "layer-body":  # a blob of `size` bytes gets size / min_rate seconds more: here one
        expected = f"GET http://{registry.netloc}/v2/app/blobs/{image.layer_digest}: no complete answer within 3 s"
    else:
        expected = f"GET http://{registry.netloc}/v2/app/manifests/latest: no complete answer within 2 s"
    assert pull.returncode == 1, pull.stderr
    assert f"error: {expected}" in pull.stderr.splitlines()
    assert "Traceback" not in pull.stderr
    assert not Store(tmp_path / "root").images.summaries()


def test_a_registry_that_drains_an_upload_slowly_fails_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def respond(exchange: Exchange) -> None:
        if exchange.method == "HEAD":
            exchange.reply(404)
        elif exchange.method == "POST":
            exchange.reply(202, headers={"Location": "/upload/1"})
        elif exchange.method == "PUT" and exchange.path == "/upload/1":
            exchange.drain(piece=64 * 1024, interval=0.1)
            exchange.reply(400)
        else:
            exchange.reply(200, b"{}")

    store = Store(tmp_path / "s")
    layer = tar_bytes({"random": os.urandom(24 << 20)})  # more than the socket buffers hold: sending must wait
    with run_scripted(respond, read_bodies=False) as registry:
        make_image(store, [layer], tag=f"{registry.netloc}/app:1")
        monkeypatch.setenv(TIMEOUT_ENV, "2")
        monkeypatch.setenv(MIN_RATE_ENV, str(24 << 20))  # the blob gets one second more: 3 s in all
        with pytest.raises(
            RegistryError, match=rf"^PUT http://{registry.netloc}/upload/1\?digest=\S+: no complete answer within 3 s$"
        ):
            push_image(store, f"{registry.netloc}/app:1", compression="uncompressed")


def test_a_deadline_setting_that_is_not_a_number_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    assert main(["--root", str(tmp_path / "root"), "pull", f"{LOOPBACK}:9/app"]) == 1
    assert f"${TIMEOUT_ENV} must be a positive number of seconds, not 'soon'" in capsys.readouterr().err


# -- proxies ---------------------------------------------------------------------------------------------------------


def test_no_proxy_entries_match_as_curl_reads_them() -> None:
    assert bypasses_proxy("registry.example.com", 443, "example.com")
    assert bypasses_proxy("registry.example.com", 443, " .example.com ,other")
    assert bypasses_proxy("example.com", 443, ".example.com")
    assert not bypasses_proxy("badexample.com", 443, "example.com")
    assert bypasses_proxy("registry.example.com", 5000, "registry.example.com:5000")
    assert not bypasses_proxy("registry.example.com", 443, "registry.example.com:5000")
    assert bypasses_proxy("10.1.2.3", 443, "10.0.0.0/8") and not bypasses_proxy("11.1.2.3", 443, "10.0.0.0/8")
    assert bypasses_proxy("::1", 443, "[::1]") and bypasses_proxy("anything", 80, "a,*")
    assert not bypasses_proxy("registry.example.com", 443, "")


def test_loopback_registries_are_never_proxied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = _image()
    with run_proxy({}) as proxy, run_scripted(_dripping_registry(image, "none")) as registry:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        result = pull_image(Store(tmp_path / "s"), f"{registry.netloc}/app")
    assert str(result.image_id) == image.config_digest
    assert proxy.seen == []  # as Docker: a proxy's own loopback is not the registry's


# -- what loads httpx ------------------------------------------------------------------------------------------------


def test_only_the_commands_that_talk_to_registries_load_httpx(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nENV A=1\n")
    script = (
        "import sys\n"
        "from buildkit_py.cli.main import main\n"
        "status = main(sys.argv[1:])\n"
        "print(status, 'httpx' in sys.modules, 'buildkit_py.registry' in sys.modules)\n"
    )
    root = str(tmp_path / "root")
    loaded: dict[str, list[str]] = {}
    for command in (
        ["build", "-q", "-t", "noop", str(context)],
        ["build", "-q", str(context)],
        ["images"],
        ["pull", f"{LOOPBACK}:9/app"],
    ):
        run = subprocess.run(
            [sys.executable, "-c", script, "--root", root, *command], capture_output=True, text=True, check=False
        )
        loaded[command[0] + str(len(loaded))] = run.stdout.split()[-3:]
    assert loaded == {
        "build0": ["0", "False", "False"],
        "build1": ["0", "False", "False"],  # everything cached
        "images2": ["0", "False", "False"],
        "pull3": ["1", "True", "True"],
    }
    registry_imports = subprocess.run(
        [sys.executable, "-c", "import sys, buildkit_py.registry; print(sorted(m for m in sys.modules if 'frontend' in m))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert registry_imports.strip() == "[]"
