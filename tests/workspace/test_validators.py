"""Upstream base URL checks; only strings are validated, nothing is contacted."""

import pytest
from django.core.exceptions import ValidationError

from workspace.validators import blocked_upstream_host, validate_upstream_url


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
