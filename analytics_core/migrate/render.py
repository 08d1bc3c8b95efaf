"""Render a migration file for one TimescaleDB edition.

A migration is written once, in SQL, for both editions. Lines that only one edition runs are
tagged: a line ending in ``--@community`` or ``--@apache`` is kept only for that edition, and a
line holding just ``--@community`` (or ``--@apache``) opens a block that ``--@end`` closes.
Everything else is common. The tags are SQL comments, so the file stays plain SQL to read.
"""

from __future__ import annotations

import re

from analytics_core.migrate.edition import Edition

__all__ = ["render"]

_TAG = re.compile(r"\s*--@(\w+)\s*$")


def render(template: str, edition: Edition) -> str:
    """Return the SQL of ``template`` that ``edition`` runs, tags removed.

    Raises ValueError for an unknown tag or an unbalanced block, naming the line.
    """
    known = {member.value for member in Edition}
    out: list[str] = []
    block: str | None = None
    for number, line in enumerate(template.splitlines(), start=1):
        match = _TAG.search(line)
        if match is None:
            if block is None or block == edition:
                out.append(line)
            continue
        tag, code = match.group(1), line[: match.start()]
        if tag == "end":
            if block is None or code.strip():
                raise ValueError(f"line {number}: --@end without an open block")
            block = None
            continue
        if tag not in known:
            raise ValueError(f"line {number}: unknown edition tag --@{tag}")
        if code.strip():
            if block is not None:
                raise ValueError(f"line {number}: tagged line inside a --@{block} block")
            if tag == edition:
                out.append(code.rstrip())
        elif block is not None:
            raise ValueError(f"line {number}: --@{tag} inside an open --@{block} block")
        else:
            block = tag
    if block is not None:
        raise ValueError(f"unterminated --@{block} block")
    return "\n".join(out) + "\n"
