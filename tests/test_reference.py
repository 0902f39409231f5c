"""Image references, with the examples of Docker's distribution/reference (normalize_test.go, reference_test.go)."""

from __future__ import annotations

import pytest

from buildkit_py.digest import Digest
from buildkit_py.errors import StoreError
from buildkit_py.reference import InvalidReference, Reference, parse_reference

SHA = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "canonical", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker/docker", "docker.io/docker/docker:latest", "docker/docker:latest"),
        ("library/debian", "docker.io/library/debian:latest", "debian:latest"),
        ("debian", "docker.io/library/debian:latest", "debian:latest"),
        ("docker.io/docker/docker", "docker.io/docker/docker:latest", "docker/docker:latest"),
        ("docker.io/library/debian", "docker.io/library/debian:latest", "debian:latest"),
        ("docker.io/debian", "docker.io/library/debian:latest", "debian:latest"),
        ("index.docker.io/docker/docker", "docker.io/docker/docker:latest", "docker/docker:latest"),
        ("index.docker.io/library/debian", "docker.io/library/debian:latest", "debian:latest"),
        ("index.docker.io/debian", "docker.io/library/debian:latest", "debian:latest"),
        ("localhost/library/debian", "localhost/library/debian:latest", "localhost/library/debian:latest"),
        ("localhost/debian", "localhost/debian:latest", "localhost/debian:latest"),
        (
            "localhost:5000/library/debian",
            "localhost:5000/library/debian:latest",
            "localhost:5000/library/debian:latest",
        ),
        ("registry.com/docker/docker", "registry.com/docker/docker:latest", "registry.com/docker/docker:latest"),
        ("127.0.0.1:5000/foo/bar:1.0", "127.0.0.1:5000/foo/bar:1.0", "127.0.0.1:5000/foo/bar:1.0"),
        ("[::1]:5000/foo:tag", "[::1]:5000/foo:tag", "[::1]:5000/foo:tag"),
        ("host:5000/a/b:tag", "host:5000/a/b:tag", "host:5000/a/b:tag"),
        ("foo-bar.com:8080/baz", "foo-bar.com:8080/baz:latest", "foo-bar.com:8080/baz:latest"),
        ("a_b", "docker.io/library/a_b:latest", "a_b:latest"),
        ("a/b.c/d__e/f-g--h", "docker.io/a/b.c/d__e/f-g--h:latest", "a/b.c/d__e/f-g--h:latest"),
        ("busybox:1.36.1-musl", "docker.io/library/busybox:1.36.1-musl", "busybox:1.36.1-musl"),
        ("busybox:_Tag.x", "docker.io/library/busybox:_Tag.x", "busybox:_Tag.x"),
        (f"busybox@{SHA}", f"docker.io/library/busybox@{SHA}", f"busybox@{SHA}"),
        (f"busybox:1@{SHA}", f"docker.io/library/busybox:1@{SHA}", f"busybox:1@{SHA}"),
        ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
    ],
)
def test_normalisation(text: str, canonical: str, familiar: str) -> None:
    reference = parse_reference(text)
    assert reference.canonical == canonical
    assert reference.familiar == familiar
    assert str(reference) == familiar


def test_fields() -> None:
    assert parse_reference("busybox") == Reference("docker.io", "library/busybox", "latest", None)
    assert parse_reference("localhost:5000/x:1") == Reference("localhost:5000", "x", "1", None)
    with_digest = parse_reference(f"a/b@{SHA}")
    assert with_digest.tag is None and with_digest.digest == Digest.parse(SHA)
    assert parse_reference("busybox").name == "busybox"
    assert parse_reference("localhost:5000/x:1").name == "localhost:5000/x"
    assert parse_reference("docker.io/user/app").name == "user/app"
    assert parse_reference("library/a/b").name == "library/a/b"
    assert parse_reference("busybox").full_name == "docker.io/library/busybox"


def test_no_default_tag() -> None:
    assert parse_reference("busybox", default_tag=None).tag is None
    assert parse_reference("busybox", default_tag=None).familiar == "busybox"


def test_with_tag() -> None:
    assert parse_reference(f"busybox@{SHA}").with_tag("2").familiar == "busybox:2"
    with pytest.raises(InvalidReference):
        parse_reference("busybox").with_tag("-bad")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one component"),
        ("https://github.com/docker/docker", "invalid reference format"),
        ("docker/Docker", "must be lowercase"),
        ("docker.io/docker/Docker", "must be lowercase"),
        ("Uppercase", "must be lowercase"),
        ("-docker", "invalid reference format"),
        ("-docker/docker", "invalid reference format"),
        ("-docker.io/docker/docker", "invalid reference format"),
        ("docker///docker", "invalid reference format"),
        ("docker.io/docker///docker", "invalid reference format"),
        ("aa/asdf$$^/aa", "invalid reference format"),
        ("busybox:", "invalid reference format"),
        ("busybox:-tag", "invalid reference format"),
        ("busybox:" + "a" * 129, "invalid reference format"),
        ("busybox@sha256:abc", "invalid reference format"),
        ("busybox@md5:" + "a" * 32, "invalid reference format"),
        ("foo_bar.com:8080/baz", "invalid reference format"),
        ("a__-b", "invalid reference format"),
        ("a/b/", "invalid reference format"),
        ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
        ("a/" + "b" * 255, "not be more than 255 characters"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message):
        parse_reference(text)


def test_invalid_reference_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        parse_reference("UPPER")
    with pytest.raises(ValueError):
        parse_reference("UPPER")
