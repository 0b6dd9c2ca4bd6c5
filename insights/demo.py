"""Demo traffic from the real public traces, loaded by `manage.py seed_demo`.

Each application gets 14 days of history drawn from one ServeGen client's
per-window arrival pattern and token distributions, the last hour comes from
the Azure 2023 and Mooncake traces, a day of DeepSeek-R1 clients adds
reasoning tokens, and keys attached to no application get traffic of their
own. Revoked and expired keys get a day of traffic ending when they stopped
working. Scales keep the total near 55,000 events, which loads in well under
a minute on SQLite.
"""

import dataclasses
import datetime
import random
import time
from pathlib import Path

from django.utils import timezone

from genai_apps.models import KeyMapping
from insights import importers
from workspace.models import KeyStatus, ProviderModel

TRACES = Path(__file__).resolve().parent / "data" / "traces"
SERVEGEN_LANGUAGE = TRACES / "servegen" / "language_m-large"
SERVEGEN_REASON = TRACES / "servegen" / "reason_deepseek-r1"
AZURE_CONV = TRACES / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"
AZURE_CODE = TRACES / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv"
MOONCAKE = TRACES / "mooncake_fast25" / "conversation_trace.jsonl"

# Cheaper chat models first: the demo picks the first one a key may call.
PREFERRED_MODELS = (
    "gpt-4o-mini",
    "claude-haiku-4-5",
    "gpt-4.1-mini",
    "gpt-4o",
    "claude-sonnet-4-5",
)
REASONING_MODELS = ("o4-mini", "claude-sonnet-4-5")


@dataclasses.dataclass(frozen=True)
class Source:
    """One trace to import for a group of keys."""

    label: str
    format: str
    path: Path
    dataset: Path | None = None
    # Fraction of a ServeGen client's request rate to draw.
    scale: float = 1.0
    # Keep every n-th row of a request-level trace.
    every: int = 1
    reasoning: bool = False


HISTORY = [
    Source(
        "ServeGen client 34, 14 days",
        "servegen",
        SERVEGEN_LANGUAGE / "chunk-34-trace.csv",
        scale=0.001,
    ),
    Source(
        "ServeGen client 20, 14 days",
        "servegen",
        SERVEGEN_LANGUAGE / "chunk-20-trace.csv",
        scale=0.002,
    ),
    Source(
        "ServeGen client 116, 14 days",
        "servegen",
        SERVEGEN_LANGUAGE / "chunk-116-trace.csv",
        scale=0.002,
    ),
    Source(
        "ServeGen client 7, 14 days",
        "servegen",
        SERVEGEN_LANGUAGE / "chunk-7-trace.csv",
        dataset=SERVEGEN_LANGUAGE / "chunk-116-dataset.json",
        scale=0.003,
    ),
]
LAST_HOUR = [
    # Sampled so the last hour is busier than the history but does not dwarf it.
    Source("Azure LLM 2023 conversation, last hour", "azure", AZURE_CONV, every=40),
    Source("Mooncake conversation, last hour", "mooncake", MOONCAKE, every=25),
    Source("Azure LLM 2023 code, last hour", "azure", AZURE_CODE, every=20),
]
REASONING_DAY = Source(
    "ServeGen DeepSeek-R1 client 54, last day",
    "servegen",
    SERVEGEN_REASON / "chunk-54-trace.csv",
    scale=0.05,
    reasoning=True,
)
UNATTACHED_DAY = Source(
    "ServeGen DeepSeek-R1 client 3, last day",
    "servegen",
    SERVEGEN_REASON / "chunk-3-trace.csv",
    scale=0.03,
    reasoning=True,
)
RETIRED_DAY = Source(
    "ServeGen DeepSeek-R1 client 12, its last day",
    "servegen",
    SERVEGEN_REASON / "chunk-12-trace.csv",
    scale=0.02,
    reasoning=True,
)


def _rows(source, seed, volume):
    """Read a source, keeping about `volume` of its requests."""
    if source.format == "servegen":
        dataset = source.dataset or source.path.with_name(
            source.path.name.replace("-trace.csv", "-dataset.json")
        )
        rng = random.Random(seed)
        scale = source.scale * volume
        return list(importers.read_servegen(source.path, dataset, rng, scale=scale))
    if source.format == "azure":
        rows = list(importers.read_azure(source.path))
    else:
        rows = list(importers.read_mooncake(source.path))
    step = max(1, round(source.every / volume))
    return rows[::step]


