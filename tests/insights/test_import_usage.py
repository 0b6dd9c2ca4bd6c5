import csv
import datetime
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from insights import queries
from insights.models import UsageEvent
from tests.factories import APIKeyFactory

pytestmark = pytest.mark.django_db

TRACES = Path(__file__).resolve().parents[2] / "insights" / "data" / "traces"
AZURE_CODE = TRACES / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv"
MOONCAKE = TRACES / "mooncake_fast25" / "conversation_trace.jsonl"
SERVEGEN = TRACES / "servegen" / "reason_deepseek-r1" / "chunk-12-trace.csv"


def run_import(*args):
    out = StringIO()
    call_command("import_usage", *[str(a) for a in args], stdout=out)
    return out.getvalue()


@pytest.fixture
def keys(project):
    return [APIKeyFactory(project=project) for _ in range(3)]


def azure_sums(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return (
        len(rows),
        sum(int(r["ContextTokens"]) for r in rows),
        sum(int(r["GeneratedTokens"]) for r in rows),
    )


def test_azure_import_matches_trace_sums(project, keys):
    rows, prompt, completion = azure_sums(AZURE_CODE)

    output = run_import(
        AZURE_CODE,
        "--format",
        "azure",
        "--project",
        project.slug,
        "--key",
        keys[0].pk,
        "--key",
        keys[1].pk,
    )

    sums = UsageEvent.objects.aggregate(
        p=Sum("prompt_tokens"), c=Sum("completion_tokens")
    )
    assert sums == {"p": prompt, "c": completion}
    successes = UsageEvent.objects.filter(status_code=200).count()
    assert successes == rows
    assert f"{rows:,} rows read" in output


def test_azure_rollups_match_trace_sums(project, keys):
    rows, prompt, completion = azure_sums(AZURE_CODE)
    run_import(
        AZURE_CODE,
        "--format",
        "azure",
        "--project",
        project.slug,
        "--key",
        keys[0].pk,
        "--failure-rate",
        "0",
    )
    start = datetime.datetime(2023, 11, 16, tzinfo=datetime.UTC)

    total = queries.totals(project.pk, start, start + datetime.timedelta(days=1))[()]

    assert total.requests == rows
    assert total.prompt_tokens == prompt
    assert total.completion_tokens == completion


def test_import_twice_stores_each_row_once(project, keys):
    args = (
        AZURE_CODE,
        "--format",
        "azure",
        "--project",
        project.slug,
        "--key",
        keys[0].pk,
    )
    run_import(*args)
    stored = UsageEvent.objects.count()

    output = run_import(*args)

    assert UsageEvent.objects.count() == stored
    assert "0 imported" in output
    assert f"{stored:,} already stored" in output


def test_round_robin_spreads_rows_over_keys(project, keys):
    run_import(
        AZURE_CODE,
        "--format",
        "azure",
        "--project",
        project.slug,
        "--failure-rate",
        "0",
        *[arg for key in keys for arg in ("--key", key.pk)],
    )

    used = set(UsageEvent.objects.values_list("key_id", flat=True))
    assert used == {k.pk for k in keys}


def test_end_at_shifts_the_last_row(project, keys):
    run_import(
        AZURE_CODE,
        "--format",
        "azure",
        "--project",
        project.slug,
        "--key",
        keys[0].pk,
        "--end-at",
        "2026-06-01T12:00:00Z",
        "--failure-rate",
        "0",
    )

    last = UsageEvent.objects.order_by("-occurred_at").first().occurred_at
    assert last == datetime.datetime(2026, 6, 1, 12, tzinfo=datetime.UTC)


def test_synthesised_values_are_announced(project, keys):
    output = run_import(
        AZURE_CODE, "--format", "azure", "--project", project.slug, "--key", keys[0].pk
    )

    assert "latency and TTFT are synthesised" in output
    assert UsageEvent.objects.filter(latency_ms__isnull=True).count() == 0
    assert UsageEvent.objects.filter(status_code=429).exists()


def test_mooncake_import_matches_trace_sums_and_derives_cache(project, keys):
    lines = [
        json.loads(line) for line in MOONCAKE.read_text().splitlines() if line.strip()
    ]

    run_import(
        MOONCAKE,
        "--format",
        "mooncake",
        "--project",
        project.slug,
        "--key",
        keys[0].pk,
        "--failure-rate",
        "0",
    )

    sums = UsageEvent.objects.aggregate(
        p=Sum("prompt_tokens"), c=Sum("completion_tokens"), cached=Sum("cached_tokens")
    )
    assert sums["p"] == sum(row["input_length"] for row in lines)
    assert sums["c"] == sum(row["output_length"] for row in lines)
    assert 0 < sums["cached"] < sums["p"]
    assert UsageEvent.objects.count() == len(lines)


def test_servegen_draws_reasoning_tokens_reproducibly(project, keys):
    args = (
        SERVEGEN,
        "--format",
        "servegen",
        "--project",
        project.slug,
        "--key",
        keys[0].pk,
        "--scale",
        "0.01",
    )
    run_import(*args, "--end-at", "2026-06-01T00:00:00Z")
    first = UsageEvent.objects.aggregate(
        n=Sum("completion_tokens"), r=Sum("reasoning_tokens")
    )

    output = run_import(*args, "--end-at", "2026-06-01T00:00:00Z")

    assert first["r"] > 0
    assert first["r"] <= first["n"]
    assert "0 imported" in output


def test_servegen_without_dataset_is_an_error(project, keys, tmp_path):
    trace = tmp_path / "chunk-9-trace.csv"
    trace.write_text("0,1.0,1.0,Gamma,1.0,1.0\n")

    with pytest.raises(CommandError, match="No dataset for chunk-9-trace.csv"):
        run_import(
            trace,
            "--format",
            "servegen",
            "--project",
            project.slug,
            "--key",
            keys[0].pk,
        )


def test_canonical_ndjson_keeps_good_rows_and_reports_bad(project, keys, tmp_path):
    path = tmp_path / "usage.ndjson"
    good = {
        "occurred_at": "2026-01-01T10:00:00Z",
        "key_id": keys[0].pk,
        "model": "m",
        "prompt_tokens": 5,
    }
    rows = [
        json.dumps(good),
        "not json",
        json.dumps({**good, "key_id": 999_999}),
        json.dumps({**good, "prompt_tokens": -3}),
        json.dumps(
            {
                **good,
                "occurred_at": "2026-01-01T11:00:00Z",
                "key_sha256": keys[1].secret_hash,
                "key_id": None,
            }
        ),
    ]
    path.write_text("\n".join(rows) + "\n")

    output = run_import(path, "--format", "ndjson", "--project", project.slug)

    assert UsageEvent.objects.count() == 2
    assert "5 rows read, 2 imported" in output
    assert "3 skipped" in output
    assert "key_id 999999 is not an API key of this project." in output
    assert "prompt_tokens must be between 0 and" in output


def test_canonical_csv_import(project, keys, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text(
        "occurred_at,key_id,model,prompt_tokens,completion_tokens,status_code\n"
        f"2026-01-01T10:00:00+05:30,{keys[0].pk},m,10,2,200\n"
        f"2026-01-01T10:01:00+05:30,{keys[0].pk},m,0,0,429\n"
    )

    run_import(path, "--format", "csv", "--project", project.slug)

    assert UsageEvent.objects.filter(error_type="rate_limit").count() == 1
    assert UsageEvent.objects.order_by("occurred_at").first().occurred_at.hour == 4


def test_dry_run_stores_nothing(project, keys):
    output = run_import(
        AZURE_CODE,
        "--format",
        "azure",
        "--project",
        project.slug,
        "--key",
        keys[0].pk,
        "--dry-run",
    )

    assert "would be imported" in output
    assert UsageEvent.objects.count() == 0


def test_unknown_key_is_an_error(project):
    with pytest.raises(CommandError, match="API key 'aiw-nope' not found"):
        run_import(
            AZURE_CODE,
            "--format",
            "azure",
            "--project",
            project.slug,
            "--key",
            "aiw-nope",
        )


def test_mapping_file_maps_clients_to_keys(project, keys, tmp_path):
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"AzureLLMInferenceTrace_code": keys[2].prefix}))

    run_import(
        AZURE_CODE,
        "--format",
        "azure",
        "--project",
        project.slug,
        "--key-mode",
        "mapping",
        "--mapping",
        mapping,
        "--failure-rate",
        "0",
    )

    assert set(UsageEvent.objects.values_list("key_id", flat=True)) == {keys[2].pk}


