"""The migration files: where they are, what they say for an edition, and their checksums.

The files are the one source of truth. Applying (through yoyo), ``dry-run`` and the tests all
read the SQL of a migration through :meth:`MigrationFile.statements`, so what is printed, what
is tested and what runs are the same text.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from pathlib import Path

import sqlparse
from yoyo.migrations import parse_metadata_from_sql_comments

from analytics_core.migrate.edition import Edition
from analytics_core.migrate.render import render

__all__ = ["MigrationFile", "Phase", "load_migrations", "migrations_root", "write_rendered"]


class Phase(enum.StrEnum):
    """When a migration runs relative to a deploy of the application."""

    #: Before new application code starts: what it writes to must exist.
    PRE = "pre"
    #: After the deploy: what reads or manages the data.
    POST = "post"


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """One migration: a ``.sql`` file in ``migrations/<phase>/``; its id is the file's stem."""

    id: str
    phase: Phase
    path: Path
    template: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file as written; a change after it was applied is drift."""
        return hashlib.sha256(self.template.encode()).hexdigest()

    def sql(self, edition: Edition) -> str:
        """The file's SQL for ``edition``, as handed to yoyo."""
        return render(self.template, edition)

    @property
    def edition_neutral(self) -> bool:
        """True when both editions run the same SQL (the file holds no edition tags)."""
        return self.sql(Edition.COMMUNITY) == self.sql(Edition.APACHE)

    def statements(self, edition: Edition) -> tuple[bool, tuple[str, ...]]:
        """Whether it runs in a transaction, and its statements in order, as yoyo splits them."""
        return _split(self.sql(edition))


def _split(sql: str) -> tuple[bool, tuple[str, ...]]:
    # The same steps as yoyo's read_sql_migration, which only reads from a path: split with
    # sqlparse, then take the directives from the comments that lead the first statement.
    statements = sqlparse.split(sql)
    directives: dict[str, str] = {}
    if statements:
        directives, _, statements[0] = parse_metadata_from_sql_comments(statements[0])
    transactional = directives.get("transactional", "true").strip().lower() != "false"
    return transactional, tuple(s.strip() for s in statements if s.strip())


def migrations_root() -> Path:
    """The ``migrations`` directory: inside the installed wheel, else at the repository root."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "_migrations", package_dir.parent / "migrations"):
        if (candidate / Phase.PRE.value).is_dir():
            return candidate
    raise FileNotFoundError(
        f"migration files not found next to {package_dir}; reinstall analytics-core"
    )


def load_migrations(root: Path | None = None) -> dict[Phase, list[MigrationFile]]:
    """Every migration file per phase, in the order they apply (by file name).

    Raises ValueError when an id appears in both phases: yoyo keeps one ledger for both.
    """
    base = root or migrations_root()
    result: dict[Phase, list[MigrationFile]] = {}
    seen: dict[str, Phase] = {}
    for phase in Phase:
        files = []
        for path in sorted((base / phase.value).glob("*.sql")):
            if path.name.endswith(".rollback.sql"):
                continue
            if path.stem in seen:
                raise ValueError(f"migration id {path.stem} appears in more than one phase")
            seen[path.stem] = phase
            files.append(MigrationFile(path.stem, phase, path, path.read_text(encoding="utf-8")))
        result[phase] = files
    return result


def write_rendered(files: list[MigrationFile], edition: Edition, directory: Path) -> None:
    """Write each file's SQL for ``edition`` into ``directory`` under its own name, for yoyo."""
    directory.mkdir(parents=True, exist_ok=True)
    for migration in files:
        (directory / migration.path.name).write_text(migration.sql(edition), encoding="utf-8")
