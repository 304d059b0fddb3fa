"""Tests for node.budget: the gate, the usage records and the start rate of one node's LLM calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from node.budget import Budget, BudgetConfig, BudgetSpent
from node.codec import MAX_CALL_TOKENS, decode_record, encode_record
from node.errors import ConfigError, LLMError, LLMRateLimited, LLMServerError
from node.hlc import HybridClock
from node.llm.base import ChatMessage, Completion, Usage
from node.producer import Producer, ProducerConfig
from node.records import BudgetRecord, Record, UsageRecord
from node.spend import BudgetLimits, Spend
from node.state import NodeState
from node.store import Store
from tests.node.conftest import RecordingSleep, make_backend

TOPIC = "countries of the world"
MESSAGES = (ChatMessage("user", "List countries of the world as JSON."),)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class ClockSleep:
    """A sleep that moves a fake clock on at once, and remembers each wait."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.t += seconds


class GatedBackend:
    """A fake endpoint whose streams send one delta, then wait for ``release`` to finish (or fail)."""

    name = "gated"

    def __init__(self, usage: Usage | None = None) -> None:
        self.release = asyncio.Event()
        self.usage = usage or Usage(400, 100)
        self.sent = 0
        self.failure: LLMError | None = None
        self.closed = False

    def stream(self, messages: Sequence[ChatMessage], **kwargs: object) -> _GatedStream:
        return _GatedStream(self)

    async def complete(self, messages: Sequence[ChatMessage], **kwargs: object) -> Completion:
        self.sent += 1
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return Completion("[]", self.usage)

    async def aclose(self) -> None:
        self.closed = True


class _GatedStream:
    def __init__(self, backend: GatedBackend) -> None:
        self._backend = backend
        self.completion: Completion | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        backend = self._backend
        backend.sent += 1
        yield '["Norway", '
        await backend.release.wait()
        if backend.failure is not None:
            raise backend.failure
        yield '"Sweden"]'
        self.completion = Completion('["Norway", "Sweden"]', backend.usage, attempts=1)


async def _drain(stream: object) -> str:
    return "".join([delta async for delta in stream])  # type: ignore[attr-defined]


class Harness:
    """A node's store, state and budget, as ``node.assembly`` wires them."""

    def __init__(self, store: Store, config: BudgetConfig, clock: FakeClock) -> None:
        self.store = store
        self.state = NodeState()
        self.committed: list[Record] = []
        self.clock = clock
        self.sleep = ClockSleep(clock)
        self.budget = Budget(config, state=self.state, store=store, clock=HybridClock(lambda: 1_000.0),
                             on_committed=self.committed.extend, now=clock, sleep=self.sleep)  # fmt: skip

    async def usage_records(self) -> list[UsageRecord]:
        return [record for record in await self.store.load_records() if isinstance(record, UsageRecord)]


async def _harness(tmp_path: Path, **config: object) -> Harness:
    store = await Store.open(tmp_path, topic=TOPIC, node_name="n1", inline=True)
    harness = Harness(store, BudgetConfig(**config), FakeClock())  # type: ignore[arg-type]
    await harness.budget.announce()
    return harness


async def test_a_streamed_call_commits_one_usage_record_with_the_reported_tokens(tmp_path: Path) -> None:
    harness = await _harness(tmp_path)
    backend = make_backend()
    metered = harness.budget.wrap(backend)
    stream = metered.stream(MESSAGES, json_mode=True)
    text = await _drain(stream)
    assert text and stream.completion is not None
    usage = stream.completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert await harness.usage_records() == [UsageRecord("n1", 1, usage.prompt_tokens, usage.completion_tokens, 1_000_000 << 16)]
    assert harness.state.spend() == Spend(1, usage.prompt_tokens, usage.completion_tokens)
    assert harness.committed == await harness.usage_records()  # gossiped like every commit
    assert harness.budget.in_flight == 0
    await harness.store.aclose()


async def test_a_whole_answer_is_metered_too_and_numbering_resumes_after_a_restart(tmp_path: Path) -> None:
    """Verification and split calls use ``complete``; a restarted node numbers on from its records."""
    harness = await _harness(tmp_path)
    metered = harness.budget.wrap(make_backend())
    for _ in range(2):
        await metered.complete(MESSAGES, json_mode=True)
    await harness.store.aclose()
    async with await Store.open(tmp_path, topic=TOPIC, inline=True) as store:
        state = NodeState()
        state.apply_all(await store.load_records())
        budget = Budget(BudgetConfig(), state=state, store=store, clock=HybridClock(), now=FakeClock())
        await budget.wrap(make_backend()).complete(MESSAGES)
        calls = sorted(r.call for r in await store.load_records() if isinstance(r, UsageRecord))
    assert calls == [1, 2, 3]


