"""Tests for partitioning.ask (the adaptive ask), its config knobs, and the judge per item really asked."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import ConfigError
from node.hlc import HybridClock
from node.llm.base import ChatMessage, Completion, CompletionStream
from node.llm.sim.backend import SimulatedBackend
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.reading import TaskKind, read_request
from node.llm.sim.universe import load_universe
from node.producer import Producer, ProducerConfig
from node.prompts import PARTITION_SEPARATOR
from node.state import NodeState
from node.store import Store
from partitioning.ask import ask_for, asks_of, window_asked
from partitioning.config import PartitionConfig
from partitioning.planner import Planner
from partitioning.policy import LeafStats, Verdict, judge
from tests import suite_report

ITEMS = 20
# window 3 and one yield share (0.4), not the tuned defaults: round numbers; ask_gain 2.5, min_ask 5
FIXED = PartitionConfig(window_calls=3, low_yield_share=0.4, split_yield_share=0.4)
ADAPTIVE = dataclasses.replace(FIXED, adaptive_ask=True)
TOPIC = "countries of the world"


@pytest.mark.parametrize(
    ("recent_fresh", "config", "ask"),
    [
        pytest.param([1, 0, 0], FIXED, 20, id="off-always-full"),
        pytest.param([], ADAPTIVE, 20, id="untried-full"),
        pytest.param([18, 17, 19], ADAPTIVE, 20, id="productive-capped"),
        pytest.param([8, 8, 8], ADAPTIVE, 20, id="at-low-yield-share-still-full"),
        pytest.param([4, 4, 4], ADAPTIVE, 10, id="gain-times-yield"),
        pytest.param([3, 3, 4], ADAPTIVE, 9, id="rounded-up"),  # 2.5 × 10/3 = 8.33
        pytest.param([0, 1, 0], ADAPTIVE, 5, id="dry-floor"),
        pytest.param([20, 20, 0, 0, 1], ADAPTIVE, 5, id="only-the-window-counts"),
        pytest.param([0], dataclasses.replace(ADAPTIVE, min_ask=50), 20, id="floor-capped-at-items"),
        pytest.param([2, 2, 2], dataclasses.replace(ADAPTIVE, ask_gain=1.0, min_ask=1), 2, id="gain-one"),
    ],
)
def test_ask_for(recent_fresh: list[int], config: PartitionConfig, ask: int) -> None:
    """The ask is ceil(gain × recent fresh per call) within min_ask..items_per_call; full when off or untried."""
    assert ask_for(recent_fresh, config, ITEMS) == ask


def test_asks_of_recomputes_each_call_from_the_calls_before_it() -> None:
    """A leaf's history of fresh counts gives back the ask each call was made with."""
    fresh = [20, 6, 2, 1, 0, 5, 5]
    assert asks_of(fresh, ADAPTIVE, ITEMS) == [
        20,  # untried
        20,  # 2.5 × 20, capped
        20,  # 2.5 × 13
        ceil_ask(20, 6, 2),  # 2.5 × 28/3 = 23.3 → capped at 20
        ceil_ask(6, 2, 1),  # 2.5 × 3 = 7.5 → 8
        5,  # 2.5 × 1 = 2.5 → the floor
        ceil_ask(1, 0, 5),  # 2.5 × 2 = 5
    ]
    assert asks_of(fresh, FIXED, ITEMS) == [20] * len(fresh)


def ceil_ask(*fresh: int) -> int:
    return max(5, min(ITEMS, math.ceil(2.5 * sum(fresh) / len(fresh))))


@given(st.lists(st.integers(min_value=0, max_value=ITEMS), max_size=40), st.integers(min_value=1, max_value=6))
def test_window_asked_needs_only_the_tail_of_the_history(fresh: list[int], window: int) -> None:
    """The judge's denominator from the last 2 windows equals the one from the whole history."""
    config = dataclasses.replace(ADAPTIVE, window_calls=window)
    assert window_asked(fresh, config, ITEMS) == sum(asks_of(fresh, config, ITEMS)[-window:])


