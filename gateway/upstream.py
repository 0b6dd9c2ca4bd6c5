"""Upstream URLs and headers for each vendor.

Provider.base_url follows each vendor's SDK: OpenAI and OpenAI-compatible
base URLs include /v1 (http://host/v1), Anthropic's does not
(http://host), and Azure OpenAI's is the resource endpoint (http://host),
combined with Provider.api_version.
"""

from urllib.parse import quote, urlencode

from workspace.models import Vendor

# Operations under /gateway/<context path>/v1/ and the HTTP method each takes.
OPERATIONS = {
    "chat/completions": "POST",
    "completions": "POST",
    "embeddings": "POST",
    "models": "GET",
    "messages": "POST",
}
# Request headers passed to the upstream; credentials never are.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        b"content-type",
        b"accept",
        b"anthropic-version",
        b"anthropic-beta",
        b"openai-beta",
    }
)
FORWARDED_RESPONSE_PREFIXES = (
    "x-request-id",
    "request-id",
    "retry-after",
    "x-ratelimit-",
    "openai-",
    "anthropic-",
    "apim-request-id",
)
ANTHROPIC_VERSION = "2023-06-01"


def upstream_url(key, operation, model):
    """Return the upstream URL for an operation of the key's provider."""
    if key.vendor == Vendor.AZURE_OPENAI:
        query = urlencode({"api-version": key.api_version})
        if operation == "models":
            return f"{key.base_url}/openai/models?{query}"
        deployment = quote(model, safe="")
        return f"{key.base_url}/openai/deployments/{deployment}/{operation}?{query}"
    if key.vendor == Vendor.ANTHROPIC:
        return f"{key.base_url}/v1/{operation}"
    return f"{key.base_url}/{operation}"


def upstream_headers(key, request_headers):
    """Return the request headers for the upstream, with its credential."""
    headers = {"content-type": "application/json"}
    for raw_name, raw_value in request_headers:
        name = raw_name.decode("latin-1")
        if name in FORWARDED_REQUEST_HEADERS:
            headers[name] = raw_value.decode("latin-1")
    credential = key.credential
    if key.vendor == Vendor.AZURE_OPENAI:
        headers["api-key"] = credential
    elif key.vendor == Vendor.ANTHROPIC:
        headers["x-api-key"] = credential
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    elif credential:
        headers["authorization"] = f"Bearer {credential}"
    # Identity encoding lets the gateway read usage from the bytes it forwards.
    headers["accept-encoding"] = "identity"
    return headers


def response_headers(upstream_response):
    """Return the upstream response headers that the client may see."""
    headers = []
    for name, value in upstream_response.raw_headers:
        lowered = name.lower()
        text = lowered.decode("latin-1")
        if text == "content-type" or text.startswith(FORWARDED_RESPONSE_PREFIXES):
            headers.append((lowered, value))
    return headers