def write_ndjson(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_future_event_is_skipped_like_the_ingestion_api(project, keys, tmp_path):
    path = write_ndjson(
        tmp_path / "usage.ndjson",
        {"occurred_at": "2099-01-01T00:00:00Z", "key_id": keys[0].pk},
    )

    output = run_import(path, "--format", "ndjson", "--project", project.slug)

    assert UsageEvent.objects.count() == 0
    assert "line 1: occurred_at 2099-01-01T00:00:00+00:00 is in the future" in output


def test_future_end_at_is_an_error(project, keys):
    with pytest.raises(CommandError, match="--end-at .* is in the future"):
        run_import(
            AZURE_CODE,
            *("--format", "azure", "--project", project.slug, "--key", keys[0].pk),
            *("--end-at", "2099-01-01T00:00:00Z"),
        )


def test_skip_reasons_name_the_lines(project, keys, tmp_path):
    path = tmp_path / "usage.ndjson"
    good = json.dumps({"occurred_at": "2026-01-01T10:00:00Z", "key_id": keys[0].pk})
    path.write_text("\n".join([good, "not json", good, "oops"]) + "\n")

    output = run_import(path, "--format", "ndjson", "--project", project.slug)

    assert "  lines 2, 4: not JSON (Expecting value)" in output


def test_dry_run_progress_says_would_be_imported(project, keys):
    output = run_import(
        AZURE_CODE,
        *("--format", "azure", "--project", project.slug, "--key", keys[0].pk),
        "--dry-run",
    )

    assert " imported" not in output.replace("would be imported", "")


def test_one_batch_is_singular(project, keys, tmp_path):
    path = write_ndjson(
        tmp_path / "usage.ndjson",
        {"occurred_at": "2026-01-01T10:00:00Z", "key_id": keys[0].pk},
    )

    output = run_import(path, "--format", "ndjson", "--project", project.slug)

    assert "(1 batch)." in output


def test_unknown_project_says_what_to_pass(tmp_path):
    with pytest.raises(CommandError, match="Pass a project slug as shown"):
        run_import(tmp_path / "x.ndjson", "--format", "ndjson", "--project", "nope")
