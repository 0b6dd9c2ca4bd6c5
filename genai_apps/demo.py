"""The demo workspace that `manage.py seed_demo` loads for `make run`.

Every provider points at the local upstream simulator (127.0.0.1:8001 unless
`seed_demo --simulator-url` names another), so the demo never sends traffic
to a real vendor. Model prices come from the bundled LiteLLM catalogue
(workspace.pricing).
"""

import dataclasses
import datetime
import json
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from genai_apps.models import (
    GenAIApplication,
    KeyMapping,
    KeyMappingEvent,
    MappingSource,
)
from genai_apps.services import attach_keys
from workspace import pricing
from workspace.models import (
    APIKey,
    AppProxy,
    Membership,
    Project,
    Provider,
    ProviderModel,
    Role,
    Vendor,
)

DEMO_PROJECT_SLUG = "demo"
SANDBOX_PROJECT_SLUG = "sandbox"
# One password for every demo user; the demo serves 127.0.0.1 only.
DEMO_PASSWORD = "demo-password-2026"
SIMULATOR_URL = "http://127.0.0.1:8001"

# username, role in the demo project, description printed at sign-in.
DEMO_USERS = [
    ("owner", Role.OWNER, "project owner"),
    ("admin", Role.ADMIN, "project admin"),
    ("alice", Role.DEVELOPER, "developer"),
    ("bob", Role.DEVELOPER, "developer"),
    ("viewer", Role.VIEWER, "viewer, read only"),
    ("root", None, "superuser for the admin site at /admin/"),
]

DASHBOARD_URL = "http://127.0.0.1:8000/"


def sign_in_text(dashboard_url=DASHBOARD_URL):
    """Return the lines seed_demo prints: where to open the demo, and who can sign in."""
    return "\n".join(
        [
            f"AI Workspace demo: open {dashboard_url} and sign in as one of",
            *(
                f"  {username:<8} {description}"
                for username, _, description in DEMO_USERS
            ),
            f"All demo users have the password: {DEMO_PASSWORD}",
        ]
    )


def point_demo_providers_at(simulator_url):
    """Move the demo projects' providers to the simulator at simulator_url.

    Keeps each base URL's path (/v1 or none). Returns the number of providers
    whose base URL changed.
    """
    changed = 0
    providers = Provider.objects.filter(
        project__slug__in=[DEMO_PROJECT_SLUG, SANDBOX_PROJECT_SLUG]
    )
    for provider in providers:
        path = "/v1" if provider.base_url.rstrip("/").endswith("/v1") else ""
        base_url = f"{simulator_url.rstrip('/')}{path}"
        if provider.base_url != base_url:
            Provider.objects.filter(pk=provider.pk).update(base_url=base_url)
            changed += 1
    return changed


@dataclasses.dataclass
class DemoWorkspace:
    project: object
    # username -> (User, password)
    users: dict
    providers: list
    proxies: list
    keys: list
    applications: list
    # APIKey id -> plain secret, for the demo keys file only; the database
    # stores the hashes.
    secrets: dict = dataclasses.field(default_factory=dict)


class DemoKeysFileError(Exception):
    """The demo keys file is missing, unreadable or not for these keys."""


# name, context path, vendor, base URL, API version, model names.
PROVIDERS = [
    (
        "OpenAI",
        "openai",
        Vendor.OPENAI,
        f"{SIMULATOR_URL}/v1",
        "",
        ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "o4-mini"],
    ),
    (
        "Azure OpenAI West Europe",
        "azure-westeurope",
        Vendor.AZURE_OPENAI,
        SIMULATOR_URL,
        "2024-10-21",
        ["gpt-4o", "gpt-4o-mini"],
    ),
    (
        "Anthropic",
        "anthropic",
        Vendor.ANTHROPIC,
        SIMULATOR_URL,
        "",
        ["claude-sonnet-4-5", "claude-haiku-4-5"],
    ),
    (
        "Self-hosted vLLM",
        "vllm",
        Vendor.OPENAI_COMPATIBLE,
        f"{SIMULATOR_URL}/v1",
        "",
        # Not in the catalogue: its prices stay unknown, as for most
        # self-hosted models.
        ["Qwen/Qwen2.5-7B-Instruct"],
    ),
]

