"""Pull and push against a real docker-registry (htpasswd auth over http; token auth over TLS with a test CA), with
skopeo on the other end, and against a scripted registry that lies. Every server binds 127.0.0.1 and is stopped by
its fixture."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import required_tool
from hostile_servers import run_proxy
from registry_fixtures import (
    ISSUER,
    LOOPBACK,
    SERVICE,
    Certificates,
    FakeRegistry,
    RegistryServer,
    TokenServer,
    busybox_layer,
    gzip_bytes,
    htpasswd_file,
    make_certificates,
    make_image,
    require_registry_tools,
    run_fake_registry,
    run_registry,
    run_token_server,
    sha256,
    store_is_clean,
    tar_bytes,
    write_oci_layout,
)

from buildkit_py.cli.main import main
from buildkit_py.errors import DigestMismatch, LayerError, RegistryError
from buildkit_py.image.manifest import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Descriptor, Index, Platform
from buildkit_py.image.stored import image_config
from buildkit_py.layer.snapshots import snapshot_path
from buildkit_py.registry import PullingImageResolver, RegistryClient, TransportOptions, pull_image, push_image
from buildkit_py.registry.auth import parse_challenges
from buildkit_py.registry.client import AuthenticationError
from buildkit_py.registry.credentials import Credentials, erase_credentials, load_credentials, save_credentials
from buildkit_py.registry.insecure import is_loopback, plain_http_allowed
from buildkit_py.store import Store

USERS = {"alice": "wonderland"}
ALICE = Credentials("alice", "wonderland")


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Credentials go to a per-test DOCKER_CONFIG, never to the real ~/.docker."""
    folder = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.delenv("PYBUILD_CA_CERT", raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return folder


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    require_registry_tools()
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    require_registry_tools()
    work = tmp_path_factory.mktemp("basic-registry")
    passwords = htpasswd_file(work / "htpasswd", USERS)
    with run_registry(work, {"htpasswd": {"realm": "basic-realm", "path": str(passwords)}}) as server:
        yield server


@pytest.fixture(scope="module")
def token_service(certificates: Certificates) -> Iterator[TokenServer]:
    with run_token_server(USERS, certificates) as service:
        yield service


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, certificates: Certificates, token_service: TokenServer
) -> Iterator[RegistryServer]:
    auth = {
        "token": {
            "realm": token_service.realm,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(certificates.token_cert),
        }
    }
    with run_registry(tmp_path_factory.mktemp("token-registry"), auth, tls=certificates) as server:
        yield server


def _store(tmp_path: Path, name: str) -> Store:
    return Store(tmp_path / name)


