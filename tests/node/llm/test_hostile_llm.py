"""Hostile LLM output (issue #14, part 3) through the real OpenAI backend and the real producer.

A loopback OpenAI-compatible server (``tests/node/llm/openai_test_server.py``) answers with the
named hostile corpus (``tests/node/llm/hostile_llm.py``: 10 MB answers, endless streams,
controls and NULs, HTML/JS, prompt injection, wrong-shape JSON, invalid UTF-8, SSE garbage) and
with hypothesis-generated bodies and answer texts. Each test counts outcomes per kind of input
(answered / rejected / crashed / state changed) and fails with the counts when anything crashed,
overran its bounds, or left a record a peer would refuse. The longer run on demand is
``scripts/fuzz/llm.py``.
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from node.errors import ConfigError, LLMBadResponse, LLMTimeout
from node.llm.openai_backend import OpenAIBackend
from node.name_cleaning import sanitize
from node.verdicts import parse_verdicts
from partitioning.labels import MAX_LABEL_CHARS, clean_split_labels
from tests import suite_report
from tests.suite_report import FUZZ_COLUMNS, HOSTILE_INPUT as SECTION
from tests.node.llm.hostile_llm import (
    CORPUS,
    HOSTILE_CONFIG,
    TEN_MB,
    CaseResult,
    Tally,
    call_backend,
    fuzz_answer_texts,
    fuzz_backend,
    run_case,
)
from tests.node.llm.openai_test_server import OpenAITestServer, endless, ok, raw

# Real sockets on loopback and the real openai client.
pytestmark = pytest.mark.slow

MakeBackend = Callable[..., OpenAIBackend]
MEMORY_BOUND_BYTES = 4 * HOSTILE_CONFIG.max_response_bytes  # what any one answer may cost at its peak


def _mismatch(expected_outcome: str, expected_error: str | None, result: CaseResult) -> str | None:
    if result.outcome != expected_outcome or (expected_error is not None and result.error != expected_error):
        return f"{result.name}: {result.outcome} ({result.error}), expected {expected_outcome} ({expected_error})"
    if result.outcome == "rejected" and not (len(result.backoffs) == 1 and result.backoffs[0] > 0):
        return f"{result.name}: a failed call must back off once, got {result.backoffs}"
    if result.outcome == "answered" and result.backoffs:
        return f"{result.name}: an answered call backed off {result.backoffs}"
    if result.peak_bytes is not None and result.peak_bytes > MEMORY_BOUND_BYTES:
        return f"{result.name}: peak {result.peak_bytes:,} B over {MEMORY_BOUND_BYTES:,} B"
    return None


# --- the named corpus through the producer ------------------------------------------------------


async def test_the_hostile_corpus_never_crashes_the_producer_nor_corrupts_its_store(tmp_path: Path) -> None:
    """Every named hostile answer is answered or rejected as expected, bounded, leaving clean records."""
    tally, findings, results = Tally(), [], {}
    for number, case in enumerate(c for c in CORPUS if not c.slow):
        result = await run_case(case, data_dir=tmp_path / f"case{number}")
        results[case.name] = result
        tally.add(case.kind, result.outcome, state_changed=result.state_changed)
        findings += [f"{case.name}: {problem}" for problem in result.problems]
        if (mismatch := _mismatch(case.expect, case.error, result)) is not None:
            findings.append(mismatch)
        if result.seconds > (case.total_timeout_s or 0) + 5:
            findings.append(f"{case.name}: took {result.seconds:.1f} s")
    suite_report.record_tally(SECTION, "LLM output", tally, FUZZ_COLUMNS)
    assert not findings and tally.total("crashed") == 0 and tally.total("state_changed") == 0, (
        f"{findings}\ncounts: {tally}"
    )
    assert tally.total("tried") >= 30 and tally.total("rejected") >= 15, str(tally)
    # HTML stays the text it was, never interpreted or half-stripped; controls and invisible
    # characters are gone from names, which stay whole.
    assert "<script>alert(1)</script>" in results["script and img onerror"].entry_texts
    assert set(results["NULs and C0/C1 controls inside names"].entry_texts) == {"Louvre", "Musée d'Orsay"}
    assert set(results["bidi, zero-width and tag characters"].entry_texts) == {"Sacré-Cœur", "Lyon", "Nice"}
    # The endless stream of entries accepted its one entry once, then was cut.
    assert results["endless stream of entries"].entry_texts == ("Louvre",)


# --- regressions: bugs this fuzzing found in the backend ----------------------------------------


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streamed"])
async def test_json_nested_past_the_recursion_limit_is_a_bad_response(
    openai_server: OpenAITestServer, make_backend: MakeBackend, streaming: bool
) -> None:
    """A body nested 10,000 deep raised RecursionError out of the backend (and the producer)."""
    deep = b"[" * 10_000 + b"]" * 10_000
    body = b"data: " + deep + b"\n\n" if streaming else deep
    openai_server.always(raw(body, content_type="text/event-stream" if streaming else "application/json"))
    with pytest.raises(LLMBadResponse, match="nested too deeply"):
        await call_backend(make_backend(max_attempts=1), streaming=streaming)


async def test_an_endless_stream_is_ended_by_the_total_timeout(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    """A stream that keeps dripping inside the idle timeout used to run forever."""
    openai_server.always(endless("Louvre ", gap_s=0.05))
    backend = make_backend(stream_idle_timeout_s=1.0, stream_total_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(LLMTimeout, match="stream_total_timeout_s=0.5"):
        await call_backend(backend, streaming=True)
    assert 0.45 <= time.monotonic() - started < 1.5


async def test_the_idle_timeout_still_names_itself(openai_server: OpenAITestServer, make_backend: MakeBackend) -> None:
    """A silent stream is an idle timeout, not a total one, when the total is still far."""
    openai_server.always(endless("Louvre ", gap_s=2.0))
    backend = make_backend(stream_idle_timeout_s=0.2, stream_total_timeout_s=5.0, max_attempts=1)
    with pytest.raises(LLMTimeout, match="idle"):
        await call_backend(backend, streaming=True)


@pytest.mark.parametrize(
    ("streaming", "behaviour"),
    [
        (True, endless("x", one_line=True)),
        (True, endless("Louvre\n" * 500)),
        (False, raw(b'{"choices": [{"message": {"content": "' + b"x" * 3_000_000 + b'"}}]}')),
        (False, raw(b"x" * 3_000_000, status=500)),
    ],
    ids=["endless-sse-line", "endless-chunks", "3MB-whole", "3MB-error-body"],
)
async def test_a_body_past_max_response_bytes_is_refused_with_bounded_memory(
    openai_server: OpenAITestServer, make_backend: MakeBackend, streaming: bool, behaviour: object
) -> None:
    """An endless SSE line was buffered without limit (hundreds of MB a second) until a timeout."""
    openai_server.always(behaviour)  # type: ignore[arg-type]
    backend = make_backend(max_response_bytes=1_000_000, max_attempts=1, stream_total_timeout_s=30.0)
    tracemalloc.start()
    try:
        with pytest.raises(LLMBadResponse, match="max_response_bytes=1,000,000"):
            await call_backend(backend, streaming=streaming)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000


async def test_a_10mb_whole_answer_is_read_and_its_consumers_stay_bounded(
    openai_server: OpenAITestServer, make_backend: MakeBackend
) -> None:
    """10 MB is within the default byte bound; the verifier's and planner's parsers cut it short."""
    text = "\n".join(f"{number}. Monument {number} <script>alert({number})</script>" for number in range(250_000))
    text = text[:TEN_MB]
    openai_server.always(ok(text))
    tracemalloc.start()
    try:
        completion = await make_backend().complete([])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert completion.text == text
    assert peak < MEMORY_BOUND_BYTES
    started = time.monotonic()
    verdicts = parse_verdicts(completion.text, ["Louvre", "Orsay"])
    labels = clean_split_labels(completion.text, max_parts=8)
    assert set(verdicts) <= {0, 1}
    assert len(labels.labels) <= 8 and all(len(label) <= MAX_LABEL_CHARS for label in labels.labels)
    assert time.monotonic() - started < 10


def test_new_bounds_are_validated() -> None:
    """A zero or non-finite total timeout, or a byte bound below 1, is a ConfigError."""
    for changes in ({"stream_total_timeout_s": 0.0}, {"stream_total_timeout_s": float("nan")},
                    {"max_response_bytes": 0}):  # fmt: skip
        with pytest.raises(ConfigError, match=next(iter(changes))):
            dataclasses.replace(HOSTILE_CONFIG, **changes)  # type: ignore[arg-type]


def test_sanitize_drops_every_control_format_and_surrogate_code_point() -> None:
    """Invisible tag characters (U+E0000–E007F) and other format characters got into entries."""
    survivors = [
        f"U+{code:04X}"
        for code in range(0x110000)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Cs")
        and sanitize(chr(code)) not in ("", "\n", "\t")
    ]
    assert survivors == []
    assert sanitize("Ly\U000e0049\U000e0047on\u200b \u202eNice\t\n") == "Lyon Nice\t\n"


# --- generated input ------------------------------------------------------------------------------


def test_fuzzed_whole_bodies_only_ever_raise_llm_errors() -> None:
    """Mutated completions, arbitrary JSON, bytes and cut JSON: an answer or an LLMError, quickly."""
    tally, findings, _ = fuzz_backend(streaming=False, examples=150)
    suite_report.record_tally(SECTION, "LLM output", tally, FUZZ_COLUMNS)
    assert not findings and tally.total("crashed") == 0, f"{findings[:5]}\ncounts: {tally}"
    assert tally.total("rejected") > 0 and tally.total("answered") > 0, str(tally)


def test_fuzzed_event_streams_only_ever_raise_llm_errors() -> None:
    """Mutated chunks, framing garbage and odd line ends: an answer or an LLMError, quickly."""
    tally, findings, _ = fuzz_backend(streaming=True, examples=150)
    suite_report.record_tally(SECTION, "LLM output", tally, FUZZ_COLUMNS)
    assert not findings and tally.total("crashed") == 0, f"{findings[:5]}\ncounts: {tally}"
    assert tally.total("rejected") > 0 and tally.total("answered") > 0, str(tally)


def test_fuzzed_answer_texts_commit_only_clean_bounded_entries(tmp_path: Path) -> None:
    """Hostile answer texts in random deltas: answered, and every committed record is clean."""
    tally, findings, _ = fuzz_answer_texts(tmp_path, examples=60)
    suite_report.record_tally(SECTION, "LLM output", tally, FUZZ_COLUMNS)
    assert not findings and tally.total("crashed") == 0 and tally.total("state_changed") == 0, (
        f"{findings[:5]}\ncounts: {tally}"
    )
    assert tally.total("answered") == tally.total("tried") == 60, str(tally)