async def test_a_call_in_flight_counts_against_the_budget_before_it_ends(tmp_path: Path) -> None:
    """Budget 2: two calls in flight, nothing spent yet — the third is refused, unsent."""
    harness = await _harness(tmp_path, calls=2)
    backend = GatedBackend()
    metered = harness.budget.wrap(backend)
    readers = [asyncio.create_task(_drain(metered.stream(MESSAGES))) for _ in range(2)]
    while backend.sent < 2:
        await asyncio.sleep(0)
    assert harness.state.spend().calls == 0 and harness.budget.in_flight == 2
    with pytest.raises(BudgetSpent, match="budget of 2 LLM calls reached: 0 made, 2 in flight"):
        await _drain(metered.stream(MESSAGES))
    assert backend.sent == 2
    backend.release.set()
    await asyncio.gather(*readers)
    assert harness.state.spend().calls == 2 and harness.budget.in_flight == 0
    assert harness.budget.stats.high_water_calls == 2
    with pytest.raises(BudgetSpent, match="budget of 2 LLM calls reached: 2 made"):
        await metered.complete(MESSAGES)
    await harness.store.aclose()


async def test_the_token_budget_reserves_the_mean_call_for_each_call_in_flight(tmp_path: Path) -> None:
    """1,200 tokens, 500 a call: after two calls (1,000 spent) one more may start, but not beside another."""
    harness = await _harness(tmp_path, tokens=1200)
    backend = GatedBackend(Usage(400, 100))
    backend.release.set()
    metered = harness.budget.wrap(backend)
    for _ in range(2):
        await metered.complete(MESSAGES)
    assert harness.budget.spent_reason() is None
    backend.release.clear()
    first = asyncio.create_task(metered.complete(MESSAGES))
    while harness.budget.in_flight == 0:
        await asyncio.sleep(0)
    with pytest.raises(BudgetSpent, match="budget of 1,200 tokens reached: 1,000 used, 1 in flight"):
        await metered.complete(MESSAGES)
    backend.release.set()
    await first
    assert harness.state.spend().tokens == 1500  # the overshoot: one call's worth
    await harness.store.aclose()


async def test_a_failed_call_counts_as_a_call_and_a_429_slows_the_node(tmp_path: Path) -> None:
    """A 429 before any text costs a call of 0 tokens; the start rate halves and pauses for Retry-After."""
    harness = await _harness(tmp_path, max_calls_per_minute=60)
    backend = GatedBackend()
    backend.release.set()
    backend.failure = LLMRateLimited("429", retry_after_s=7.0)
    metered = harness.budget.wrap(backend)
    with pytest.raises(LLMRateLimited):
        await metered.complete(MESSAGES)
    assert harness.state.spend() == Spend(1, 0, 0)
    assert harness.budget.rate.rate_per_min == 30
    assert harness.budget.rate.paused_s() == pytest.approx(7.0)
    assert harness.budget.stats.rate_limited == 1
    backend.failure = None
    await metered.complete(MESSAGES)
    assert harness.sleep.delays == [pytest.approx(7.0)]  # the next call waited out the pause
    await harness.store.aclose()


