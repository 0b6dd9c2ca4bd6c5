import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("workspace", "0001_initial")]
AFTER = [("workspace", "0002_unique_names_and_upstream_checks")]


@pytest.mark.django_db(transaction=True)
def test_unique_name_migration_renames_existing_duplicates():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Project = apps.get_model("workspace", "Project")
    Provider = apps.get_model("workspace", "Provider")
    project = Project.objects.create(name="Acme", slug="acme-migration")
    providers = [
        Provider.objects.create(
            project=project,
            name=name,
            context_path=f"path-{index}",
            vendor="openai",
            base_url="http://127.0.0.1:9/v1",
        )
        for index, name in enumerate(["OpenAI", "openai", "Anthropic"])
    ]

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)

    apps = executor.loader.project_state(AFTER).apps
    names = dict(
        apps.get_model("workspace", "Provider").objects.values_list("pk", "name")
    )
    assert names == {
        providers[0].pk: "OpenAI",
        providers[1].pk: f"openai (#{providers[1].pk})",
        providers[2].pk: "Anthropic",
    }
