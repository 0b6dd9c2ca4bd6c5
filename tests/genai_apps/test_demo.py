import io
from collections import Counter
from decimal import Decimal

from django.contrib.auth import authenticate

from genai_apps.demo import (
    DEMO_PASSWORD,
    create_demo_workspace,
    delete_demo_workspace,
    point_demo_providers_at,
    sign_in_text,
)
from genai_apps.models import KeyMapping
from workspace.models import APIKey, KeyStatus, Project, ProviderModel, Vendor


def test_demo_workspace_contents(db):
    demo = create_demo_workspace(io.StringIO())

    keys_per_application = Counter(
        KeyMapping.objects.filter(key__project=demo.project).values_list(
            "application__name", flat=True
        )
    )
    statuses = Counter(
        key.status for key in APIKey.objects.filter(project=demo.project)
    )
    assert demo.project.slug == "demo"
    assert len(demo.applications) == 4
    assert all(3 <= count <= 4 for count in keys_per_application.values())
    assert len(keys_per_application) == 4
    assert (
        APIKey.objects.filter(project=demo.project, mapping__isnull=True).count() == 3
    )
    assert statuses[KeyStatus.REVOKED] == 1
    assert statuses[KeyStatus.EXPIRED] == 1
    assert len({key.created_by_id for key in demo.keys}) >= 3
    assert {p.vendor for p in demo.providers} == set(Vendor.values)
    assert len(demo.proxies) >= 2


def test_demo_providers_point_at_local_simulator(db):
    demo = create_demo_workspace(io.StringIO())

    urls = {provider.vendor: provider.base_url for provider in demo.providers}
    assert urls[Vendor.OPENAI] == "http://127.0.0.1:8001/v1"
    assert urls[Vendor.OPENAI_COMPATIBLE] == "http://127.0.0.1:8001/v1"
    assert urls[Vendor.ANTHROPIC] == "http://127.0.0.1:8001"
    assert urls[Vendor.AZURE_OPENAI] == "http://127.0.0.1:8001"
    azure = next(p for p in demo.providers if p.vendor == Vendor.AZURE_OPENAI)
    assert azure.api_version == "2024-10-21"


def test_demo_models_have_catalogue_prices(db):
    demo = create_demo_workspace(io.StringIO())

    model = ProviderModel.objects.get(
        provider__project=demo.project, provider__vendor=Vendor.OPENAI, name="gpt-4o"
    )
    assert model.input_price == Decimal("2.5")
    assert model.output_price == Decimal("10")


def test_demo_users_sign_in_with_printed_password(db):
    demo = create_demo_workspace(io.StringIO())

    for username, (user, password) in demo.users.items():
        assert username in sign_in_text()
        assert authenticate(username=username, password=password) == user
    assert DEMO_PASSWORD in sign_in_text()
    assert "http://127.0.0.1:8000/" in sign_in_text()
    assert "http://127.0.0.1:8400/" in sign_in_text("http://127.0.0.1:8400/")
    assert demo.users["root"][0].is_superuser


def test_demo_has_second_project_for_switcher(db):
    demo = create_demo_workspace(io.StringIO())

    owner = demo.users["owner"][0]
    assert Project.objects.filter(memberships__user=owner).count() == 2


def test_demo_can_be_deleted_and_loaded_again(db):
    demo = create_demo_workspace(io.StringIO())

    delete_demo_workspace(demo.project)
    again = create_demo_workspace(io.StringIO())

    assert Project.objects.filter(slug="demo").get() == again.project
    assert Project.objects.filter(slug="sandbox").count() == 1


def test_demo_attachments_follow_key_creation(db):
    demo = create_demo_workspace(io.StringIO())

    for mapping in KeyMapping.objects.filter(key__project=demo.project).select_related(
        "key", "application"
    ):
        assert mapping.attached_at > mapping.key.created_at
        assert mapping.attached_at > mapping.application.created_at


def test_demo_providers_follow_simulator_url(db):
    demo = create_demo_workspace(io.StringIO())

    changed = point_demo_providers_at("http://127.0.0.1:8401")
    again = point_demo_providers_at("http://127.0.0.1:8401")

    urls = dict(demo.project.providers.values_list("context_path", "base_url"))
    assert changed == len(urls) + 1  # the sandbox project's provider too
    assert again == 0
    assert urls["openai"] == "http://127.0.0.1:8401/v1"
    assert urls["anthropic"] == "http://127.0.0.1:8401"
