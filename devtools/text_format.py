"""psycopg's query and value rules, applied to an engine that speaks PostgreSQL text format.

PGlite has no psycopg driver; the PGlite engine gets `$n` queries with parameters as text and
returns every value as its PostgreSQL text output. This module converts both ways with
psycopg's own adapters, so values come back as the same Python objects a psycopg connection
returns, and parameters are typed the same way psycopg types them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from psycopg.adapt import PyFormat, Transformer
from psycopg.pq import Format

from .sql_session import Params

BYTEA_OID = 17

# The grammar of psycopg's placeholders: "%%", "%s"/"%t"/"%b", "%(name)s"/"%(name)t"/"%(name)b".
_PLACEHOLDER = re.compile(r"%(?:\((?P<name>[^)]+)\))?(?P<kind>.?)", re.DOTALL)


class QueryFormatError(ValueError):
    """The query's placeholders do not fit psycopg's rules or do not match the parameters."""


@dataclass(frozen=True)
class TextQuery:
    """A query ready for the wire: `$n` placeholders, parameters as text and their type OIDs."""

    sql: str
    params: list[str | None]
    type_oids: list[int]


def to_text_query(sql: str, params: Params) -> TextQuery:
    """Convert a psycopg-style query and its parameters; raise `QueryFormatError` on mismatch."""
    names: list[str] = []
    positional = 0
    pieces: list[str] = []
    end = 0
    for match in _PLACEHOLDER.finditer(sql):
        pieces.append(sql[end : match.start()])
        end = match.end()
        name, kind = match.group("name"), match.group("kind")
        if name is None and kind == "%":
            pieces.append("%")
            continue
        if kind not in ("s", "t", "b"):
            shown = match.group(0) if kind else "a trailing %"
            raise QueryFormatError(
                f"only '%s', '%b', '%t' are allowed as placeholders, got {shown!r}; "
                "write '%%' for a literal '%'"
            )
        if name is None:
            positional += 1
            pieces.append(f"${positional}")
        else:
            if name not in names:
                names.append(name)
            pieces.append(f"${names.index(name) + 1}")
    pieces.append(sql[end:])

    if positional and names:
        raise QueryFormatError("positional and named placeholders cannot be mixed")
    values = _ordered_values(params, positional, names)
    texts, oids = _dump(values)
    return TextQuery(sql="".join(pieces), params=texts, type_oids=oids)


def _ordered_values(params: Params, positional: int, names: list[str]) -> list[object]:
    if names:
        if not isinstance(params, Mapping):
            raise QueryFormatError("named placeholders need a mapping of parameters")
        missing = [name for name in names if name not in params]
        if missing:
            raise QueryFormatError(f"query parameters missing: {', '.join(missing)}")
        return [params[name] for name in names]
    if isinstance(params, Mapping):
        if params:
            raise QueryFormatError("a mapping of parameters needs named placeholders")
        return []
    if len(params) != positional:
        raise QueryFormatError(
            f"the query has {positional} placeholders but {len(params)} parameters were passed"
        )
    return list(params)


def _dump(values: Sequence[object]) -> tuple[list[str | None], list[int]]:
    texts: list[str | None] = []
    oids: list[int] = []
    for value in values:
        if isinstance(value, bytes | bytearray | memoryview):
            # psycopg's text dumper escapes bytea for a SQL literal, not for a bound parameter;
            # hex input format is unambiguous in both.
            texts.append("\\x" + bytes(value).hex())
            oids.append(BYTEA_OID)
            continue
        transformer = Transformer()
        (dumped,) = transformer.dump_sequence([value], [PyFormat.TEXT])
        texts.append(None if dumped is None else bytes(dumped).decode())
        oids.append(transformer.types[0] if transformer.types else 0)
    return texts, oids


def load_rows(
    type_oids: Sequence[int], rows: Sequence[Sequence[str | None]]
) -> list[tuple[object, ...]]:
    """Load rows of text values into Python objects by column type, as psycopg would."""
    transformer = Transformer()
    transformer.set_loader_types(list(type_oids), Format.TEXT)
    return [
        transformer.load_sequence(tuple(None if v is None else v.encode() for v in row))
        for row in rows
    ]