def _model_for(key, models_by_provider, reasoning=False):
    """Return a model the key may call, preferring priced chat models."""
    if key.proxy_id and key.proxy.allowed_models:
        return key.proxy.allowed_models[0]
    provider_id = key.provider_id or key.proxy.provider_id
    available = models_by_provider.get(provider_id, [])
    preferred = (REASONING_MODELS if reasoning else ()) + PREFERRED_MODELS
    for name in preferred:
        if name in available:
            return name
    return available[0] if available else "gpt-4o-mini"


class _DemoLoader:
    def __init__(self, demo, stdout, now, volume):
        self.demo = demo
        self.volume = volume
        self.stdout = stdout
        self.now = now
        self.seed = 0
        self.total = 0
        keys = list(demo.keys)
        provider_ids = {k.provider_id or k.proxy.provider_id for k in keys}
        self.models = {}
        for provider_id, name in ProviderModel.objects.filter(
            provider_id__in=provider_ids
        ).values_list("provider_id", "name"):
            self.models.setdefault(provider_id, []).append(name)

    def load(self, source, keys, end_at):
        """Import one source for the keys, grouped by the model each key calls."""
        if not keys:
            return
        by_model = {}
        for key in keys:
            by_model.setdefault(
                _model_for(key, self.models, source.reasoning), []
            ).append(key.pk)
        self.seed += 1
        rows = _rows(source, self.seed, self.volume)
        # Rows go to the model groups in turn, then round-robin over the keys.
        groups = list(by_model.items())
        started = time.monotonic()
        imported = 0
        for index, (model, key_ids) in enumerate(groups):
            share = [row for i, row in enumerate(rows) if i % len(groups) == index]
            importer = importers.Importer(
                self.demo.project,
                importers.KeyMapper(key_ids),
                model=model,
                end_at=end_at,
                batch_size=2000,
                synthetic=importers.SyntheticModel(),
                seed=self.seed,
                source=f"demo:{self.seed}:{source.label}:{model}",
            )
            imported += importer.import_trace(share).imported
        self.total += imported
        self.stdout.write(
            f"  {source.label}: {imported:,} events for {len(keys)} key{'' if len(keys) == 1 else 's'} "
            f"({time.monotonic() - started:.1f} s)"
        )


def load_demo_traffic(demo, stdout, volume=1.0):
    """Record usage for the demo workspace's keys from the bundled traces.

    volume scales the number of events (1.0 is about 55,000); tests use less.
    """
    now = timezone.now().replace(microsecond=0)
    loader = _DemoLoader(demo, stdout, now, volume)
    stdout.write("Loading demo traffic from the bundled public traces …")

    owners = dict(
        KeyMapping.objects.filter(key__in=demo.keys).values_list(
            "key_id", "application_id"
        )
    )
    active = {k.pk for k in demo.keys if k.status_at(now) == KeyStatus.ACTIVE}
    applications = sorted(demo.applications, key=lambda a: a.pk)
    keys_of = {
        app.pk: [k for k in demo.keys if owners.get(k.pk) == app.pk and k.pk in active]
        for app in applications
    }
    history_end = now - datetime.timedelta(hours=1)

    for index, app in enumerate(applications):
        loader.load(HISTORY[index % len(HISTORY)], keys_of[app.pk], history_end)
        loader.load(LAST_HOUR[index % len(LAST_HOUR)], keys_of[app.pk], now)
    if applications:
        reasoning_app = applications[min(2, len(applications) - 1)]
        loader.load(REASONING_DAY, keys_of[reasoning_app.pk], now)

    unattached = [k for k in demo.keys if k.pk not in owners and k.pk in active]
    loader.load(UNATTACHED_DAY, unattached, now)

    for key in demo.keys:
        stopped = key.revoked_at or key.expires_at
        if key.pk not in active and stopped is not None:
            loader.load(RETIRED_DAY, [key], min(stopped, now))

    stdout.write(f"Loaded {loader.total:,} usage events.")
