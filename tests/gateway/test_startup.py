"""What the gateway process does once at startup."""

import re


def test_startup_freezes_objects_out_of_gc(openai_provider, gateway_factory):
    server = gateway_factory()

    server.stop()

    frozen = re.search(r"Froze (\d+) startup objects", server.log_text())
    assert frozen is not None
    # Django alone leaves tens of thousands of objects behind after startup.
    assert int(frozen.group(1)) > 10_000
