"""Tests for node.producer: commits as entries arrive, no duplicate acceptance, faults survived."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from node.errors import ConfigError
from node.hlc import HybridClock
from node.llm.base import Completion, Usage
from node.llm.sim.params import SimParams
from node.producer import Producer, ProducerConfig
from node.records import EntryRecord, MatchKind, ObservationRecord
from node.state import NodeState
from node.store import Store
from tests.node.conftest import RecordingSleep, make_backend

TOPIC = "countries of the world"


async def _producer(store: Store, state: NodeState, backend: object, sleep: RecordingSleep, **config: object) -> Producer:
    return Producer(
        config=ProducerConfig(**config),  # type: ignore[arg-type]
        backend=backend,  # type: ignore[arg-type]
        store=store,
        state=state,
        clock=HybridClock(),
        topic=TOPIC,
        sleep=sleep,
    )


async def test_a_run_commits_each_new_entry_once_with_one_observation_per_call(tmp_path: Path) -> None:
    """Every accepted entry is in the store exactly once, and each call left an observation."""
    sleep = RecordingSleep()
    backend = make_backend(sleep=sleep)
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        state = NodeState()
        producer = await _producer(store, state, backend, sleep, concurrency=3, max_calls=12)
        reason = await producer.run(asyncio.Event())
        records = await store.load_records()
    entries = [r for r in records if isinstance(r, EntryRecord)]
    observations = [r for r in records if isinstance(r, ObservationRecord)]
    assert "budget" in reason
    assert len(observations) == 12 == producer.stats.calls_started
    assert len({e.id for e in entries}) == len(entries) == producer.stats.new_entries > 20
    assert len(state.entries) <= len(entries)  # fuzzy-clustered lines never exceed entries
    new_items = [i for o in observations for i in o.items if i.match is MatchKind.NEW]
    assert {i.entry_id for i in new_items} == {e.id for e in entries}


async def test_known_entries_of_the_partition_go_into_later_prompts(tmp_path: Path) -> None:
    """The shared-state lever: after the first call, prompts list what is already known."""
    sleep = RecordingSleep()
    backend = make_backend(sleep=sleep)
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        state = NodeState()
        producer = await _producer(store, state, backend, sleep, concurrency=1, max_calls=3)
        await producer.run(asyncio.Event())
    known_lists = []
    for messages in backend.prompts:
        match = re.search(r"do not repeat them\): (\[.*?\])\n", messages[-1].content)
        assert match
        known_lists.append(json.loads(match.group(1)))
    assert known_lists[0] == []
    assert 0 < len(known_lists[1]) < len(known_lists[2])
    shown = {line.record.text for line in state.entries}
    assert set(known_lists[2]) <= shown | {a.text for line in state.entries for a in line.aliases}


async def test_llm_faults_back_off_and_never_stop_the_producer(tmp_path: Path) -> None:
    """With half the calls rate-limited, the producer keeps going and honours Retry-After."""
    sleep = RecordingSleep()
    params = SimParams.fault_free().replace(rate_limit_rate=0.5, retry_after_s=7.0)
    backend = make_backend(params, sleep=sleep)
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        producer = await _producer(store, NodeState(), backend, sleep, concurrency=2, max_calls=20,
                                   backoff_base_s=0.1, backoff_max_s=1.0)  # fmt: skip
        await producer.run(asyncio.Event())
    stats = producer.stats
    assert stats.calls_started == 20
    assert 3 <= stats.calls_failed <= 17 and stats.errors == {"LLMRateLimited": stats.calls_failed}
    assert stats.calls_ok == 20 - stats.calls_failed and stats.new_entries > 0
    assert sum(1 for delay in sleep.delays if delay >= 7.0) == stats.calls_failed


async def test_garbled_answers_count_as_parse_failures_not_crashes(tmp_path: Path) -> None:
    """Garbage from the LLM yields no entries and a counted parse failure."""
    sleep = RecordingSleep()
    backend = make_backend(SimParams.fault_free().replace(garble_rate=1.0), sleep=sleep)
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        producer = await _producer(store, NodeState(), backend, sleep, max_calls=8)
        await producer.run(asyncio.Event())
        entries = [r for r in await store.load_records() if isinstance(r, EntryRecord)]
    assert producer.stats.calls_ok == 8
    assert producer.stats.parse_failures >= 3  # some garbage happens to contain name-like tokens
    assert producer.stats.new_entries == len(entries)


async def test_stop_hook_and_stop_event_end_the_run(tmp_path: Path) -> None:
    """The exhaustion hook's reason is reported; a set stop event starts no call."""
    sleep = RecordingSleep()
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        state = NodeState()
        producer = Producer(
            config=ProducerConfig(concurrency=2), backend=make_backend(sleep=sleep), store=store,
            state=state, clock=HybridClock(), topic=TOPIC, sleep=sleep,
            should_stop=lambda: "done" if state.observation_count >= 4 else None,
        )  # fmt: skip
        assert await producer.run(asyncio.Event()) == "done"
        assert 4 <= producer.stats.calls_started <= 5
        stopped = asyncio.Event()
        stopped.set()
        again = await _producer(store, state, make_backend(sleep=sleep), sleep)
        assert await again.run(stopped) == "stopped" and again.stats.calls_started == 0


