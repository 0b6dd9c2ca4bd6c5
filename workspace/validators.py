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
"""

import ipaddress
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


def validate_upstream_url(url):
    """Reject a base URL whose host is a link-local or cloud metadata address."""
    host = blocked_upstream_host(url)
    if host is not None:
        raise ValidationError(
            "The host “%(host)s” is a link-local or cloud metadata address, which "
            "could expose this server's own credentials. Use the address of the "
            "LLM service instead.",
            code="blocked_host",
            params={"host": host},
        )
