import buildkit_py


def test_every_public_name_resolves() -> None:
    for name in buildkit_py.__all__:
        assert getattr(buildkit_py, name) is not None, name


def test_build_is_the_library_call_behind_the_cli() -> None:
    from buildkit_py.builder import build

    assert buildkit_py.build is build


def test_all_names_exactly_the_exports() -> None:
    assert sorted(buildkit_py.__all__) == sorted(buildkit_py._EXPORTS)
