"""One record of Go's `encoding/csv` (no trimming, `""` for a quote inside quotes), as BuildKit reads `--mount`,
`--secret` and similar option lists."""

from __future__ import annotations

__all__ = ["CsvError", "csv_fields"]


class CsvError(ValueError):
    """Go's message: `parse error on line 1, column N: ...`."""


def csv_fields(text: str) -> tuple[str, ...]:
    """The fields of one CSV record."""
    fields: list[str] = []
    position = 0
    length = len(text)
    while True:
        if position < length and text[position] == '"':
            parts: list[str] = []
            start = position + 1
            while True:
                close = text.find('"', start)
                if close < 0:
                    raise CsvError(
                        f'parse error on line 1, column {length + 1}: extraneous or missing " in quoted-field'
                    )
                parts.append(text[start:close])
                after = close + 1
                if after < length and text[after] == '"':
                    parts.append('"')
                    start = after + 1
                    continue
                if after == length:
                    fields.append("".join(parts))
                    return tuple(fields)
                if text[after] != ",":
                    raise CsvError(
                        f'parse error on line 1, column {after + 1}: extraneous or missing " in quoted-field'
                    )
                fields.append("".join(parts))
                position = after + 1
                break
            continue
        comma = text.find(",", position)
        end = length if comma < 0 else comma
        field = text[position:end]
        if '"' in field:
            raise CsvError(
                f'parse error on line 1, column {position + field.index(chr(34)) + 1}: bare " in non-quoted-field'
            )
        fields.append(field)
        if comma < 0:
            return tuple(fields)
        position = comma + 1