@pytest.mark.parametrize(
    ("recent_new", "recent_asked", "verdict"),
    [
        pytest.param(4, 15, Verdict.RETIRE, id="dry-probes-retire"),  # 0.27 per item asked
        pytest.param(6, 15, Verdict.KEEP, id="small-asks-at-share-keep"),  # 0.40: the fixed rule would retire (6/60)
        pytest.param(12, 15, Verdict.KEEP, id="productive-probes-keep"),
        pytest.param(23, None, Verdict.RETIRE, id="none-means-full-asks"),  # 23/60, as before
        pytest.param(24, None, Verdict.KEEP, id="none-at-share"),
    ],
)
def test_judge_divides_by_the_items_really_asked(recent_new: int, recent_asked: int | None, verdict: Verdict) -> None:
    """Low yield stays 'fresh entries per item asked < low_yield_share', whatever each call asked."""
    stats = LeafStats(path="Europe", depth=1, calls=6, recent_calls=3, recent_new=recent_new, known=5,
                      known_tokens=50, recent_asked=recent_asked)  # fmt: skip
    assert judge(stats, ADAPTIVE, ITEMS).verdict is verdict


def _run_leaf(config: PartitionConfig, stock: int, invent_share: float = 0.25) -> tuple[int, int, int]:
    """A leaf the model knows ``stock`` more items of: each call gives min(stock, ask) real ones and
    invents ``invent_share`` of the slots it cannot fill. Calls until the judge retires it.
    Returns (calls, real found, invented)."""
    fresh: list[int] = []
    real_found = invented = 0
    for _ in range(50):
        window = fresh[-config.window_calls :]
        asked = window_asked(fresh, config, ITEMS) if config.adaptive_ask and window else None
        stats = LeafStats(path="x", depth=1, calls=len(fresh), recent_calls=len(window), recent_new=sum(window),
                          known=5, known_tokens=50, recent_asked=asked)  # fmt: skip
        if judge(stats, config, ITEMS).verdict is Verdict.RETIRE:
            return len(fresh), real_found, invented
        ask = ask_for(window, config, ITEMS)
        real = min(stock, ask)
        made_up = round(invent_share * (ask - real))
        stock -= real
        real_found += real
        invented += made_up
        fresh.append(real + made_up)
    raise AssertionError("the leaf was never retired")


@pytest.mark.parametrize("stock", [0, 3, 5, 10, 25, 60])
def test_a_drying_leaf_is_retired_after_no_more_calls_and_with_no_more_inventions(stock: int) -> None:
    """Adaptive asks still retire a dry leaf, in no more calls than fixed asks, finding as much and inventing no more."""
    fixed_calls, fixed_real, fixed_invented = _run_leaf(FIXED, stock)
    calls, real, invented = _run_leaf(ADAPTIVE, stock)
    suite_report.record("adaptive ask (issue #15): a leaf with N items left, 25% of empty slots invented",
                        f"N = {stock}", fixed_calls=fixed_calls, adaptive_calls=calls,
                        fixed_invented=fixed_invented, adaptive_invented=invented)  # fmt: skip
    assert calls <= fixed_calls
    assert real == fixed_real == stock
    assert invented <= fixed_invented
    if stock <= 5:  # dry within its first call: the next calls are small probes
        assert invented < fixed_invented
    # A leaf whose first call found ~10 real items keeps a window mean >= 8 fresh per call, so
    # its next calls are still full asks: the gain of 2.5 helps only below 0.4 fresh per item.


