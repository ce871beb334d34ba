"""Start-up configuration: production refuses unsafe defaults, database URLs are understood."""

import os
import subprocess
import sys

import pytest

from tayori.lib.config import database_from_url, env_bool


def _start(env):
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tayori.settings", **env},
        capture_output=True, text=True, timeout=60,
    )


def test_production_refuses_the_default_secret():
    result = _start({"TAYORI_ENV": "production",
                     "TAYORI_SECRET_KEY": "tayori-insecure-default-secret-change-me"})
    assert result.returncode != 0
    assert "TAYORI_SECRET_KEY" in result.stderr


def test_production_starts_with_a_secret():
    assert _start({"TAYORI_ENV": "production", "TAYORI_SECRET_KEY": "x" * 50}).returncode == 0


def test_database_urls():
    pg = database_from_url("postgresql://u:p%40ss@db.local:5433/tayori")
    assert (pg["ENGINE"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"], pg["NAME"]) == (
        "django.db.backends.postgresql", "u", "p@ss", "db.local", "5433", "tayori")
    assert database_from_url("sqlite:////abs/path.db")["NAME"] == "/abs/path.db"
    assert database_from_url("sqlite:///rel/path.db")["NAME"] == "rel/path.db"
    with pytest.raises(ValueError):
        database_from_url("mysql://x/y")


def test_booleans_are_strict(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ValueError):
        env_bool("X_FLAG", False)
    monkeypatch.setenv("X_FLAG", "true")
    assert env_bool("X_FLAG", False) is True