async def test_a_stream_cut_short_is_billed_by_what_arrived(tmp_path: Path) -> None:
    """A stream failing after some text reported no usage: the prompt and the text are estimated."""
    harness = await _harness(tmp_path)
    backend = GatedBackend()
    backend.failure = LLMServerError("500 mid-stream")
    backend.release.set()
    with pytest.raises(LLMServerError):
        await _drain(harness.budget.wrap(backend).stream(MESSAGES))
    spend = harness.state.spend()
    assert spend.calls == 1
    assert spend.prompt_tokens == -(-len(MESSAGES[0].content) // 4)
    assert spend.completion_tokens == -(-len('["Norway", ') // 4)
    await harness.store.aclose()


async def test_a_cancelled_call_leaves_no_record_and_frees_its_slot(tmp_path: Path) -> None:
    harness = await _harness(tmp_path, calls=1)
    backend = GatedBackend()
    reader = asyncio.create_task(_drain(harness.budget.wrap(backend).stream(MESSAGES)))
    while backend.sent == 0:
        await asyncio.sleep(0)
    assert harness.budget.spent_reason() is not None  # the one allowed call is in flight
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    assert harness.budget.in_flight == 0 and harness.state.spend().calls == 0
    assert harness.budget.spent_reason() is None
    await harness.store.aclose()


async def test_closing_a_metered_stream_frees_its_slot_and_closes_the_endpoint_stream(tmp_path: Path) -> None:
    """The producer closes a stream whose entries the disk refused: the call no longer counts in flight."""
    harness = await _harness(tmp_path)
    stream = harness.budget.wrap(GatedBackend()).stream(MESSAGES)
    reader = aiter(stream)
    assert await anext(reader) == '["Norway", '
    assert harness.budget.in_flight == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert harness.budget.in_flight == 0
    await harness.store.aclose()


async def test_the_rate_ceiling_spaces_calls_on_the_clock(tmp_path: Path) -> None:
    """--max-calls-per-minute 20: the 2nd and 3rd calls each wait 3 s."""
    harness = await _harness(tmp_path, max_calls_per_minute=20)
    metered = harness.budget.wrap(make_backend())
    for _ in range(3):
        await metered.complete(MESSAGES)
    assert harness.sleep.delays == [pytest.approx(3.0), pytest.approx(3.0)]
    assert harness.budget.stats.rate_waits == 2
    await harness.store.aclose()


async def test_a_peers_stricter_budget_holds_here_too(tmp_path: Path) -> None:
    """This node set no budget; a peer's record of 1 call stops it once one call is known anywhere."""
    harness = await _harness(tmp_path)
    metered = harness.budget.wrap(make_backend())
    await metered.complete(MESSAGES)
    harness.state.apply(BudgetRecord("n2", 1, 0, 5))
    assert harness.state.budget_limits() == BudgetLimits(1, 0)
    with pytest.raises(BudgetSpent):
        await metered.complete(MESSAGES)
    await harness.store.aclose()


async def test_a_node_announces_its_budget_once_and_again_only_when_it_changes(tmp_path: Path) -> None:
    async with await Store.open(tmp_path, topic=TOPIC, node_name="n1", inline=True) as store:
        state = NodeState()
        quiet = Budget(BudgetConfig(), state=state, store=store, clock=HybridClock(lambda: 50.0), now=FakeClock())
        await quiet.announce()
        assert state.budget_of("n1") is None  # no limit, none before: nothing to say
        for calls in (200, 200, 0):
            # each restart's clock is behind the last record's: the new record must still be the newest
            budget = Budget(BudgetConfig(calls=calls), state=state, store=store, clock=HybridClock(lambda: 1.0),
                            now=FakeClock())  # fmt: skip
            await budget.announce()
        budgets = [record for record in await store.load_records() if isinstance(record, BudgetRecord)]
    assert [record.calls for record in budgets] == [200, 0]
    assert state.budget_limits() == BudgetLimits()  # the last restart lifted this node's limit


async def test_the_producer_stops_at_the_network_budget_with_a_clear_reason(tmp_path: Path) -> None:
    """Budget 5 and four workers: exactly five calls are made, and the stop reason says why."""
    sleep = RecordingSleep()
    async with await Store.open(tmp_path, topic=TOPIC, inline=True) as store:
        state = NodeState()
        budget = Budget(BudgetConfig(calls=5), state=state, store=store, clock=HybridClock(), now=FakeClock())
        await budget.announce()
        backend = make_backend(sleep=sleep)
        producer = Producer(config=ProducerConfig(concurrency=4), backend=budget.wrap(backend), store=store,
                            state=state, clock=HybridClock(), topic=TOPIC, budget=budget, sleep=sleep)  # fmt: skip
        reason = await producer.run(asyncio.Event())
    assert reason.startswith("network budget of 5 LLM calls reached: ")
    assert state.spend().calls == 5 == producer.stats.calls_started == backend.calls


class SplittingSource:
    """A partition source that, like the planner splitting a leaf, makes an LLM call of its own in ``acquire``."""

    def __init__(self, backend: object) -> None:
        self.backend = backend
        self.acquired = 0

    async def acquire(self) -> str | None:
        await self.backend.complete(MESSAGES)  # type: ignore[attr-defined]
        self.acquired += 1
        return ""

    def release(self, partition: str) -> None:
        pass

    def known_for(self, partition: str) -> list[str]:
        return []


async def test_a_call_refused_mid_step_stops_the_producer_without_counting_a_call(tmp_path: Path) -> None:
    """Budget 1, spent by a split call inside acquire: the enumeration is refused, the producer stops."""
    async with await Store.open(tmp_path, topic=TOPIC, inline=True) as store:
        state = NodeState()
        budget = Budget(BudgetConfig(calls=1), state=state, store=store, clock=HybridClock(), now=FakeClock())
        await budget.announce()
        backend = make_backend()
        metered = budget.wrap(backend)
        source = SplittingSource(metered)
        producer = Producer(config=ProducerConfig(concurrency=1), backend=metered, store=store, state=state,
                            clock=HybridClock(), topic=TOPIC, partitions=source, budget=budget)  # fmt: skip
        reason = await producer.run(asyncio.Event())
    assert not issubclass(BudgetSpent, LLMError)  # the planner's and verifier's LLMError handlers let it through
    assert reason == "network budget of 1 LLM calls reached: 1 made"
    assert (source.acquired, producer.stats.calls_started, producer.stats.calls_failed) == (1, 0, 0)
    assert state.spend().calls == 1 == backend.calls


@pytest.mark.parametrize(("field", "value"), [("calls", -1), ("tokens", 1 << 63), ("max_calls_per_minute", float("nan"))])
def test_bad_budget_settings_are_refused_naming_the_option(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match="--"):
        BudgetConfig(**{field: value})  # type: ignore[arg-type]


async def test_closing_the_metered_backend_closes_the_endpoint(tmp_path: Path) -> None:
    harness = await _harness(tmp_path)
    backend = GatedBackend()
    await harness.budget.wrap(backend).aclose()
    assert backend.closed
    await harness.store.aclose()


async def test_token_counts_an_endpoint_reports_out_of_range_are_bounded_so_every_node_decodes_them(
    tmp_path: Path,
) -> None:
    """A buggy endpoint's -1 or 2**40 tokens: the usage record is stored within what the codec accepts,
    so peers and a restart read it (an unbounded one would be stored here and refused everywhere else)."""
    harness = await _harness(tmp_path)
    started = await harness.budget.admit()
    await harness.budget.settle(started, Usage(prompt_tokens=-1, completion_tokens=2**40), None)
    (record,) = await harness.usage_records()
    assert (record.prompt_tokens, record.completion_tokens) == (0, MAX_CALL_TOKENS)
    assert decode_record(encode_record(record)) == record
    await harness.store.aclose()
    reopened = await Store.open(tmp_path, topic=TOPIC, node_name="n1", inline=True)
    assert record in await reopened.load_records()
    await reopened.aclose()


async def test_a_budget_full_only_counting_calls_in_flight_is_a_wait_not_a_stop(tmp_path: Path) -> None:
    """10,000 tokens, 8,000 spent in 8 calls, 2 in flight reserved at 1,000 each: 'reached' for now;
    they end at 200 each, and there is room again — the exhausted reason never said otherwise."""
    harness = await _harness(tmp_path, tokens=10_000)
    backend = GatedBackend(Usage(800, 200))
    backend.release.set()
    metered = harness.budget.wrap(backend)
    for _ in range(8):
        await metered.complete(MESSAGES)
    backend.usage = Usage(150, 50)
    backend.release.clear()
    flying = [asyncio.create_task(metered.complete(MESSAGES)) for _ in range(2)]
    while harness.budget.in_flight < 2:
        await asyncio.sleep(0)
    assert harness.budget.spent_reason() is not None and harness.budget.exhausted_reason() is None
    backend.release.set()
    await asyncio.gather(*flying)
    assert harness.state.spend().tokens == 8_400
    assert harness.budget.spent_reason() is None and harness.budget.exhausted_reason() is None
    await harness.store.aclose()


async def test_a_stop_does_not_wait_for_the_next_start_slot(tmp_path: Path) -> None:
    """1 call a minute, two workers: after the first call both wait for a slot a minute away; a stop
    ends the run at once — not after the 30 s stop grace — and no call is counted for the waits."""
    async with await Store.open(tmp_path, topic=TOPIC, inline=True) as store:
        state = NodeState()
        budget = Budget(BudgetConfig(max_calls_per_minute=1), state=state, store=store, clock=HybridClock())
        await budget.announce()
        backend = make_backend(sleep=RecordingSleep())
        producer = Producer(config=ProducerConfig(concurrency=2, stop_grace_s=30.0), backend=budget.wrap(backend),
                            store=store, state=state, clock=HybridClock(), topic=TOPIC, budget=budget)  # fmt: skip
        stop = asyncio.Event()
        run = asyncio.create_task(producer.run(stop))
        while state.spend().calls < 1 or budget.stats.rate_waits < 1:
            await asyncio.sleep(0.01)
        stopped_at = asyncio.get_running_loop().time()
        stop.set()
        reason = await asyncio.wait_for(run, timeout=60)
        took_s = asyncio.get_running_loop().time() - stopped_at
    assert reason == "stopped" and backend.calls == 1 == state.spend().calls
    assert took_s < 5.0, f"the stop waited {took_s:.1f} s for a start slot (grace 30 s)"
    assert budget.stats.refused == 0
