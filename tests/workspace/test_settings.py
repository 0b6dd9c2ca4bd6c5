import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from workspace import env

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, **environment):
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CACHE_URL"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**clean, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


def production_environment(**overrides):
    return {
        "DEBUG": "0",
        "SECRET_KEY": "x" * 60 + "production-secret-for-tests",
        "CREDENTIAL_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "ai.example.com",
        **overrides,
    }


def test_check_deploy_passes_in_production_mode():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", **production_environment()
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_mode_requires_secret_key():
    environment = production_environment()
    del environment["SECRET_KEY"]

    result = run_manage("check", **environment)

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_mode_requires_encryption_key():
    environment = production_environment()
    del environment["CREDENTIAL_ENCRYPTION_KEY"]

    result = run_manage("check", **environment)

    assert result.returncode != 0
    assert "CREDENTIAL_ENCRYPTION_KEY must be set" in result.stderr


def test_unsupported_cache_url_is_rejected():
    result = run_manage("check", CACHE_URL="memcached://127.0.0.1:11211")

    assert result.returncode != 0
    assert "CACHE_URL='memcached://127.0.0.1:11211' is not supported" in result.stderr


def test_unknown_usage_writer_is_rejected():
    result = run_manage("check", GATEWAY_USAGE_WRITER="celery")

    assert result.returncode != 0
    assert "GATEWAY_USAGE_WRITER is 'celery'; set it to 'process' or 'thread'." in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("off", False), ("YES", True)]
)
def test_env_bool_parses_common_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("AIW_TEST_FLAG", raw)

    assert env.env_bool("AIW_TEST_FLAG") is expected


def test_env_bool_rejects_unknown_value(monkeypatch):
    monkeypatch.setenv("AIW_TEST_FLAG", "maybe")

    with pytest.raises(ImproperlyConfigured, match="AIW_TEST_FLAG='maybe'"):
        env.env_bool("AIW_TEST_FLAG")


def test_env_int_rejects_text(monkeypatch):
    monkeypatch.setenv("AIW_TEST_NUMBER", "ten")

    with pytest.raises(
        ImproperlyConfigured, match="AIW_TEST_NUMBER='ten' is not an integer"
    ):
        env.env_int("AIW_TEST_NUMBER", 1)


def test_env_str_reads_file_variant(monkeypatch, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("AIW_TEST_SECRET_FILE", str(secret_file))

    assert env.env_str("AIW_TEST_SECRET") == "from-a-file"


def test_env_list_splits_and_trims(monkeypatch):
    monkeypatch.setenv("AIW_TEST_HOSTS", " a.example.com, b.example.com ,")

    assert env.env_list("AIW_TEST_HOSTS", []) == ["a.example.com", "b.example.com"]


def test_django_warning_is_logged_once():
    result = run_manage(
        "shell",
        "-c",
        "import logging; logging.getLogger('django.request').warning('Not Found: /x')",
        DEBUG="1",
    )

    assert result.stderr.count("Not Found: /x") == 1