def _layer_files(store: Store, image_id: object) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for diff_id in image_config(store, image_id).diff_ids:  # type: ignore[arg-type]
        with store.layers.open(diff_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if member.isfile():
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    files[member.name] = extracted.read()
    return files


def _pybuild(root: Path, *args: str) -> int:
    return main(["--root", str(root), *args])


# -- no server -------------------------------------------------------------------------------------------------------


def test_plain_http_only_for_loopback_or_when_asked() -> None:
    for host in ("127.0.0.1:5000", "127.3.4.5", "localhost:5000", "[::1]:5000", "LOCALHOST"):
        assert is_loopback(host) and plain_http_allowed(host, insecure=False), host
    for host in ("registry.example.com", "10.0.0.1:5000", "docker.io", "localhost.example.com:5000"):
        assert not plain_http_allowed(host, insecure=False), host
        assert plain_http_allowed(host, insecure=True)
    client = RegistryClient("registry.example.com:5000", credentials=Credentials("u", "p"))
    assert client.base_url == "https://registry.example.com:5000"  # decided without any request
    with pytest.raises(RegistryError, match="plain http"):
        client.request("GET", "http://registry.example.com:5000/v2/", scope=None)


def test_challenges_are_parsed_with_quoted_commas() -> None:
    header = 'Bearer realm="https://auth.example/token",service="reg,istry",scope="repository:a/b:pull,push", Basic realm="x"'
    bearer, basic = parse_challenges(header)
    assert bearer.scheme == "bearer" and basic.scheme == "basic"
    assert dict(bearer.params) == {
        "realm": "https://auth.example/token",
        "service": "reg,istry",
        "scope": "repository:a/b:pull,push",
    }


def test_credentials_file_is_private_atomic_and_keeps_other_keys(docker_config: Path) -> None:
    docker_config.mkdir()
    path = docker_config / "config.json"
    path.write_text(json.dumps({"auths": {"https://other:5000/v1/": {"auth": "eDp5"}}, "psFormat": "table"}))
    save_credentials("127.0.0.1:5000", Credentials("bob", "pa:ss"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = json.loads(path.read_text())
    assert config["psFormat"] == "table"
    assert base64.b64decode(config["auths"]["127.0.0.1:5000"]["auth"]) == b"bob:pa:ss"
    assert load_credentials("127.0.0.1:5000") == Credentials("bob", "pa:ss")
    assert load_credentials("other:5000") == Credentials("x", "y")  # a URL-shaped key, as old Docker wrote them
    save_credentials("docker.io", Credentials("hub", "h"))
    assert "https://index.docker.io/v1/" in json.loads(path.read_text())["auths"]
    assert erase_credentials("127.0.0.1:5000") and not erase_credentials("127.0.0.1:5000")
    assert load_credentials("127.0.0.1:5000") is None
    assert [p.name for p in docker_config.iterdir()] == ["config.json"]  # no temp file left


# -- htpasswd registry -----------------------------------------------------------------------------------------------


def test_login_checks_the_password_then_push_and_pull_use_it(
    basic_registry: RegistryServer, tmp_path: Path, docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = basic_registry.host
    assert _pybuild(tmp_path / "a", "login", "-u", "alice", "-p", "wrong", host) == 1
    assert "refused" in capsys.readouterr().err
    assert not (docker_config / "config.json").exists()
    assert _pybuild(tmp_path / "a", "push", f"{host}/none:1") == 1  # no such image, and nothing sent

    store = _store(tmp_path, "a")
    name = f"{host}/cli/busybox:1"
    image_id = make_image(store, [busybox_layer(), tar_bytes({"etc/motd": b"hello\n"})], tag=name)
    assert _pybuild(tmp_path / "a", "push", name) == 1
    assert "pybuild login" in capsys.readouterr().err

    stdin = io.StringIO("wonderland\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", stdin)
        assert _pybuild(tmp_path / "a", "login", "-u", "alice", "--password-stdin", host) == 0
    assert _pybuild(tmp_path / "a", "push", name) == 0
    digest = capsys.readouterr().out.strip().splitlines()[-1]
    assert digest.startswith("sha256:")

    assert _pybuild(tmp_path / "b", "pull", "-q", name) == 0
    assert capsys.readouterr().out.strip() == str(image_id)
    pulled = _store(tmp_path, "b")
    assert pulled.resolve(name) == image_id
    assert _layer_files(pulled, image_id)["bin/busybox"] == Path("/bin/busybox").read_bytes()
    assert store_is_clean(pulled)

    # by digest, into a third store: no tag is made, the id is the same
    assert _pybuild(tmp_path / "c", "pull", "-q", f"{host}/cli/busybox@{digest}") == 0
    assert capsys.readouterr().out.strip() == str(image_id)

    assert _pybuild(tmp_path / "a", "logout", host) == 0
    assert load_credentials(host) is None
    assert _pybuild(tmp_path / "d", "pull", name) == 1


def test_second_push_sends_no_blob_bytes_and_other_repos_mount(basic_registry: RegistryServer, tmp_path: Path) -> None:
    store = _store(tmp_path, "s")
    name = f"{basic_registry.host}/again/busybox:1"
    make_image(store, [busybox_layer(), tar_bytes({"etc/again": b"1"})], tag=name)
    with RegistryClient(basic_registry.host, credentials=ALICE) as client:
        first = push_image(store, name, client=client)
    assert (first.uploaded, first.existing, first.mounted) == (3, 0, 0)
    uploads_before = basic_registry.blob_upload_requests()

    with RegistryClient(basic_registry.host, credentials=ALICE) as client:
        second = push_image(store, name, client=client)
        assert client.bytes_sent == second.manifest_size  # the manifest is all that went out
        assert not any(method in ("POST", "PATCH") for method, _, _ in client.requests)
    assert (second.uploaded, second.existing, second.blob_bytes_sent) == (0, 3, 0)
    assert second.manifest_digest == first.manifest_digest

    other = f"{basic_registry.host}/elsewhere/busybox:2"
    store.tags.set(other, store.resolve(name))
    with RegistryClient(basic_registry.host, credentials=ALICE) as client:
        mounted = push_image(store, other, client=client)
        assert not any(method == "PATCH" or "digest=" in path for method, path, _ in client.requests)
    assert (mounted.uploaded, mounted.mounted, mounted.blob_bytes_sent) == (0, 3, 0)
    assert basic_registry.blob_upload_requests() == uploads_before  # the registry saw no blob upload either

    with RegistryClient(basic_registry.host, credentials=ALICE) as client:
        again = pull_image(store, name, client=client)  # every layer is in the store already: only the config comes
    assert (again.layers_present, again.layers_downloaded) == (2, 0)
    assert again.bytes_downloaded == len(store.images.config_bytes(again.image_id))


def test_chunked_upload_and_oci_zstd_round_trip(basic_registry: RegistryServer, tmp_path: Path) -> None:
    store = _store(tmp_path, "s")
    name = f"{basic_registry.host}/chunked/busybox:zstd"
    image_id = make_image(store, [busybox_layer()], tag=name, cmd="chunked")
    with RegistryClient(basic_registry.host, credentials=ALICE) as client:
        result = push_image(store, name, client=client, compression="zstd", monolithic_limit=1024, chunk_size=200_000)
        patches = [path for method, path, _ in client.requests if method == "PATCH"]
    assert result.uploaded == 2 and len(patches) >= 3
    with RegistryClient(basic_registry.host, credentials=ALICE) as client:
        body, media_type, _ = _manifest(client, "chunked/busybox", "zstd")
    assert media_type == OCI_MANIFEST and "tar+zstd" in body
    pulled = _store(tmp_path, "p")
    with RegistryClient(basic_registry.host, credentials=ALICE) as client:
        assert pull_image(pulled, name, client=client).image_id == image_id
    assert _layer_files(pulled, image_id)["bin/busybox"] == Path("/bin/busybox").read_bytes()


def _manifest(client: RegistryClient, repository: str, ref: str) -> tuple[str, str | None, str]:
    from buildkit_py.registry.pull import fetch_manifest

    body, media_type, digest = fetch_manifest(client, repository, ref)
    return body.decode(), media_type, str(digest)


def test_index_picks_linux_amd64_or_the_asked_platform(basic_registry: RegistryServer, tmp_path: Path) -> None:
    store = _store(tmp_path, "s")
    host = basic_registry.host
    amd = make_image(store, [tar_bytes({"arch": b"amd64"})], tag=f"{host}/multi/app:amd64")
    arm = make_image(store, [tar_bytes({"arch": b"arm64"})], tag=f"{host}/multi/app:arm64", architecture="arm64")
    with RegistryClient(host, credentials=ALICE) as client:
        pushed = {
            tag: push_image(store, f"{host}/multi/app:{tag}", client=client, oci=True) for tag in ("arm64", "amd64")
        }
        index = Index(
            tuple(
                Descriptor(OCI_MANIFEST, result.manifest_digest, result.manifest_size, platform=Platform("linux", tag))
                for tag, result in pushed.items()
            )
        )
        client.request(
            "PUT", "/v2/multi/app/manifests/latest", scope="repository:multi/app:pull,push",
            headers={"Content-Type": OCI_INDEX}, body=index.to_bytes(), ok=(201,),
        ).close()  # fmt: skip
    with RegistryClient(host, credentials=ALICE) as client:
        assert pull_image(_store(tmp_path, "p1"), f"{host}/multi/app", client=client).image_id == amd
        arm_pull = pull_image(
            _store(tmp_path, "p2"), f"{host}/multi/app", client=client, platform=Platform.parse("linux/arm64")
        )
        assert arm_pull.image_id == arm
        with pytest.raises(RegistryError, match="no manifest for platform linux/s390x"):
            pull_image(
                _store(tmp_path, "p3"), f"{host}/multi/app", client=client, platform=Platform.parse("linux/s390x")
            )


def test_skopeo_reads_and_copies_what_pybuild_pushed(basic_registry: RegistryServer, tmp_path: Path) -> None:
    required_tool("skopeo")
    store = _store(tmp_path, "s")
    host = basic_registry.host
    for oci, tag in ((False, "docker"), (True, "oci")):
        name = f"{host}/toskopeo/busybox:{tag}"
        make_image(store, [busybox_layer(), tar_bytes({"etc/flavour": tag.encode()})], tag=name)
        with RegistryClient(host, credentials=ALICE) as client:
            result = push_image(store, name, client=client, oci=oci)
        creds = "alice:wonderland"
        inspect = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--creds", creds, f"docker://{name}"],
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert inspect.returncode == 0, inspect.stderr
        info = json.loads(inspect.stdout)
        assert info["Digest"] == str(result.manifest_digest) and len(info["Layers"]) == 2
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", creds, f"docker://{name}"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        assert json.loads(raw)["mediaType"] == (OCI_MANIFEST if oci else DOCKER_MANIFEST)
        copy = subprocess.run(
            ["skopeo", "copy", "--src-tls-verify=false", "--src-creds", creds, f"docker://{name}",
             f"oci:{tmp_path / ('copy-' + tag)}:x"],
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert copy.returncode == 0, copy.stderr


def test_pybuild_pulls_and_builds_on_what_skopeo_pushed(basic_registry: RegistryServer, tmp_path: Path) -> None:
    required_tool("skopeo")
    layers = [busybox_layer(), tar_bytes({"etc/from-skopeo": b"yes\n"})]
    config_digest = write_oci_layout(tmp_path / "layout", layers)
    name = f"{basic_registry.host}/fromskopeo/busybox:1"
    copy = subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland",
         f"oci:{tmp_path / 'layout'}:latest", f"docker://{name}"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert copy.returncode == 0, copy.stderr
    save_credentials(basic_registry.host, ALICE)

    # FROM of an image that is not in the store pulls it
    from buildkit_py.frontend.dockerfile2ops import dockerfile_to_plan
    from buildkit_py.frontend.parser import parse_dockerfile
    from buildkit_py.solver.ops import ContextSource

    store = _store(tmp_path, "s")
    resolver = PullingImageResolver(store)
    plan = dockerfile_to_plan(
        parse_dockerfile(f"FROM {name}\nENV X=1\nRUN /bin/busybox true\n"),
        context=ContextSource(name="context", path=str(tmp_path)),
        build_args={},
        target=None,
        resolve_image=resolver,
    )
    assert resolver.pulled == [name]
    assert plan.base.diff_ids == tuple(sha256(layer) for layer in layers)
    image_id = store.resolve(name)
    assert image_id == config_digest  # the config is kept byte for byte, so the id is the registry's config digest
    assert _layer_files(store, image_id)["etc/from-skopeo"] == b"yes\n"
    assert resolver(name).image_id == image_id and resolver.pulled == [name]  # found in the store the second time

    # and a real build on it, in a store that has never seen it: FROM pulls, RUN runs on the pulled layers
    if os.geteuid() == 0:
        from buildkit_py.builder import build

        context = tmp_path / "context"
        context.mkdir()
        (context / "Dockerfile").write_text(
            f'FROM {name}\nRUN ["/bin/busybox", "sh", "-c", "/bin/busybox cat /etc/from-skopeo > /copied"]\n'
        )
        built = build(context, tags=["built/on-skopeo"], root=tmp_path / "fresh")
        fresh = _store(tmp_path, "fresh")
        assert built.config.diff_ids[:2] == tuple(sha256(layer) for layer in layers)
        assert _layer_files(fresh, built.image_id)["copied"] == b"yes\n"


# -- token auth over TLS ---------------------------------------------------------------------------------------------


def test_token_auth_over_tls_with_a_test_ca(
    token_registry: RegistryServer, token_service: TokenServer, certificates: Certificates, tmp_path: Path
) -> None:
    host = f"localhost:{token_registry.port}"
    name = f"{host}/secure/busybox:1"
    store = _store(tmp_path, "s")
    image_id = make_image(store, [busybox_layer(), tar_bytes({"etc/tls": b"1"})], tag=name)

    with pytest.raises(RegistryError, match="certificate not trusted"), RegistryClient(host, credentials=ALICE) as c:
        push_image(store, name, client=c)
    trusted = TransportOptions(ca_cert=certificates.ca_cert)
    wrong = Credentials("alice", "nope")
    with pytest.raises(AuthenticationError, match="refused user 'alice'"), RegistryClient(host, trusted, wrong) as c:
        push_image(store, name, client=c)

    assert (
        _pybuild(
            tmp_path / "s", "login", "-u", "alice", "-p", "wonderland", "--ca-cert", str(certificates.ca_cert), host
        )
        == 0
    )
    token_service.requests.clear()
    with RegistryClient(host, trusted) as client:
        assert client.base_url.startswith("https://")
        result = push_image(store, name, client=client)
        assert client.auth.token_requests == 1  # one token for the push scope, cached for every request after
    assert result.uploaded == 3
    assert token_service.requests[0]["scope"] == ["repository:secure/busybox:pull,push"]

    store.tags.set(f"{host}/mounted/busybox:1", image_id)
    with RegistryClient(host, trusted) as client:  # the mount's token covers both repositories
        mounted = push_image(store, f"{host}/mounted/busybox:1", client=client)
    assert (mounted.mounted, mounted.uploaded, mounted.blob_bytes_sent) == (3, 0, 0)
    assert "repository:secure/busybox:pull" in token_service.requests[-1]["scope"]

    with RegistryClient(host, trusted) as client:
        pulled = pull_image(_store(tmp_path, "p"), name, client=client)
    assert pulled.image_id == image_id
    with RegistryClient(host, TransportOptions(insecure=True)) as client:  # --insecure: TLS without verification
        assert pull_image(_store(tmp_path, "q"), name, client=client).image_id == image_id
    with pytest.raises(AuthenticationError), RegistryClient(host, trusted) as client:
        client.auth.credentials = None  # anonymous: the token service refuses
        pull_image(_store(tmp_path, "r"), name, client=client)


# -- through a proxy ------------------------------------------------------------------------------------------------
# The registry is named registry.invalid, which no resolver knows: only the test proxy reaches it.


def test_http_proxy_carries_plain_http(
    basic_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = f"registry.invalid:{basic_registry.port}"
    name = f"{host}/proxied/busybox:1"
    store = _store(tmp_path, "s")
    image_id = make_image(store, [tar_bytes({"etc/proxied": b"http"})], tag=name)
    insecure = TransportOptions(insecure=True)  # plain http to a host that is not loopback
    with run_proxy({host: (LOOPBACK, basic_registry.port)}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with RegistryClient(host, insecure, ALICE) as client:
            pushed = push_image(store, name, client=client)
        with RegistryClient(host, insecure, ALICE) as client:
            pulled = pull_image(_store(tmp_path, "p"), name, client=client)
    assert pulled.image_id == image_id and pushed.uploaded == 2
    assert proxy.seen and all(seen.target.startswith(f"http://{host}/v2/") for seen in proxy.seen)
    assert {seen.method for seen in proxy.seen} >= {"GET", "HEAD", "POST", "PUT"}


def test_https_proxy_tunnels_tls_and_no_proxy_goes_direct(
    token_registry: RegistryServer,
    token_service: TokenServer,
    certificates: Certificates,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = f"registry.invalid:{token_registry.port}"
    name = f"{host}/tunnelled/busybox:1"
    store = _store(tmp_path, "s")
    image_id = make_image(store, [tar_bytes({"etc/proxied": b"https"})], tag=name)
    trusted = TransportOptions(ca_cert=certificates.ca_cert)
    with run_proxy({host: (LOOPBACK, token_registry.port)}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://proxy-user:proxy%20pass@"))
        monkeypatch.setenv("HTTP_PROXY", proxy.url)  # the token service is on loopback: reached directly all the same
        token_service.requests.clear()
        with RegistryClient(host, trusted, ALICE) as client:
            push_image(store, name, client=client)
        with RegistryClient(host, trusted, ALICE) as client:
            assert pull_image(_store(tmp_path, "p"), name, client=client).image_id == image_id
        assert token_service.requests  # directly: the proxy saw only the tunnels
        assert proxy.seen and {(seen.method, seen.target) for seen in proxy.seen} == {("CONNECT", host)}
        proxy_basic = "Basic " + base64.b64encode(b"proxy-user:proxy pass").decode()
        assert all(seen.headers.get("proxy-authorization") == proxy_basic for seen in proxy.seen)
        assert not any("authorization" in seen.headers for seen in proxy.seen)  # the registry's are inside TLS

        tunnels = len(proxy.seen)
        monkeypatch.setenv("NO_PROXY", "other.example, .invalid")
        with pytest.raises(RegistryError, match=f"https://{host}/v2/"), RegistryClient(host, trusted, ALICE) as client:
            pull_image(_store(tmp_path, "q"), name, client=client)  # directly: nothing resolves registry.invalid
        assert len(proxy.seen) == tunnels


# -- a registry that lies --------------------------------------------------------------------------------------------


def _serve_image(
    fake: FakeRegistry, repository: str, layer_blob: bytes, diff_id: object, served: bytes | None = None
) -> None:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]}}
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": str(sha256(config)),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": str(sha256(layer_blob)), "size": len(layer_blob)}],
    }  # fmt: skip
    fake.manifests[(repository, "latest")] = (DOCKER_MANIFEST, json.dumps(manifest).encode())
    fake.blobs[str(sha256(config))] = config
    fake.blobs[str(sha256(layer_blob))] = served if served is not None else layer_blob


def _hostile(name: str, kind: bytes, target: str = "", size: int = 0) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.size, member.mode = kind, target, size, 0o644
    return member


@pytest.mark.parametrize(
    "members",
    [
        pytest.param(lambda out: [_hostile(f"../../../../../..{out}/escaped", tarfile.REGTYPE, size=3)], id="dotdot"),
        pytest.param(
            lambda out: [_hostile("link", tarfile.SYMTYPE, out), _hostile("link/escaped", tarfile.REGTYPE, size=3)],
            id="symlink-parent",
        ),
        pytest.param(
            lambda out: [_hostile("hard", tarfile.LNKTYPE, f"../../../../..{out}/escaped")], id="hardlink-out"
        ),
    ],
)
def test_hostile_layers_are_refused_and_nothing_lands_outside(members: object, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "escaped").write_bytes(b"original")
    layer = tar_bytes({"ok": b"fine"}, extra=members(str(outside)))  # type: ignore[operator]
    store = _store(tmp_path, "s")
    with run_fake_registry() as fake:
        _serve_image(fake, "evil", gzip_bytes(layer), sha256(layer))
        with pytest.raises(LayerError):
            pull_image(store, f"{fake.host}/evil")
    assert [p.name for p in outside.iterdir()] == ["escaped"]
    assert (outside / "escaped").read_bytes() == b"original"
    assert not store.images.summaries() and not any(store.blobs.iter_digests()) and store_is_clean(store)
    assert not any(os.scandir(store.snapshots.snapshots_dir))


def test_absolute_names_land_inside_the_layer(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    layer = tar_bytes({"ok": b"fine"}, extra=[_hostile(f"{outside}/escaped", tarfile.REGTYPE, size=3)])
    store = _store(tmp_path, "s")
    with run_fake_registry() as fake:
        _serve_image(fake, "abs", gzip_bytes(layer), sha256(layer))
        image_id = pull_image(store, f"{fake.host}/abs").image_id
    assert not any(outside.iterdir())
    snapshot = snapshot_path(store, image_config(store, image_id).diff_ids[0])
    assert (snapshot / str(outside).lstrip("/") / "escaped").read_bytes() == b"xxx"


def test_blob_redirects_are_followed_without_the_registry_credentials(tmp_path: Path) -> None:
    layer = tar_bytes({"bin/sh": b"moved"})
    store = _store(tmp_path, "s")
    with run_fake_registry() as fake:
        fake.redirect_blobs = True
        _serve_image(fake, "moved", gzip_bytes(layer), sha256(layer))
        with RegistryClient(fake.host, credentials=ALICE) as client:
            client.auth.learn('Basic realm="fake"')  # so every registry request carries credentials
            image_id = pull_image(store, f"{fake.host}/moved", client=client).image_id
    assert image_config(store, image_id).diff_ids == (sha256(layer),)
    storage = [auth for _, path, auth in fake.seen if path.startswith("/storage/")]
    registry = [auth for _, path, auth in fake.seen if path.startswith("/v2/moved/")]
    assert len(storage) == 2 and storage == ["", ""]  # config and layer, fetched from the other host without auth
    assert registry and all(auth.startswith("Basic ") for auth in registry)


def test_blob_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    layer = tar_bytes({"bin/sh": b"real"})
    store = _store(tmp_path, "s")
    with run_fake_registry() as fake:
        _serve_image(fake, "liar", gzip_bytes(layer), sha256(layer), served=gzip_bytes(tar_bytes({"bin/sh": b"evil"})))
        with pytest.raises(DigestMismatch, match="does not match its digest"):
            pull_image(store, f"{fake.host}/liar")
        # a layer whose blob is honest but whose content is not the config's diff_id
        other = tar_bytes({"bin/sh": b"other"})
        _serve_image(fake, "swapped", gzip_bytes(other), sha256(layer))
        with pytest.raises(DigestMismatch, match="but the config says"):
            pull_image(store, f"{fake.host}/swapped")
        # a manifest asked for by digest must hash to it
        _, body = fake.manifests[("liar", "latest")]
        wrong = "sha256:" + "0" * 64
        fake.manifests[("liar", wrong)] = (DOCKER_MANIFEST, body)
        with pytest.raises(DigestMismatch):
            pull_image(store, f"{fake.host}/liar@{wrong}")
    assert not store.images.summaries() and not any(store.blobs.iter_digests()) and store_is_clean(store)
