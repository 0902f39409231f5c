"""--chmod values: octal as BuildKit parses it, and chmod(1)'s symbolic clauses (dchapes/mode, which BuildKit uses,
with `X` honoured by `=` as BuildKit's reference documents: `u=rwX,go=rX` gives directories 755, files 644)."""

from __future__ import annotations

import pytest

from buildkit_py.filemode import FileModeError, parse_file_mode

OCTAL_MESSAGE = "invalid chmod parameter: '{}'. it should be octal string and between 0 and 07777"


@pytest.mark.parametrize(
    ("text", "mode"), [("644", 0o644), ("0755", 0o755), ("0", 0), ("0413", 0o413), ("7777", 0o7777)]
)
def test_octal_modes_replace_every_mode(text: str, mode: int) -> None:
    parsed = parse_file_mode(text)
    assert parsed.octal == mode and not parsed.symbolic
    assert parsed.apply(0o4777, is_dir=False) == mode and parsed.apply(0o700, is_dir=True) == mode


@pytest.mark.parametrize("text", ["64a", "10000", "8", "0o755", "755 "])
def test_numbers_that_are_not_octal_get_buildkits_message(text: str) -> None:
    with pytest.raises(FileModeError) as caught:
        parse_file_mode(text)
    assert str(caught.value) == OCTAL_MESSAGE.format(text)


# (mode, start, is_dir, expected): the cases of BuildKit's testChmodNonOctal (file 0666, directory 0124) and more.
SYMBOLIC = [
    ("go-w", 0o666, False, 0o644),
    ("u=rw,g=r,o=r", 0o666, False, 0o644),
    ("a+X", 0o666, False, 0o666),
    ("go-w", 0o124, True, 0o104),
    ("u+rw,g+r,o-x,o+w", 0o124, True, 0o766),
    ("a+X", 0o124, True, 0o135),
    ("+x", 0o644, False, 0o755),
    ("u+x,g-w", 0o664, False, 0o744),
    ("u=rwX,go=rX", 0o640, True, 0o755),
    ("u=rwX,go=rX", 0o640, False, 0o644),
    ("u=rwX,go=rX", 0o700, False, 0o755),
    ("g=u", 0o740, False, 0o770),
    ("go=u-w", 0o750, False, 0o755),
    ("go=", 0o777, True, 0o700),
    ("=rw,+X", 0o755, False, 0o777),  # X looks at the mode before the chmod, as BSD's setmode does
    ("u+s", 0o755, False, 0o4755),
    ("g+s,o+t", 0o755, True, 0o2755),  # t for "other" alone is ignored
    ("+t", 0o755, True, 0o1755),
    ("=", 0o4755, False, 0o0),
    ("-X", 0o777, False, 0o777),  # X does nothing with "-"
    ("u=g", 0o4750, False, 0o4550),  # a copy keeps the set-id bits
]


@pytest.mark.parametrize(("text", "start", "is_dir", "expected"), SYMBOLIC)
def test_symbolic_modes_apply_to_each_mode(text: str, start: int, is_dir: bool, expected: int) -> None:
    parsed = parse_file_mode(text)
    assert parsed.symbolic
    assert oct(parsed.apply(start, is_dir)) == oct(expected)


@pytest.mark.parametrize(
    ("text", "reason"), [("u", "has no + - ="), ("u+q", "unexpected 'q'"), ("+x,", "clause ''"), ("", "empty")]
)
def test_malformed_symbolic_modes_say_why(text: str, reason: str) -> None:
    with pytest.raises(FileModeError) as caught:
        parse_file_mode(text)
    assert str(caught.value).startswith(f"invalid chmod parameter: '{text}'") and reason in str(caught.value)
