"""The built wheel carries the migrations: installed in a fresh virtualenv, from another
directory, `analytics-migrate all` migrates a database."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import psycopg
import pytest

from analytics_core.migrate.sources import load_migrations

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.server


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_wheel_installed_elsewhere_runs_all(database_url: str, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # --no-build-isolation: the build backend is already in this environment, so the
    # test needs no network for it.
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", dist, REPO, cwd=tmp_path)
    (wheel,) = dist.glob("analytics_core-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "analytics_core/_migrations/pre/pre_0001_analytics_events.sql" in names
    assert "analytics_core/_migrations/post/post_0004_backfill.sql" in names
    # The collector's dashboard is package data: the wheel carries it.
    for name in ("dashboard.html", "dashboard.js", "dashboard.css"):
        assert f"analytics_core/collector/static/{name}" in names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel,
         cwd=tmp_path)
    located = _run(python, "-c", "import analytics_core, sys; print(analytics_core.__file__)",
                   cwd=tmp_path)
    assert str(env_dir) in located, "the wheel, not the source tree, must be imported"

    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": ""}
    out = _run(env_dir / "bin" / "analytics-migrate", "all", cwd=tmp_path, env=env)
    migration_count = sum(len(files) for files in load_migrations().values())
    assert f"applied {migration_count} migration(s)" in out
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone()
    assert row == (migration_count,)
