"""Tests for node.llm.sim.backend: the in-process simulated LLM as an ``LLMBackend``."""

from __future__ import annotations

import pytest

from node.errors import LLMRateLimited, LLMServerError, LLMTimeout
from node.llm.base import Completion, LLMBackend
from node.llm.sim.backend import SimulatedBackend, stream_pieces
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.universe import Universe
from node.parser import StreamingParser, parse_answer
from tests.node.llm.sim.conftest import enumeration_messages

MESSAGES = enumeration_messages("countries of the world", ["Europe"], count=15)


class FakeSleep:
    """Returns at once and records every duration it was asked to wait."""

    def __init__(self) -> None:
        self.durations: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.durations.append(seconds)


def _backend(universe: Universe, params: SimParams, *, seed: int = 3, **kwargs: object) -> SimulatedBackend:
    return SimulatedBackend(SimulatedModel(universe, params), seed=seed, **kwargs)  # type: ignore[arg-type]


async def _stream_all(backend: SimulatedBackend) -> tuple[list[str], Completion | None]:
    stream = backend.stream(MESSAGES)
    deltas = [delta async for delta in stream]
    return deltas, stream.completion


def test_simulated_backend_satisfies_the_protocol(countries: Universe) -> None:
    """It is an LLMBackend, named after its universe."""
    backend = _backend(countries, SimParams.fault_free())
    assert isinstance(backend, LLMBackend)
    assert backend.name == "sim:countries"
    assert "seed=3" in repr(backend)


async def test_complete_returns_a_parseable_list_with_usage(countries: Universe) -> None:
    """A whole answer parses into countries and reports tokens, model and finish reason."""
    completion = await _backend(countries, SimParams.fault_free(), sleep=FakeSleep()).complete(MESSAGES)
    parsed = parse_answer(completion.text)
    assert 12 <= len(parsed.entries) <= 18
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.model == "sim:countries"
    assert completion.finish_reason == "stop"
    assert completion.attempts == 1


async def test_complete_and_stream_give_the_same_text_for_the_same_call_index(countries: Universe) -> None:
    """Call n draws from (seed, n) whether it is streamed or not."""
    whole = await _backend(countries, SimParams.fault_free(), sleep=FakeSleep()).complete(MESSAGES)
    deltas, streamed = await _stream_all(_backend(countries, SimParams.fault_free(), sleep=FakeSleep()))
    assert "".join(deltas) == whole.text
    assert streamed == whole


async def test_successive_calls_differ_and_a_seed_replays_them(countries: Universe) -> None:
    """Each call draws afresh; a new backend with the same seed replays the same answers."""
    first = _backend(countries, SimParams.fault_free(), sleep=FakeSleep())
    texts = [(await first.complete(MESSAGES)).text for _ in range(4)]
    assert len(set(texts)) == 4 and first.calls == 4
    replay = _backend(countries, SimParams.fault_free(), sleep=FakeSleep())
    assert [(await replay.complete(MESSAGES)).text for _ in range(4)] == texts
    other_seed = _backend(countries, SimParams.fault_free(), seed=4, sleep=FakeSleep())
    assert (await other_seed.complete(MESSAGES)).text != texts[0]


async def test_stream_yields_several_deltas_and_sets_completion_at_the_end(countries: Universe) -> None:
    """Deltas arrive in pieces that a streaming parser can consume; completion comes last."""
    stream = _backend(countries, SimParams.fault_free(), sleep=FakeSleep()).stream(MESSAGES)
    parser = StreamingParser()
    deltas = []
    async for delta in stream:
        assert stream.completion is None
        deltas.append(delta)
        parser.feed(delta)
    parser.close()
    assert len(deltas) > 3
    completion = stream.completion
    assert completion is not None and completion.usage.total_tokens > 0
    assert parser.result().entries == parse_answer(completion.text).entries


