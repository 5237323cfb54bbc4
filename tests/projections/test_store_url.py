"""Store URLs: the accepted forms, and a one-line refusal for the rest (no file named after it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.projections.settings import (
    STORE_FORMS,
    ProjectorSettings,
    StoreLocation,
    parse_store_url,
)
from services.projections.store import Store, StoreError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("sqlite:////var/lib/mmbus/p.db", StoreLocation("sqlite", "/var/lib/mmbus/p.db")),
        # The default: three slashes and a relative path, in the working directory.
        ("sqlite:///mmbus-projections.db", StoreLocation("sqlite", "mmbus-projections.db")),
        ("sqlite:///:memory:", StoreLocation("sqlite", ":memory:")),
        ("/var/lib/mmbus/p.db", StoreLocation("sqlite", "/var/lib/mmbus/p.db")),
        ("p.db", StoreLocation("sqlite", "p.db")),
        ("./2026-11-21T10:00.db", StoreLocation("sqlite", "./2026-11-21T10:00.db")),
        ("postgresql://mmbus@db/mmbus", StoreLocation("postgresql", "postgresql://mmbus@db/mmbus")),
        ("postgres://u:pw@db:5432/m", StoreLocation("postgresql", "postgres://u:pw@db:5432/m")),
    ],
)
def test_accepted(url: str, location: StoreLocation) -> None:
    assert parse_store_url(url) == location


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("mysql://u:pw@db/mmbus", "unknown store scheme 'mysql'"),
        ("postgres+foo://db/mmbus", "unknown store scheme 'postgres+foo'"),
        ("postgresql+psycopg://db/mmbus", "unknown store scheme 'postgresql+psycopg'"),
        ("http://example.com/p.db", "unknown store scheme 'http'"),
        ("SQLITE:///p.db", "unknown store scheme 'SQLITE'"),
        ("postgresql:mmbus", "a PostgreSQL DSN starts with postgresql://"),
        ("sqlite://host/p.db", "sqlite:/// and the file's path"),
        ("sqlite:p.db", "sqlite:/// and the file's path"),
        ("sqlite:///", "needs a file path"),
        ("sqlite:///p.db?mode=ro", "takes no options"),
        ("host=db dbname=mmbus", "write PostgreSQL as a postgresql:// URL"),
        (" ", "the store URL is empty"),
    ],
)
def test_refused_in_one_line_naming_the_accepted_forms(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)) as refused:
        parse_store_url(url)
    assert str(refused.value).endswith(f"; use {STORE_FORMS}")
    assert "\n" not in str(refused.value)


def test_the_store_and_the_settings_refuse_what_the_parse_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="unknown store scheme 'mysql'") as refused:
        Store("mysql://mmbus:hunter2@db/mmbus")
    assert "hunter2" not in str(refused.value)
    monkeypatch.setenv("MMBUS_PROJECTOR_STORE", "mysql://db/mmbus")
    with pytest.raises(ValidationError, match="unknown store scheme 'mysql'"):
        ProjectorSettings()
    assert list(tmp_path.iterdir()) == [], "no SQLite file named after the URL"


def test_a_relative_sqlite_url_opens_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MMBUS_PROJECTOR_STORE", raising=False)
    with Store(ProjectorSettings().projector_store) as store:
        assert store.is_empty()
    assert (tmp_path / "mmbus-projections.db").is_file()


@pytest.mark.parametrize(
    ("args", "env", "subject", "scheme"),
    [
        (["replay", "--store", "mysql://u:pw@db/m"], {}, "--store", "mysql"),
        (["replay", "--offsets-of", "http://x"], {}, "--offsets-of", "http"),
        (["projector", "--store", "postgres+foo://db"], {}, "--store", "postgres+foo"),
        (
            ["projector"],
            {"MMBUS_PROJECTOR_STORE": "mysql://db/m"},
            "invalid setting MMBUS_PROJECTOR_STORE",
            "mysql",
        ),
    ],
)
def test_the_cli_refuses_in_one_line(
    args: list[str], env: dict[str, str], subject: str, scheme: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "MMBUS_HOME": str(tmp_path), **env},
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"Error: {subject}: unknown store scheme {scheme!r}; use {STORE_FORMS}\n",
    )
    assert list(tmp_path.iterdir()) == [], "no SQLite file named after the URL"
