"""Dashboard responses served by uvicorn, the server `make run` and production use."""

import csv
import io

import httpx
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from insights.recording import record_usage
from tests.factories import APIKeyFactory, UsageRecordFactory

EVENTS = 5_000


def test_event_export_streams_under_asgi(gateway, transactional_db, project, owner):
    key = APIKeyFactory(project=project)
    now = timezone.now()
    record_usage([UsageRecordFactory(key=key, occurred_at=now) for _ in range(EVENTS)])
    browser = Client()
    browser.force_login(owner)
    cookies = {"sessionid": browser.cookies["sessionid"].value}
    url = reverse("insights:overview-export", args=[project.slug])

    with httpx.stream(
        "GET",
        f"{gateway.url}{url}",
        params={"range": "24h", "tz": "UTC", "table": "events"},
        cookies=cookies,
        timeout=30,
    ) as response:
        chunks = list(response.iter_bytes())

    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert response.status_code == 200
    assert len(rows) == EVENTS + 1
    # Django logs this warning when it buffers a synchronous iterator under ASGI.
    assert "must consume synchronous iterators" not in gateway.log_text()