def test_stream_pieces_cut_text_and_keep_empty_answers_streamable() -> None:
    """Pieces rejoin to the text; an empty answer is one empty piece."""
    text = "x" * 50
    assert "".join(stream_pieces(text)) == text
    assert [len(piece) for piece in stream_pieces(text)] == [16, 16, 16, 2]
    assert stream_pieces("") == [""]


async def test_latency_goes_through_the_injected_sleep(countries: Universe) -> None:
    """complete() sleeps the answer's latency once; stream() spreads it over its deltas."""
    params = SimParams.fault_free().replace(time_scale=1.0)
    sleep = FakeSleep()
    completion = await _backend(countries, params, sleep=sleep).complete(MESSAGES)
    expected = params.first_token_s + completion.usage.completion_tokens / params.tokens_per_s
    assert sleep.durations == [pytest.approx(expected)]
    assert completion.latency_s == pytest.approx(expected)

    stream_sleep = FakeSleep()
    deltas, streamed = await _stream_all(_backend(countries, params, sleep=stream_sleep))
    assert streamed is not None
    assert stream_sleep.durations[0] == pytest.approx(params.first_token_s)
    assert len(stream_sleep.durations) == 1 + len(deltas)
    assert sum(stream_sleep.durations) == pytest.approx(expected)


async def test_time_scale_zero_waits_nothing(countries: Universe) -> None:
    """With time_scale 0 every requested sleep is zero (virtual-clock simulations)."""
    sleep = FakeSleep()
    backend = _backend(countries, SimParams.fault_free(), sleep=sleep)
    await backend.complete(MESSAGES)
    await _stream_all(backend)
    assert sleep.durations and set(sleep.durations) == {0.0}


async def test_rate_limit_raises_with_the_retry_after(countries: Universe) -> None:
    """A simulated 429 is LLMRateLimited carrying retry_after_s, in complete() and stream()."""
    params = SimParams.fault_free().replace(rate_limit_rate=1.0, retry_after_s=2.5)
    backend = _backend(countries, params, sleep=FakeSleep())
    with pytest.raises(LLMRateLimited) as raised:
        await backend.complete(MESSAGES)
    assert raised.value.retry_after_s == 2.5
    with pytest.raises(LLMRateLimited):
        await _stream_all(backend)
    assert backend.calls == 2


async def test_server_error_raises(countries: Universe) -> None:
    """A simulated 500 is LLMServerError with its status."""
    backend = _backend(countries, SimParams.fault_free().replace(server_error_rate=1.0), sleep=FakeSleep())
    with pytest.raises(LLMServerError) as raised:
        await backend.complete(MESSAGES)
    assert raised.value.status == 500
    with pytest.raises(LLMServerError):
        await _stream_all(backend)


async def test_hang_costs_the_hang_timeout_then_raises_timeout(countries: Universe) -> None:
    """A hang sleeps hang_timeout_s through the injected sleep, then raises LLMTimeout."""
    sleep = FakeSleep()
    backend = _backend(countries, SimParams.fault_free().replace(hang_rate=1.0), sleep=sleep, hang_timeout_s=12.0)
    with pytest.raises(LLMTimeout):
        await backend.complete(MESSAGES)
    with pytest.raises(LLMTimeout):
        await _stream_all(backend)
    assert sleep.durations == [12.0, 12.0]


async def test_truncated_answer_reports_finish_reason_length(countries: Universe) -> None:
    """A truncated answer arrives (no exception) with finish_reason "length"."""
    backend = _backend(countries, SimParams.fault_free().replace(truncate_rate=1.0), sleep=FakeSleep())
    completion = await backend.complete(MESSAGES)
    assert completion.finish_reason == "length"
    _, streamed = await _stream_all(backend)
    assert streamed is not None and streamed.finish_reason == "length"


async def test_aclose_is_safe_twice(countries: Universe) -> None:
    """Closing releases nothing real and may be repeated."""
    backend = _backend(countries, SimParams.fault_free(), sleep=FakeSleep())
    await backend.aclose()
    await backend.aclose()