# name, context path, provider context path, allowed models, max tokens.
PROXIES = [
    ("Support bot (GPT-4o mini)", "support-gpt", "openai", ["gpt-4o-mini"], 1024),
    ("Docs search (Claude)", "docs-claude", "anthropic", ["claude-haiku-4-5"], 2048),
    (
        "Batch summaries (Azure)",
        "batch-azure",
        "azure-westeurope",
        ["gpt-4o-mini"],
        None,
    ),
]

# Key name, target context path, creator, days ago created, application name
# (None for a key attached to no application).
KEYS = [
    ("support-bot-prod", "support-gpt", "alice", 58, "Customer Support Bot"),
    ("support-bot-staging", "openai", "alice", 41, "Customer Support Bot"),
    ("support-bot-eval", "openai", "bob", 12, "Customer Support Bot"),
    ("docs-search-prod", "docs-claude", "bob", 55, "Docs Search"),
    ("docs-search-dev", "anthropic", "bob", 30, "Docs Search"),
    ("docs-indexer", "batch-azure", "admin", 27, "Docs Search"),
    ("sales-drafts-prod", "azure-westeurope", "alice", 50, "Sales Email Drafts"),
    ("sales-drafts-dev", "openai", "alice", 22, "Sales Email Drafts"),
    ("sales-drafts-legacy", "openai", "owner", 60, "Sales Email Drafts"),
    ("code-review-ci", "vllm", "bob", 45, "Code Review Assistant"),
    ("code-review-ide", "vllm", "bob", 33, "Code Review Assistant"),
    ("code-review-fallback", "openai", "admin", 20, "Code Review Assistant"),
    ("code-review-trial", "anthropic", "bob", 40, "Code Review Assistant"),
    ("notebook-experiments", "openai", "bob", 9, None),
    ("load-test", "batch-azure", "admin", 6, None),
    ("hackathon-team-3", "anthropic", "alice", 3, None),
]
# Revoked after it was attached; still attached, so its history stays grouped.
REVOKED_KEY = "sales-drafts-legacy"
# Expired after it was attached.
EXPIRED_KEY = "code-review-trial"

# name, description, creator.
APPLICATIONS = [
    (
        "Customer Support Bot",
        "Answers customer tickets in the help centre chat.",
        "alice",
    ),
    (
        "Docs Search",
        "Semantic search and answers over the product documentation.",
        "bob",
    ),
    (
        "Sales Email Drafts",
        "Drafts follow-up emails for the sales team from CRM notes.",
        "alice",
    ),
    (
        "Code Review Assistant",
        "Comments on pull requests in CI and in the IDE plugin.",
        "bob",
    ),
]


def create_demo_workspace(stdout):
    """Create the demo project, users, providers, proxies, keys and apps.

    Returns a DemoWorkspace. Call it only when no project with the slug
    "demo" exists, which the seed_demo command checks first. Existing demo
    users are reused and an existing sandbox project is replaced, so the
    demo can be loaded again after delete_demo_workspace.
    """
    now = timezone.now()
    project = Project.objects.create(name="Demo", slug=DEMO_PROJECT_SLUG)
    users = _create_users(project)
    stdout.write(f"Created project “{project.name}” with {len(users)} users.")

    providers = _create_providers(project, users["owner"][0], now)
    proxies = _create_proxies(project, providers, users["admin"][0], now)
    stdout.write(
        f"Created {len(providers)} LLM providers and {len(proxies)} App LLM Proxies."
    )

    targets = {p.context_path: p for p in [*providers, *proxies]}
    keys, secrets = _create_keys(project, targets, users, now)
    applications = _create_applications(project, keys, users, now)
    _revoke_and_expire(keys, users, now)
    stdout.write(
        f"Created {len(keys)} API keys and {len(applications)} applications "
        f"({sum(1 for *_, app in KEYS if app is None)} keys left unattached)."
    )

    _create_sandbox(users, now)
    stdout.write("Created the second project “Research Sandbox”.")
    return DemoWorkspace(
        project=project,
        users=users,
        providers=providers,
        proxies=proxies,
        keys=list(keys.values()),
        applications=applications,
        secrets=secrets,
    )