@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed-ask", "adaptive-ask"])
@pytest.mark.parametrize("stock", [0, 10, 60])
def test_at_the_shipped_thresholds_a_leaf_dry_but_for_its_inventions_is_retired(stock: int, adaptive: bool) -> None:
    """Inventions are fresh to the list; at the defaults a leaf whose empty slots are a quarter
    invented (the simulator's exhausted-part rate) is still retired within a window of going dry."""
    config = PartitionConfig(adaptive_ask=adaptive)
    calls, real, _ = _run_leaf(config, stock, invent_share=0.25)
    assert real == stock
    assert calls <= math.ceil(stock / ITEMS) + config.window_calls


@pytest.mark.parametrize(
    "changes", [{"ask_gain": 0.0}, {"ask_gain": -1.0}, {"ask_gain": math.nan}, {"ask_gain": math.inf}, {"min_ask": 0}]
)
def test_bad_ask_knobs_are_refused(changes: dict[str, float]) -> None:
    """A gain that is not a finite positive number, or a floor below one item, is a ConfigError."""
    with pytest.raises(ConfigError):
        PartitionConfig(**changes)  # type: ignore[arg-type]


class RecordingBackend:
    """The simulated LLM, recording each enumeration call's partition and the count its prompt asks for."""

    def __init__(self, inner: SimulatedBackend) -> None:
        self._inner = inner
        self.asks: list[tuple[str, int]] = []

    @property
    def name(self) -> str:
        return "recording"

    async def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, json_mode: bool = False
    ) -> Completion:
        return await self._inner.complete(messages, max_tokens=max_tokens, json_mode=json_mode)

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, json_mode: bool = False
    ) -> CompletionStream:
        request = read_request(messages)
        if request.kind is TaskKind.ENUMERATE:
            self.asks.append((PARTITION_SEPARATOR.join(request.part), request.count))
        return self._inner.stream(messages, max_tokens=max_tokens, json_mode=json_mode)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


async def _produce(tmp_path: Path, config: PartitionConfig) -> tuple[RecordingBackend, NodeState]:
    model = SimulatedModel(load_universe("countries"), SimParams.fault_free())
    backend = RecordingBackend(SimulatedBackend(model, seed=3, sleep=_no_wait))
    async with await Store.open(tmp_path, topic=TOPIC, node_name="n1") as store:
        state = NodeState()
        planner = Planner(config=config, state=state, store=store, clock=HybridClock(), backend=backend,
                          topic=TOPIC, members=lambda: {"n1": 1.0}, items_per_call=ITEMS)  # fmt: skip
        producer = Producer(
            config=ProducerConfig(concurrency=1, max_calls=120), backend=backend, store=store, state=state,
            clock=HybridClock(), topic=TOPIC, partitions=planner, should_stop=planner.reason_to_stop,
        )  # fmt: skip
        await producer.run(asyncio.Event())
    return backend, state


async def test_the_producer_asks_what_the_planner_sizes_and_the_judge_recomputes_it(tmp_path: Path) -> None:
    """End to end on the simulated LLM: drying leaves get smaller asks, and with calls that do not
    overlap the asks recomputed from the records are exactly the asks the prompts carried."""
    backend, state = await _produce(tmp_path / "adaptive", ADAPTIVE)
    asks = [count for _, count in backend.asks]
    assert asks and all(ADAPTIVE.min_ask <= count <= ITEMS for count in asks)
    assert min(asks) < ITEMS  # some leaf ran low and was probed with a smaller ask
    sent: dict[str, list[int]] = defaultdict(list)
    for partition, count in backend.asks:
        sent[partition].append(count)
    for partition, counts in sent.items():
        fresh = [call.fresh for call in state.calls_in(partition)]
        assert asks_of(fresh, ADAPTIVE, ITEMS) == counts, partition


async def test_with_the_ask_off_every_call_asks_items_per_call(tmp_path: Path) -> None:
    """The fixed ask (the default) sends items_per_call in every enumeration prompt."""
    backend, _ = await _produce(tmp_path / "fixed", FIXED)
    assert backend.asks and {count for _, count in backend.asks} == {ITEMS}
