"""The collector's key file and command line, and that it stays optional: no database."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analytics_core.cli.collector import app
from analytics_core.collector import KeyFileError, KeyKind, hash_key, load_keys
from analytics_core.events import EventFamily
from devtools.collector_process import write_keys

DIGEST = "a" * 64


def key_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_keys_are_found_by_their_secret_and_say_what_they_may_do(tmp_path: Path) -> None:
    secrets = write_keys(tmp_path / "keys.toml", browser_families='["task", "project"]')
    ring = load_keys(tmp_path / "keys.toml")
    server, browser, read = (ring.find(s) for s in (secrets.server, secrets.browser, secrets.read))
    assert server is not None and (server.name, server.kind, server.service) == (
        "backend",
        KeyKind.SERVER,
        "platform",
    )
    assert server.families == frozenset(EventFamily)
    assert browser is not None and browser.families == {EventFamily.TASK, EventFamily.PROJECT}
    assert browser.origins == {"https://app.example.com"}
    assert read is not None and (read.kind, read.writes) == (KeyKind.READ, False)
    assert ring.find(secrets.server + "x") is None
    assert ring.find("") is None
    assert ring.browser_origins == {"https://app.example.com"}
    assert secrets.server not in repr(server) and hash_key(secrets.server) not in repr(server)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keys = 1", "has no [[keys]] tables"),
        ("[[keys]\n", "is not valid TOML"),
        (f'[[keys]]\nname = "a"\nkind = "server"\nservice = "s"\nsha256 = "{DIGEST}"\nx = 1',
         "keys[0] has unknown fields: x"),
        (f'[[keys]]\nkind = "server"\nsha256 = "{DIGEST}"', "keys[0].name: required"),
        (f'[[keys]]\nname = "a"\nkind = "admin"\nsha256 = "{DIGEST}"',
         "key 'a': kind must be one of server, browser, read"),
        ('[[keys]]\nname = "a"\nkind = "read"\nsha256 = "secret-in-clear"',
         "key 'a': sha256 must be 64 hex digits"),
        (f'[[keys]]\nname = "a"\nkind = "server"\nsha256 = "{DIGEST}"',
         "key 'a': service: service must be a str"),
        (f'[[keys]]\nname = "a"\nkind = "read"\nservice = "s"\nsha256 = "{DIGEST}"',
         "a read key takes no service"),
        (f'[[keys]]\nname = "a"\nkind = "server"\nservice = "s"\nfamilies = ["task"]\n'
         f'sha256 = "{DIGEST}"', "families and origins are for browser keys"),
        (f'[[keys]]\nname = "a"\nkind = "browser"\nservice = "s"\norigins = ["https://a.b"]\n'
         f'sha256 = "{DIGEST}"', "a browser key needs families"),
        (f'[[keys]]\nname = "a"\nkind = "browser"\nservice = "s"\nfamilies = ["billing"]\n'
         f'origins = ["https://a.b"]\nsha256 = "{DIGEST}"', "families must be among: auth"),
        (f'[[keys]]\nname = "a"\nkind = "browser"\nservice = "s"\nfamilies = ["task"]\n'
         f'origins = ["https://a.b/path"]\nsha256 = "{DIGEST}"', "each origin is a"),
        (f'[[keys]]\nname = "a"\nkind = "read"\nsha256 = "{DIGEST}"\n'
         f'[[keys]]\nname = "a"\nkind = "read"\nsha256 = "{"b" * 64}"', "the same name"),
        (f'[[keys]]\nname = "a"\nkind = "read"\nsha256 = "{DIGEST}"\n'
         f'[[keys]]\nname = "b"\nkind = "read"\nsha256 = "{DIGEST}"', "the same sha256"),
    ],
)  # fmt: skip
def test_a_bad_key_file_is_refused_with_what_to_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(KeyFileError) as raised:
        load_keys(key_file(tmp_path, text))
    assert message in str(raised.value)


def test_new_key_prints_a_key_and_the_line_for_the_file() -> None:
    result = CliRunner().invoke(app, ["new-key", "billing"])
    assert result.exit_code == 0, result.output
    (key,) = re.findall(r"ak_[A-Za-z0-9_-]{40,}", result.output)
    (digest,) = re.findall(r'sha256 = "([0-9a-f]{64})"', result.output)
    assert digest == hashlib.sha256(key.encode()).hexdigest()
    assert 'name = "billing"' in result.output


def test_serve_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = key_file(tmp_path, "keys = []")
    result = runner.invoke(
        app, ["serve", "--keys-file", str(bad), "--database-url", "postgresql://h/db"]
    )
    assert result.exit_code == 2
    assert "has no [[keys]] tables" in result.output
    good = tmp_path / "good.toml"
    write_keys(good)
    result = runner.invoke(
        app,
        ["serve", "--keys-file", str(good), "--database-url", "postgresql://h/db",
         "--max-batch-events", "100", "--max-queue-size", "50"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "max_queue_size (50) is below max_batch_events (100)" in result.output
    result = runner.invoke(app, ["serve", "--keys-file", str(good)], env={"DATABASE_URL": ""})
    assert result.exit_code == 2


def test_the_library_and_the_cli_work_without_the_server_extra(tmp_path: Path) -> None:
    write_keys(tmp_path / "keys.toml")
    # Importing the packages loads no web framework; without one, serve says what to install.
    script = textwrap.dedent(
        """
        import sys
        import analytics_core, analytics_core.cli.report, analytics_core.collector
        assert "starlette" not in sys.modules and "uvicorn" not in sys.modules
        sys.modules["starlette"] = None  # as if the extra were not installed
        from analytics_core.cli.collector import main
        sys.argv = ["analytics-collector", "serve", "--keys-file", sys.argv[1],
                    "--database-url", "postgresql://h/db"]
        main()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "keys.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'analytics-core[server]'" in result.stderr