def delete_demo_workspace(project):
    """Delete a demo project with its keys, proxies and providers.

    Keys and proxies protect their providers from deletion, so they go
    first; deleting the project alone raises ProtectedError.
    """
    APIKey.objects.filter(project=project).delete()
    AppProxy.objects.filter(project=project).delete()
    Provider.objects.filter(project=project).delete()
    project.delete()


def demo_keys_path():
    """Where seed_demo keeps the demo keys' plain secrets: var/demo-keys.json."""
    return Path(settings.VAR_DIR) / "demo-keys.json"


def write_demo_keys(demo, path=None):
    """Write the demo keys' plain secrets to the demo keys file, mode 0600.

    Demo only: `replay_trace --demo` reads the file so the keys keep their
    secrets, and their prefixes in the dashboard, across `make run`
    restarts. The file is written to a temporary name and renamed, so a
    reader never sees half of it.
    """
    path = Path(path or demo_keys_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    names = {key.pk: key.name for key in demo.keys}
    content = {
        "note": "Demo keys of `manage.py seed_demo`, for `replay_trace --demo` "
        "only. Never put real keys here.",
        "project": demo.project.slug,
        "keys": [
            {"id": key_id, "name": names.get(key_id, ""), "secret": secret}
            for key_id, secret in sorted(demo.secrets.items())
        ],
    }
    # mkstemp creates the file with mode 0600.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".demo-keys-")
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(content, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_demo_keys(path=None):
    """Return {key id: secret} from the demo keys file.

    Raises DemoKeysFileError, naming the file and the command that writes it
    again, when the file is missing or not in the expected shape.
    """
    path = Path(path or demo_keys_path())
    fix = (
        "run `manage.py seed_demo --force` to load the demo again and rewrite it "
        "(this deletes your changes to the demo project)"
    )
    try:
        content = json.loads(path.read_text())
        return {int(entry["id"]): str(entry["secret"]) for entry in content["keys"]}
    except FileNotFoundError:
        raise DemoKeysFileError(f"{path} does not exist; {fix}.") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DemoKeysFileError(f"{path} cannot be read ({error}); {fix}.") from None


def _create_users(project):
    User = get_user_model()
    users = {}
    for username, role, _ in DEMO_USERS:
        user, _ = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com"}
        )
        user.set_password(DEMO_PASSWORD)
        if role is None:
            user.is_staff = True
            user.is_superuser = True
        user.save()
        if role is not None:
            Membership.objects.create(project=project, user=user, role=role)
        users[username] = (user, DEMO_PASSWORD)
    return users


def _create_providers(project, creator, now):
    providers = []
    for name, context_path, vendor, base_url, api_version, model_names in PROVIDERS:
        provider = Provider(
            project=project,
            name=name,
            context_path=context_path,
            vendor=vendor,
            base_url=base_url,
            api_version=api_version,
            created_by=creator,
            created_at=now - datetime.timedelta(days=70),
        )
        provider.set_credential(f"sk-simulator-{context_path}")
        provider.save()
        for model_name in model_names:
            model = ProviderModel(provider=provider, name=model_name)
            pricing.fill_missing_prices(model, vendor)
            model.save()
        providers.append(provider)
    return providers


def _create_proxies(project, providers, creator, now):
    by_path = {provider.context_path: provider for provider in providers}
    return [
        AppProxy.objects.create(
            project=project,
            name=name,
            context_path=context_path,
            provider=by_path[provider_path],
            allowed_models=allowed_models,
            max_tokens=max_tokens,
            created_by=creator,
            created_at=now - datetime.timedelta(days=65),
        )
        for name, context_path, provider_path, allowed_models, max_tokens in PROXIES
    ]


def _create_keys(project, targets, users, now):
    keys = {}
    secrets = {}
    for name, target_path, creator, days_ago, _ in KEYS:
        target = targets[target_path]
        key, secret = APIKey.create_with_secret(
            project=project,
            name=name,
            provider=target if isinstance(target, Provider) else None,
            proxy=target if isinstance(target, AppProxy) else None,
            created_by=users[creator][0],
            created_at=now - datetime.timedelta(days=days_ago),
        )
        keys[name] = key
        secrets[key.pk] = secret
    return keys, secrets


def _create_applications(project, keys, users, now):
    applications = []
    for index, (name, description, creator) in enumerate(APPLICATIONS):
        application = GenAIApplication.objects.create(
            project=project,
            name=name,
            description=description,
            created_by=users[creator][0],
            created_at=now - datetime.timedelta(days=62 - index),
        )
        members = [keys[key_name] for key_name, *_, app in KEYS if app == name]
        attach_keys(
            application, members, users[creator][0], source=MappingSource.COMMAND
        )
        _backdate_attachments(application, members)
        applications.append(application)
    return applications


def _backdate_attachments(application, keys):
    """Date each attach an hour after the later of key and application creation.

    attach_keys stamps the current time; the demo's history reads better
    when keys were attached soon after they were created.
    """
    for key in keys:
        attached_at = max(key.created_at, application.created_at)
        attached_at += datetime.timedelta(hours=1)
        KeyMapping.objects.filter(key=key).update(attached_at=attached_at)
        KeyMappingEvent.objects.filter(key=key, application=application).update(
            created_at=attached_at
        )


def _revoke_and_expire(keys, users, now):
    keys[REVOKED_KEY].revoke(users["owner"][0])
    expired = keys[EXPIRED_KEY]
    expired.expires_at = now - datetime.timedelta(days=2)
    expired.save(update_fields=["expires_at", "updated_at"])


def _create_sandbox(users, now):
    """Create a second, smaller project, so the project switcher has a choice."""
    existing = Project.objects.filter(slug=SANDBOX_PROJECT_SLUG).first()
    if existing is not None:
        delete_demo_workspace(existing)
    sandbox = Project.objects.create(name="Research Sandbox", slug=SANDBOX_PROJECT_SLUG)
    Membership.objects.create(project=sandbox, user=users["owner"][0], role=Role.OWNER)
    Membership.objects.create(project=sandbox, user=users["alice"][0], role=Role.ADMIN)
    provider = Provider(
        project=sandbox,
        name="OpenAI (research)",
        context_path="research-openai",
        vendor=Vendor.OPENAI,
        base_url=f"{SIMULATOR_URL}/v1",
        created_by=users["alice"][0],
    )
    provider.set_credential("sk-simulator-research")
    provider.save()
    model = ProviderModel(provider=provider, name="gpt-4.1-mini")
    pricing.fill_missing_prices(model, Vendor.OPENAI)
    model.save()
    key, _ = APIKey.create_with_secret(
        project=sandbox,
        name="eval-harness",
        provider=provider,
        created_by=users["alice"][0],
        created_at=now - datetime.timedelta(days=5),
    )
    application = GenAIApplication.objects.create(
        project=sandbox,
        name="Prompt Evaluation",
        description="Offline evaluation runs of prompt variants.",
        created_by=users["alice"][0],
    )
    attach_keys(application, [key], users["alice"][0], source=MappingSource.COMMAND)
