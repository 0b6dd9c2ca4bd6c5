"""factory-boy factories for the cast used across the suite.

The usual cast: an owner of a project, a teammate (developer) in the same
project, and an outsider who belongs only to another project.
"""

import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from genai_apps.models import GenAIApplication, KeyMapping
from insights import rollups
from insights.models import IngestionToken, UsageEvent
from insights.recording import UsageRecord
from insights.tokens import generate_ingestion_token
from workspace import crypto
from workspace.models import (
    APIKey,
    AppProxy,
    Membership,
    Project,
    Provider,
    ProviderModel,
    Role,
    Vendor,
    generate_secret,
    hash_secret,
)

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(user, create, extracted, **kwargs):
        if create:
            user.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.DEVELOPER


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Provider {n}")
    context_path = factory.Sequence(lambda n: f"provider-{n}")
    vendor = Vendor.OPENAI
    base_url = "http://127.0.0.1:9/v1"
    credential_encrypted = factory.LazyFunction(
        lambda: crypto.encrypt("sk-upstream-test")
    )


class ProviderModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProviderModel

    provider = factory.SubFactory(ProviderFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    input_price = Decimal("1.10")
    cached_input_price = Decimal("0.275")
    output_price = Decimal("4.40")


class AppProxyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AppProxy

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Proxy {n}")
    context_path = factory.Sequence(lambda n: f"proxy-{n}")
    provider = factory.SubFactory(
        ProviderFactory, project=factory.SelfAttribute("..project")
    )


class APIKeyFactory(factory.django.DjangoModelFactory):
    """A key for a provider of the same project.

    The plain secret is kept on the instance as `secret` for tests that call
    the gateway; the database stores only its hash.
    """

    class Meta:
        model = APIKey

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"key-{n}")
    provider = factory.SubFactory(
        ProviderFactory, project=factory.SelfAttribute("..project")
    )
    secret = factory.LazyFunction(generate_secret)
    prefix = factory.LazyAttribute(lambda key: key.secret[:12])
    secret_hash = factory.LazyAttribute(lambda key: hash_secret(key.secret))

    class Params:
        revoked = factory.Trait(revoked_at=factory.LazyFunction(timezone.now))
        expired = factory.Trait(
            expires_at=factory.LazyFunction(
                lambda: timezone.now() - datetime.timedelta(days=1)
            )
        )

    @classmethod
    def _create(cls, model_class, *args, secret, **kwargs):
        key = super()._create(model_class, *args, **kwargs)
        key.secret = secret
        return key

    @classmethod
    def _build(cls, model_class, *args, secret, **kwargs):
        key = super()._build(model_class, *args, **kwargs)
        key.secret = secret
        return key


class GenAIApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GenAIApplication

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Application {n}")
    description = "An application used in tests."


class KeyMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KeyMapping

    application = factory.SubFactory(GenAIApplicationFactory)
    key = factory.SubFactory(
        APIKeyFactory, project=factory.SelfAttribute("..application.project")
    )


class UsageRecordFactory(factory.Factory):
    """A usage record for insights.recording.record_usage (not saved by itself).

    Pass `key=` to take the project from the key.
    """

    class Meta:
        model = UsageRecord
        exclude = ["key"]

    key = None
    project_id = factory.LazyAttribute(lambda r: r.key.project_id)
    key_id = factory.LazyAttribute(lambda r: r.key.pk if r.key else None)
    occurred_at = factory.LazyFunction(timezone.now)
    model = "gpt-4o-mini"
    prompt_tokens = 1000
    completion_tokens = 200
    latency_ms = 850
    ttft_ms = 240


class IngestionTokenFactory(factory.django.DjangoModelFactory):
    """An ingestion token; the plain token is kept on the instance as `token`."""

    class Meta:
        model = IngestionToken

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"ingestion-{n}")
    token = factory.LazyFunction(generate_ingestion_token)
    prefix = factory.LazyAttribute(lambda t: t.token[:12])
    token_hash = factory.LazyAttribute(lambda t: hash_secret(t.token))

    @classmethod
    def _create(cls, model_class, *args, token, **kwargs):
        instance = super()._create(model_class, *args, **kwargs)
        instance.token = token
        return instance


class UsageEventFactory(factory.django.DjangoModelFactory):
    """A stored call made with a key, attributed to the key's application.

    Unlike record_usage, it stores the given cost_nanousd as it is, so tests
    can state costs directly; it adds the event to the rollups the same way.
    """

    class Meta:
        model = UsageEvent

    key = factory.SubFactory(APIKeyFactory)
    project = factory.SelfAttribute("key.project")
    provider = factory.SelfAttribute("key.provider")
    application = factory.LazyAttribute(
        lambda event: getattr(getattr(event.key, "mapping", None), "application", None)
    )
    occurred_at = factory.LazyFunction(timezone.now)
    model = "gpt-4o-mini"
    prompt_tokens = 100
    completion_tokens = 20
    latency_ms = 350
    cost_nanousd = 1_000_000

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with transaction.atomic():
            event = super()._create(model_class, *args, **kwargs)
            stored = UsageEvent.objects.filter(pk=event.pk)
            rollups.write(rollups.aggregate(rollups.event_rows(stored)))
        return event