async def test_call_numbers_continue_after_a_restart(tmp_path: Path) -> None:
    """Observation records of a restarted node never reuse a call number."""
    sleep = RecordingSleep()
    for _ in range(2):
        async with await Store.open(tmp_path, topic=TOPIC) as store:
            state = NodeState()
            state.apply_all(await store.load_records())
            producer = await _producer(store, state, make_backend(sleep=sleep), sleep, max_calls=3)
            await producer.run(asyncio.Event())
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        calls = [r.call for r in await store.load_records() if isinstance(r, ObservationRecord)]
    assert sorted(calls) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    "bad", [{"concurrency": 0}, {"items_per_call": 0}, {"max_calls": -1}, {"backoff_base_s": 5, "backoff_max_s": 1}]
)
def test_bad_producer_config_is_refused(bad: dict[str, int]) -> None:
    """Invalid settings raise ConfigError naming the problem."""
    with pytest.raises(ConfigError):
        ProducerConfig(**bad)  # type: ignore[arg-type]


class _HangingBackend:
    """A backend whose answers never come (a hung endpoint)."""

    name = "hanging"

    def stream(self, messages: object, **kwargs: object) -> object:
        class _Stream:
            completion = None

            def __aiter__(self) -> object:
                return self

            async def __anext__(self) -> str:
                await asyncio.Event().wait()
                raise StopAsyncIteration

        return _Stream()

    async def aclose(self) -> None:
        return None


async def test_stop_cancels_calls_still_in_flight_after_the_grace_period(tmp_path: Path) -> None:
    """A stop does not wait for a hung LLM call beyond stop_grace_s."""
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        producer = Producer(
            config=ProducerConfig(concurrency=2, stop_grace_s=0.2), backend=_HangingBackend(),  # type: ignore[arg-type]
            store=store, state=NodeState(), clock=HybridClock(), topic=TOPIC,
        )  # fmt: skip
        stop = asyncio.Event()
        running = asyncio.create_task(producer.run(stop))
        await asyncio.sleep(0.1)
        assert producer.stats.calls_started == 2 and not running.done()
        stop.set()
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(running, timeout=5) == "stopped"
        assert asyncio.get_running_loop().time() - started < 2


class _ScriptedStream:
    """One scripted answer, streamed in one delta; ``completion`` is set once it is read."""

    def __init__(self, text: str) -> None:
        self._text: str | None = text
        self.completion: Completion | None = None

    def __aiter__(self) -> _ScriptedStream:
        return self

    async def __anext__(self) -> str:
        if self._text is None:
            raise StopAsyncIteration
        text, self._text = self._text, None
        self.completion = Completion(text=text, usage=Usage(prompt_tokens=40, completion_tokens=10))
        return text


class _ScriptedBackend:
    """Answers enumeration prompts with fixed texts, in order."""

    name = "scripted"

    def __init__(self, answers: list[str]) -> None:
        self._answers = answers

    def stream(self, messages: object, **kwargs: object) -> _ScriptedStream:
        return _ScriptedStream(self._answers.pop(0))

    async def aclose(self) -> None:
        return None


async def test_an_unparseable_answer_is_not_taken_as_the_part_running_dry(tmp_path: Path) -> None:
    """Garbage is no evidence: it records no observation (which would count as a call that found
    nothing) until the model answers so 3 times in a row for the part; an explicitly empty list
    is the model's word and is recorded at once."""
    garbage = "~~~ \x00 ||| ###"
    answers = [garbage, garbage, '{"entries": ["Norway"]}', garbage, garbage, garbage, '{"entries": []}']
    async with await Store.open(tmp_path, topic=TOPIC) as store:
        state = NodeState()
        producer = await _producer(store, state, _ScriptedBackend(answers), RecordingSleep(), concurrency=1,
                                   max_calls=len(answers))  # fmt: skip
        await producer.run(asyncio.Event())
        observations = [r for r in await store.load_records() if isinstance(r, ObservationRecord)]
    assert producer.stats.calls_ok == 7 and producer.stats.parse_failures == 5
    assert [(o.call, len(o.items)) for o in observations] == [(3, 1), (6, 0), (7, 0)]
    assert [call.items for call in state.calls()] == [1, 0, 0]
