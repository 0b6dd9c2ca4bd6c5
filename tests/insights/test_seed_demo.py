"""seed_demo loads the demo and keeps its keys' secrets in var/demo-keys.json."""

import io
import json
import stat

import pytest
from django.core.management import CommandError, call_command

from workspace.models import APIKey, hash_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def seed(**options):
    stdout = io.StringIO()
    options.setdefault("traffic_volume", 0.005)
    call_command("seed_demo", stdout=stdout, stderr=io.StringIO(), **options)
    return stdout.getvalue()


def demo_key_secrets(var_dir):
    content = json.loads((var_dir / "demo-keys.json").read_text())
    return {entry["id"]: entry["secret"] for entry in content["keys"]}


def test_seed_demo_writes_secrets_matching_the_stored_hashes(var_dir):
    output = seed()

    secrets = demo_key_secrets(var_dir)
    demo_keys = APIKey.objects.filter(project__slug="demo")
    assert set(secrets) == set(demo_keys.values_list("pk", flat=True))
    for key in demo_keys:
        assert key.secret_hash == hash_secret(secrets[key.pk])
        assert key.prefix == secrets[key.pk][: len(key.prefix)]
    assert not any(secret in output for secret in secrets.values())


def test_seed_demo_keys_file_is_readable_by_its_owner_only(var_dir):
    seed()

    mode = stat.S_IMODE((var_dir / "demo-keys.json").stat().st_mode)
    assert mode == 0o600


def test_seed_demo_without_force_keeps_keys_and_keys_file(var_dir):
    seed()
    before = (var_dir / "demo-keys.json").read_text()

    output = seed()

    assert "already loaded" in output
    assert (var_dir / "demo-keys.json").read_text() == before


def test_seed_demo_force_rewrites_keys_file_for_the_new_keys(var_dir):
    seed()
    first = demo_key_secrets(var_dir)

    seed(force=True)

    second = demo_key_secrets(var_dir)
    assert set(second.values()).isdisjoint(first.values())
    assert set(second) == set(
        APIKey.objects.filter(project__slug="demo").values_list("pk", flat=True)
    )


def test_seed_demo_reports_a_missing_keys_file(var_dir):
    seed()
    (var_dir / "demo-keys.json").unlink()
    stderr = io.StringIO()

    call_command("seed_demo", stdout=io.StringIO(), stderr=stderr)

    assert "demo-keys.json is missing" in stderr.getvalue()
    assert "seed_demo --force" in stderr.getvalue()
    assert "deletes your changes to the demo project" in stderr.getvalue()


def test_seed_demo_rejects_traffic_volume_of_zero(var_dir):
    with pytest.raises(CommandError, match="--traffic-volume 0 must be above 0"):
        seed(traffic_volume=0)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:8001", "127.0.0.1:8001", "http://127.0.0.1:8001/v1"]
)
def test_seed_demo_rejects_non_origin_simulator_url(db, url):
    with pytest.raises(CommandError, match="must be an origin"):
        call_command("seed_demo", simulator_url=url)
