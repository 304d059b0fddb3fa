"""OpenAIBackend through the real ``openai`` client against the simulated LLM's HTTP server.

The same server ``sim-llm`` runs (``create_sim_app`` on a loopback TCP site), with fault
presets: what the producer will meet from the simulator over HTTP, retries included.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from node.errors import LLMRateLimited, LLMServerError, LLMTimeout
from node.llm.base import ChatMessage, Completion
from node.llm.openai_backend import OpenAIBackend, OpenAIConfig
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.server import create_sim_app
from node.llm.sim.universe import load_universe
from node.normalize import entry_id
from node.parser import parse_answer
from node.prompts import PromptTemplates, build_enumeration_prompt
from tests.node.llm.conftest import FAST_CONFIG

pytestmark = pytest.mark.slow  # real sockets and the real client on loopback (fast, but real I/O)

StartSim = Callable[..., Awaitable[Callable[..., OpenAIBackend]]]

MESSAGES = build_enumeration_prompt(
    PromptTemplates(),
    topic="countries of the world",
    partition=["Asia"],
    known=["China", "India"],
    count=15,
    known_budget_tokens=1000,
).messages


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    """Serves the simulated LLM over the countries with given params; returns a backend factory."""
    runners: list[web.AppRunner] = []
    backends: list[OpenAIBackend] = []

    async def start(params: SimParams | None = None, *, hang_s: float = 0.5) -> Callable[..., OpenAIBackend]:
        model = SimulatedModel(load_universe("countries"), params or SimParams.fault_free())
        runner = web.AppRunner(create_sim_app(model, seed=11, hang_s=hang_s), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]

        def make(**overrides: Any) -> OpenAIBackend:
            fields = {**FAST_CONFIG, "model": "sim", "base_url": f"http://127.0.0.1:{port}/v1", **overrides}
            backend = OpenAIBackend(OpenAIConfig(**fields), rng=random.Random(7))
            backends.append(backend)
            return backend

        return make

    yield start
    for backend in backends:
        await backend.aclose()
    for runner in runners:
        await runner.cleanup()


def _real_share(text: str) -> tuple[int, float]:
    countries = load_universe("countries").id_of_any_name()
    entries = parse_answer(text).entries
    return len(entries), sum(entry_id(entry) in countries for entry in entries) / max(1, len(entries))


async def _stream(backend: OpenAIBackend, messages: Any = MESSAGES, **kwargs: Any) -> tuple[list[str], Completion | None]:
    stream = backend.stream(messages, **kwargs)
    deltas = [delta async for delta in stream]
    return deltas, stream.completion


async def test_complete_returns_a_parseable_list_with_the_sims_usage(start_sim: StartSim) -> None:
    """A whole answer is a list of countries with the token usage the simulator reported."""
    backend = (await start_sim())()
    completion = await backend.complete(MESSAGES, max_tokens=500)
    count, real = _real_share(completion.text)
    assert 12 <= count <= 18 and real > 0.8
    assert completion.usage.prompt_tokens == sum(len(m.content) for m in MESSAGES) // 4
    assert completion.usage.completion_tokens == len(completion.text) // 4
    assert completion.model == "sim-countries"
    assert completion.finish_reason == "stop"
    assert completion.attempts == 1


async def test_json_mode_is_accepted(start_sim: StartSim) -> None:
    """response_format is accepted (and not dropped as unsupported)."""
    backend = (await start_sim())()
    completion = await backend.complete(MESSAGES, json_mode=True)
    assert _real_share(completion.text)[0] >= 12


async def test_stream_returns_deltas_and_a_completion_with_usage(start_sim: StartSim) -> None:
    """A streamed answer arrives in several deltas; its completion carries the sim's usage."""
    backend = (await start_sim())()
    deltas, completion = await _stream(backend)
    assert len(deltas) > 3
    assert completion is not None
    assert completion.text == "".join(deltas)
    count, real = _real_share(completion.text)
    assert 12 <= count <= 18 and real > 0.8
    assert completion.usage.completion_tokens == len(completion.text) // 4  # reported, not estimated
    assert completion.finish_reason == "stop"


async def test_concurrent_calls_all_answer(start_sim: StartSim) -> None:
    """More calls than the concurrency bound all complete, each with its own answer."""
    backend = (await start_sim())(concurrency=3)
    completions = await asyncio.gather(*(backend.complete(MESSAGES) for _ in range(8)))
    assert len({completion.text for completion in completions}) == 8


async def test_rate_limits_are_ridden_out_by_retries(start_sim: StartSim) -> None:
    """Under a 50% 429 rate with a short Retry-After every call succeeds, some after retries."""
    make = await start_sim(SimParams.fault_free().replace(rate_limit_rate=0.5, retry_after_s=0.02))
    backend = make(max_attempts=12)
    completions = [await backend.complete(MESSAGES) for _ in range(8)]
    _, streamed = await _stream(backend)
    assert streamed is not None
    attempts = [completion.attempts for completion in [*completions, streamed]]
    assert all(_real_share(completion.text)[0] >= 12 for completion in completions)
    assert max(attempts) > 1
    assert sum(attempts) > len(attempts)


async def test_rate_limit_with_no_attempts_left_is_reported_with_retry_after(start_sim: StartSim) -> None:
    """With one attempt allowed, the 429 comes out as LLMRateLimited with the server's hint."""
    make = await start_sim(SimParams.fault_free().replace(rate_limit_rate=1.0, retry_after_s=0.25))
    with pytest.raises(LLMRateLimited) as raised:
        await make(max_attempts=1).complete(MESSAGES)
    assert raised.value.retry_after_s == pytest.approx(0.25)


async def test_server_errors_raise_after_max_attempts(start_sim: StartSim, caplog: pytest.LogCaptureFixture) -> None:
    """A server that always answers 500 costs max_attempts tries, then LLMServerError."""
    make = await start_sim(SimParams.fault_free().replace(server_error_rate=1.0))
    backend = make(max_attempts=3)
    with caplog.at_level(logging.WARNING, logger="node.llm.openai_backend"):
        with pytest.raises(LLMServerError) as raised:
            await backend.complete(MESSAGES)
    assert raised.value.status == 500
    retries = [record for record in caplog.records if "retrying" in record.getMessage()]
    assert len(retries) == 2
    with pytest.raises(LLMServerError):
        await _stream(backend)


async def test_hang_gives_timeout(start_sim: StartSim) -> None:
    """A server that never answers makes complete() and stream() raise LLMTimeout."""
    make = await start_sim(SimParams.fault_free().replace(hang_rate=1.0), hang_s=0.3)
    backend = make(request_timeout_s=0.1, connect_timeout_s=0.1, max_attempts=1)
    with pytest.raises(LLMTimeout):
        await backend.complete(MESSAGES)
    with pytest.raises(LLMTimeout):
        await _stream(backend)


async def test_truncated_answer_arrives_with_finish_reason_length(start_sim: StartSim) -> None:
    """A cut answer is not an error: its finish_reason says "length", whole or streamed."""
    backend = (await start_sim(SimParams.fault_free().replace(truncate_rate=1.0)))()
    assert (await backend.complete(MESSAGES)).finish_reason == "length"
    _, streamed = await _stream(backend)
    assert streamed is not None and streamed.finish_reason == "length"


async def test_system_only_prompt_still_answers(start_sim: StartSim) -> None:
    """Odd prompts get an answer, not an error: the model answers something to anything."""
    backend = (await start_sim())()
    completion = await backend.complete([ChatMessage("system", "Be brief.")])
    assert completion.text
