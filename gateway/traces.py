"""Readers for the public request traces that replay_trace sends.

Each reader yields TraceRow values: prompt and output tokens, and for
Mooncake the prompt tokens that a prefix cache would hold.
"""

import csv
import dataclasses
import json
from pathlib import Path

# The traces bundled with insights, with their licences and sources in
# insights/data/traces/SOURCES.md.
TRACES_DIR = Path(__file__).resolve().parent.parent / "insights" / "data" / "traces"
BUNDLED_TRACES = {
    "azure-code": TRACES_DIR / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv",
    "azure-conv": TRACES_DIR / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv",
    "mooncake": TRACES_DIR / "mooncake_fast25" / "conversation_trace.jsonl",
}
# Mooncake's hash_ids each stand for one block of this many prompt tokens.
MOONCAKE_BLOCK_TOKENS = 512


@dataclasses.dataclass(frozen=True)
class TraceRow:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file and line."""


def read_trace(path):
    """Return the rows of an Azure 2023 CSV or a Mooncake JSONL trace."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"Trace file {path} does not exist.")
    if path.suffix == ".csv":
        return list(_read_azure_csv(path))
    if path.suffix == ".jsonl":
        return list(_read_mooncake_jsonl(path))
    raise TraceError(
        f"Trace file {path} has an unknown format; use an Azure LLM inference "
        "trace (.csv) or a Mooncake trace (.jsonl)."
    )


def _read_azure_csv(path):
    with path.open(newline="", encoding="utf-8") as trace:
        reader = csv.DictReader(trace)
        missing = {"ContextTokens", "GeneratedTokens"} - set(reader.fieldnames or ())
        if missing:
            raise TraceError(
                f"{path} lacks the column(s) {', '.join(sorted(missing))}."
            )
        for line, row in enumerate(reader, start=2):
            yield TraceRow(
                prompt_tokens=_count(row["ContextTokens"], path, line),
                completion_tokens=_count(row["GeneratedTokens"], path, line),
            )


def _read_mooncake_jsonl(path):
    seen_blocks = set()
    with path.open(encoding="utf-8") as trace:
        for line, text in enumerate(trace, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
                prompt = _count(record["input_length"], path, line)
                output = _count(record["output_length"], path, line)
                blocks = list(record.get("hash_ids") or [])
            except (ValueError, KeyError, TypeError) as error:
                raise TraceError(
                    f"{path}:{line} is not a Mooncake record: {error}"
                ) from None
            # A prefix cache serves the leading blocks that an earlier request
            # already sent; the first unseen block ends the cached prefix.
            cached_blocks = 0
            for block in blocks:
                if block not in seen_blocks:
                    break
                cached_blocks += 1
            seen_blocks.update(blocks)
            cached = min(prompt, cached_blocks * MOONCAKE_BLOCK_TOKENS)
            yield TraceRow(prompt, output, cached)


def _count(value, path, line):
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise TraceError(f"{path}:{line}: {value!r} is not a token count.") from None
    if count < 0:
        raise TraceError(f"{path}:{line}: token count {count} is negative.")
    return count
