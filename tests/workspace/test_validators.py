"""Upstream base URL checks; only strings are validated, nothing is contacted."""

import pytest
from django.core.exceptions import ValidationError

from workspace.validators import (
    blocked_upstream_host,
    redact_url_user_info,
    validate_azure_api_version,
    validate_upstream_url,
)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://169.254.0.1:8443/v1", "169.254.0.1"),
        ("http://[fe80::a9fe:a9fe]/v1", "fe80::a9fe:a9fe"),
        ("http://[fd00:ec2::254]/v1", "fd00:ec2::254"),
        ("http://[::ffff:a9fe:a9fe]/v1", "::ffff:a9fe:a9fe"),
        ("http://2852039166/v1", "2852039166"),
        (
            "http://metadata.google.internal/computeMetadata/v1",
            "metadata.google.internal",
        ),
        ("http://Metadata/v1", "metadata"),
    ],
)
def test_blocked_upstream_host_finds_metadata_addresses(url, host):
    assert blocked_upstream_host(url) == host


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "http://10.1.2.3:8000/v1",
        "http://172.16.0.9/v1",
        "http://[fd12:3456::1]/v1",
        "http://localhost:11434/v1",
        "http://metadata.example.com/v1",
        "not a url",
    ],
)
def test_blocked_upstream_host_allows_other_hosts(url):
    assert blocked_upstream_host(url) is None


def test_validate_upstream_url_names_the_host():
    with pytest.raises(ValidationError, match="169.254.169.254"):
        validate_upstream_url("http://169.254.169.254/v1")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://user:pass@127.0.0.1:8501/v1", "credentials_in_url"),
        ("http://token@127.0.0.1:8501/v1", "credentials_in_url"),
        ("ftp://127.0.0.1/v1", "unsupported_scheme"),
        ("http://127.0.0.1:8501/v1?team=a", "query_in_url"),
        ("http://127.0.0.1:8501/v1#part", "query_in_url"),
        ("http://127.0.0.1:8501/v1?", "query_in_url"),
        ("http://127.0.0.1:99999/v1", "invalid_url"),
    ],
)
def test_upstream_url_rejects_unusable_parts(url, code):
    with pytest.raises(ValidationError) as raised:
        validate_upstream_url(url)

    assert raised.value.code == code
    assert "Base URL" in raised.value.messages[0]


def test_empty_user_info_message_names_the_at_sign():
    with pytest.raises(ValidationError) as raised:
        validate_upstream_url("http://@127.0.0.1:8501/v1")

    assert raised.value.messages == [
        "The Base URL has an “@” before its host name; remove it."
    ]


def test_credentials_message_names_field():
    with pytest.raises(ValidationError) as raised:
        validate_upstream_url("http://user:pass@127.0.0.1:8501/v1")

    message = raised.value.messages[0]
    assert "Base URL" in message
    assert "Upstream credential field" in message
    assert "pass@" not in message


@pytest.mark.parametrize(
    "url",
    ["https://api.openai.com/v1", "HTTP://127.0.0.1:8501/v1", "http://[::1]:8501/v1"],
)
def test_upstream_url_accepts_plain_urls(url):
    validate_upstream_url(url)


@pytest.mark.parametrize("version", ["2024-10-21", "2024-12-01-preview"])
def test_azure_api_version_accepts_dates(version):
    validate_azure_api_version(version)


@pytest.mark.parametrize(
    "version", ["yesterday", "2024-13-01", "2024-10-21-", "24-10-21", "v1", ""]
)
def test_azure_api_version_rejects_other_values(version):
    with pytest.raises(ValidationError) as raised:
        validate_azure_api_version(version)

    assert "API version" in raised.value.messages[0]
    assert "YYYY-MM-DD" in raised.value.messages[0]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@127.0.0.1:8501/v1", "http://***@127.0.0.1:8501/v1"),
        ("http://token@127.0.0.1/v1", "http://***@127.0.0.1/v1"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    ],
)
def test_redact_url_user_info(url, shown):
    assert redact_url_user_info(url) == shown
