"""Validators shared by the project forms and the admin.

Upstream base URLs: a provider's base URL is where the gateway sends
requests with the provider's credential, so it must not point at a cloud
metadata service (a server-side request forgery target that hands out
the host's own credentials). Only literal addresses and the well-known
metadata host names are checked; DNS names are not resolved here,
because a form is the wrong place for network lookups and the answer can
change after the check. Private ranges (10/8, 172.16/12, 192.168/16,
127/8, fc00::/7) stay allowed: self-hosted OpenAI-compatible servers
live there. docs/ui.md records this decision.

The gateway builds each upstream URL as the base URL followed by the
operation path (<base URL>/chat/completions), so a base URL may contain
only a scheme (http or https), a host, a port and a path. A query string
or fragment would come before the appended path. A user name or password
would be shown to every project member, and aiohttp raises ValueError when
such a URL meets the credential header the gateway sends.
"""

import datetime
import ipaddress
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

LINK_LOCAL_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)
# AWS publishes its instance metadata service at this IPv6 address as well.
METADATA_ADDRESSES = (ipaddress.ip_address("fd00:ec2::254"),)
METADATA_HOST_NAMES = frozenset({"metadata.google.internal", "metadata"})


def blocked_upstream_host(url):
    """Return the host of url if it is a link-local or metadata address, else None."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    name = host.rstrip(".").lower()
    if name in METADATA_HOST_NAMES:
        return host
    address = _literal_address(name)
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return host
    if any(address in network for network in LINK_LOCAL_NETWORKS):
        return host
    return None


def _literal_address(name):
    """Parse a literal IP host, including the zone-less IPv6 and decimal forms."""
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    # Browsers and HTTP clients also accept an IPv4 address written as one
    # number (2852039166 is 169.254.169.254).
    if name.isascii() and name.isdigit():
        try:
            return ipaddress.IPv4Address(int(name))
        except ValueError:
            return None
    return None


UPSTREAM_SCHEMES = ("http", "https")
# Azure OpenAI api-version values: a date with an optional suffix, such as
# 2024-10-21 or 2024-12-01-preview.
AZURE_API_VERSION = re.compile(r"(?P<date>\d{4}-\d{2}-\d{2})(-[a-z][a-z0-9]*)?")


def validate_upstream_url(url):
    """Reject a base URL the gateway cannot append an operation path to.

    Also rejects a host that is a link-local or cloud metadata address.
    """
    validate_upstream_url_parts(url)
    host = blocked_upstream_host(url)
    if host is not None:
        raise ValidationError(
            "The host “%(host)s” is a link-local or cloud metadata address, which "
            "could expose this server's own credentials. Use the address of the "
            "LLM service instead.",
            code="blocked_host",
            params={"host": host},
        )


def validate_upstream_url_parts(url):
    """Reject a scheme other than http or https, credentials, a query or a fragment."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port outside 0-65535)
    except ValueError as error:
        raise ValidationError(
            "The Base URL is not a valid URL (%(error)s). Enter a URL like "
            "https://api.openai.com/v1.",
            code="invalid_url",
            params={"error": error},
        ) from None
    if parts.scheme.lower() not in UPSTREAM_SCHEMES:
        raise ValidationError(
            "The Base URL must start with http:// or https://, not “%(scheme)s:”.",
            code="unsupported_scheme",
            params={"scheme": parts.scheme},
        )
    if parts.username == "" and not parts.password:
        # "http://@host/v1": an "@" with nothing before it.
        raise ValidationError(
            "The Base URL has an “@” before its host name; remove it.",
            code="credentials_in_url",
        )
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            "The Base URL must not contain a user name or password. Remove "
            "“user:password@” from it and enter the secret in the Upstream "
            "credential field instead, which is stored encrypted.",
            code="credentials_in_url",
        )
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        raise ValidationError(
            "The Base URL must not contain a query string (?…) or a fragment "
            "(#…), because the gateway appends the operation path, such as "
            "/chat/completions, to it.",
            code="query_in_url",
        )


def validate_azure_api_version(value):
    """Reject an api-version that is not a date with an optional suffix."""
    match = AZURE_API_VERSION.fullmatch(value)
    valid = match is not None
    if valid:
        try:
            datetime.date.fromisoformat(match["date"])
        except ValueError:
            valid = False
    if not valid:
        raise ValidationError(
            "The API version must be a date in the form YYYY-MM-DD with an "
            "optional suffix, like 2024-10-21 or 2024-12-01-preview; "
            "“%(value)s” is not.",
            code="invalid_api_version",
            params={"value": value},
        )


def redact_url_user_info(url):
    """Return url with any user name and password replaced by ***.

    Base URLs saved before credentials were rejected may still contain them.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{host}").geturl()
