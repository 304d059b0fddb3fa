"""Tests for partitioning.planner: picking partitions, splitting (and falling back), retiring, and the producer on top."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from node.errors import LLMRateLimited
from node.hlc import HybridClock
from node.llm.base import ChatMessage, Completion, Usage
from node.llm.sim.backend import SimulatedBackend
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.universe import load_universe
from node.normalize import entry_id
from node.producer import Producer, ProducerConfig
from node.records import EntryRecord, MatchKind, ObservationRecord, ObservedItem, PlanAction, PlanRecord
from node.state import NodeState
from node.store import Store
from partitioning.config import PartitionConfig
from partitioning.labels import letter_set
from partitioning.plan import PartitionPlan
from partitioning.planner import Planner

TOPIC = "cities of Europe"


class ScriptedBackend:
    """Answers split prompts with fixed texts (or errors), in order; records the prompts."""

    def __init__(self, answers: Sequence[str | Exception | Completion]) -> None:
        self._answers = list(answers)
        self.prompts: list[Sequence[ChatMessage]] = []

    @property
    def name(self) -> str:
        return "scripted"

    async def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, json_mode: bool = False
    ) -> Completion:
        self.prompts.append(messages)
        answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Completion):
            return answer
        return Completion(text=answer, usage=Usage(prompt_tokens=50, completion_tokens=20))

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, json_mode: bool = False) -> AsyncIterator[str]:
        raise AssertionError("the planner only makes whole split calls")

    async def aclose(self) -> None:
        pass


def _entry(text: str, partition: str = "", origin: str = "n1", hlc: int = 1) -> EntryRecord:
    return EntryRecord(id=entry_id(text), text=text, partition=partition, origin=origin, hlc=hlc)


def _call(node: str, call: int, partition: str, texts: Sequence[str], *, new: bool = True) -> ObservationRecord:
    match = MatchKind.NEW if new else MatchKind.EXACT
    items = tuple(ObservedItem(entry_id(text), match) for text in texts)
    return ObservationRecord(node=node, call=call, partition=partition, hlc=call, items=items)


def _planner(store: Store, state: NodeState, backend: object, members: dict[str, float] | None = None,
             **config: object) -> Planner:  # fmt: skip
    return Planner(
        config=PartitionConfig(**config),  # type: ignore[arg-type]
        state=state,
        store=store,
        clock=HybridClock(),
        backend=backend,  # type: ignore[arg-type]
        topic=TOPIC,
        members=lambda: members if members is not None else {store.identity.name: 1.0},
        items_per_call=20,
    )


async def _store(tmp_path: Path, name: str = "n1") -> Store:
    return await Store.open(tmp_path / name, topic=TOPIC, node_name=name)


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


NAMES = [f"{first}{second}ville" for first in "ABCDEFGHIJKLMNOPRSTVW" for second in "aeiou"]  # 105 names


async def test_a_fresh_plan_works_on_the_whole_topic(tmp_path: Path) -> None:
    """With no plan records, the only partition is the whole topic."""
    async with await _store(tmp_path) as store:
        planner = _planner(store, NodeState(), ScriptedBackend([]))
        assert await planner.acquire() == ""
        planner.release("")
        assert planner.reason_to_stop() is None


async def test_a_leaf_whose_known_entries_pass_the_budget_is_split_by_the_model(tmp_path: Path) -> None:
    """Past split_known_tokens the owner asks for sub-categories, commits the split and works on a child."""
    backend = ScriptedBackend(['{"categories": ["Northern Europe", "Southern Europe (region)", "Other", "Northern Europe"]}'])
    async with await _store(tmp_path) as store:
        state = NodeState()
        state.apply_all([_entry(name) for name in NAMES])
        planner = _planner(store, state, backend, split_known_tokens=100)
        leaf = await planner.acquire()
        records = await store.load_records()
    splits = [r for r in records if isinstance(r, PlanRecord)]
    assert len(splits) == 1 and splits[0].action is PlanAction.SPLIT and splits[0].partition == ""
    assert splits[0].children == ("Northern Europe", "Southern Europe")  # cleaned: qualifier, vague, duplicate
    assert "prompt share" in splits[0].reason
    assert leaf in ("Northern Europe", "Southern Europe")
    assert planner.stats.split_calls == 1 and planner.stats.splits == 1 and planner.stats.split_fallbacks == 0
    assert "at most 16" in backend.prompts[0][-1].content


@pytest.mark.parametrize(
    "answer",
    ["I'm sorry, I can't help with that.", '{"categories": ["Everything"]}', "]]]]}}}:::: ,,,,",
     LLMRateLimited("429", retry_after_s=1.0)],  # fmt: skip
)
async def test_an_unusable_split_answer_falls_back_to_balanced_letter_ranges(tmp_path: Path, answer: object) -> None:
    """A refusal, one label, garbage or a failed call, three times: the split is alphabetical over the known entries."""
    async with await _store(tmp_path) as store:
        state = NodeState()
        state.apply_all([_entry(name) for name in NAMES])
        backend = ScriptedBackend([answer] * 3)  # type: ignore[list-item]
        planner = _planner(store, state, backend, split_known_tokens=100)
        await planner.acquire()
        assert len(backend.prompts) == 3  # asked split_attempts times before falling back
        [split] = [r for r in await store.load_records() if isinstance(r, PlanRecord)]
    letters = [letter_set(child) for child in split.children]
    assert all(found is not None for found in letters) and 2 <= len(split.children) <= 4
    covered = set().union(*(found for found in letters if found))
    assert set("abcdefghijklmnopqrstuvwxyz") <= covered  # every initial has a child
    assert planner.stats.split_fallbacks == 1 and "alphabetical" in split.reason


async def test_a_dry_small_leaf_is_retired_and_then_the_topic_is_exhausted(tmp_path: Path) -> None:
    """Low yield on a leaf too small to split retires it; with every leaf retired, acquire says stop."""
    async with await _store(tmp_path) as store:
        state = NodeState()
        state.apply_all([_entry("Oslo"), _entry("Bergen")])
        state.apply_all([_call("n1", n, "", ["Oslo", "Bergen"], new=False) for n in range(1, 4)])
        planner = _planner(store, state, ScriptedBackend([]))
        assert await planner.acquire() is None
        [retire] = [r for r in await store.load_records() if isinstance(r, PlanRecord)]
    assert retire.action is PlanAction.RETIRE and retire.partition == "" and "dry" in retire.reason
    assert planner.plan.exhausted
    assert planner.reason_to_stop() == "topic exhausted: all 1 partitions retired"


async def _helper_of_the_root(store: Store, state: NodeState, backend: ScriptedBackend, **config: object) -> Planner:
    """A planner on "helper" for a plan whose root leaf "owner" owns, whatever the hash says."""
    for members in ({"owner": 1.0, "helper": 1.0}, {"owner": 1.0, "helper": 1e-9}):
        planner = _planner(store, state, backend, members=members, **config)
        if planner.owner("") == "owner":
            return planner
    raise AssertionError("a weight of 1e-9 should never win the root")


async def test_under_the_owned_schedule_a_helper_judges_a_leaf_only_when_its_owner_has_not_worked_on_it(
    tmp_path: Path,
) -> None:
    """The owner's recent calls keep others from retiring its leaf; without them, the workers may."""
    dry_calls = [_call("owner", n, "", ["Oslo"], new=False) for n in range(1, 4)]
    async with await _store(tmp_path, "helper") as store:
        state = NodeState()
        state.apply_all([_entry("Oslo"), *dry_calls])
        planner = await _helper_of_the_root(store, state, ScriptedBackend([]))
        assert await planner.acquire() == ""  # the owner is on it: the helper just works
        planner.release("")
        state.apply_all([_call("helper", n, "", ["Oslo"], new=False) for n in range(1, 4)])
        assert await planner.acquire() is None  # the owner left it alone: the helper retires it
    assert planner.stats.retires == 1


async def test_under_the_shared_schedule_any_node_retires_a_dry_leaf_its_owner_works_on(tmp_path: Path) -> None:
    """Retiring is the same verdict on every node and costs no call: the owner's dry calls count for the helper."""
    dry_calls = [_call("owner", n, "", ["Oslo"], new=False) for n in range(1, 4)]
    async with await _store(tmp_path, "helper") as store:
        state = NodeState()
        state.apply_all([_entry("Oslo"), *dry_calls])
        planner = await _helper_of_the_root(store, state, ScriptedBackend([]), schedule="shared")
        assert await planner.acquire() is None
    assert planner.stats.retires == 1 and planner.plan.exhausted


async def test_under_the_shared_schedule_a_helper_works_on_a_leaf_due_for_a_split_as_it_is(tmp_path: Path) -> None:
    """A split is a model call: only the owner makes it. The deal gives the helper a call on Big
    (untried: 20, then 10 for a second call > Small's 8), whose owner has the first; Big is past
    the split size, and the helper calls it unsplit rather than split it or leave its share idle."""
    backend = ScriptedBackend([])  # a split call would fail the test: there is no answer to pop
    async with await _store(tmp_path, "helper") as store:
        await store.add([PlanRecord(PlanAction.SPLIT, "", ("Big", "Small"), "owner", 1, "test")])
        state = NodeState()
        state.apply_all(await store.load_records())
        small = [NAMES[60 + 8 * n : 68 + 8 * n] for n in range(3)]  # 8 new a call: kept, 8 expected
        state.apply_all([_call("owner", n + 1, "Small", texts) for n, texts in enumerate(small)])
        state.apply_all([_entry(name, "Big") for name in NAMES[:60]])
        members = {"owner": 1.0, "helper": 1.0}
        planner = _planner(store, state, backend, members=members, split_known_tokens=100, schedule="shared")
        if planner.owner("Big") != "owner":
            members["helper"] = 1e-9  # still one call: every live member makes at least one
        assert planner.owner("Big") == "owner"
        assert await planner.acquire() == "Big"
    assert backend.prompts == [] and planner.stats.splits == 0 and planner.stats.helping == 1


async def test_under_the_shared_schedule_calls_beyond_a_nodes_share_go_where_the_most_is_left(tmp_path: Path) -> None:
    """A node making more calls than its capacity record says (one) puts the extra call where the
    most is expected once every share is counted: Rich (20, shared by two calls: 10) over Poor (12, 6)."""
    async with await _store(tmp_path, "me") as store:
        await store.add([PlanRecord(PlanAction.SPLIT, "", ("Rich", "Poor"), "me", 1, "test")])
        state = NodeState()
        state.apply_all(await store.load_records())
        poor = [NAMES[12 * n : 12 * (n + 1)] for n in range(3)]
        state.apply_all([_call("peer", n + 1, "Poor", texts) for n, texts in enumerate(poor)])
        planner = _planner(store, state, ScriptedBackend([]), members={"me": 1.0, "peer": 1.0}, schedule="shared")
        first = await planner.acquire()
        second = await planner.acquire()  # the first is still in flight
    assert first == ("Rich" if planner.owner("Rich") == "me" else "Poor")
    assert second == "Rich"


async def _picks_of_two_nodes(tmp_path: Path, poor_yield: int, **config: object) -> dict[str, str | None]:
    """What "me" and "peer" (one call each) pick from "Rich" (untried: 20 expected a call) and
    "Poor" (``poor_yield`` new in each of its 3 calls), each computing on its own copy of the state."""
    picks: dict[str, str | None] = {}
    for name in ("me", "peer"):
        async with await _store(tmp_path, name) as store:
            await store.add([PlanRecord(PlanAction.SPLIT, "", ("Rich", "Poor"), "me", 1, "test")])
            state = NodeState()
            state.apply_all(await store.load_records())
            poor = [NAMES[poor_yield * n : poor_yield * (n + 1)] for n in range(3)]
            state.apply_all([_call("me", n + 1, "Poor", texts) for n, texts in enumerate(poor)])
            state.apply_all([_entry(text, "Poor") for texts in poor for text in texts])
            planner = _planner(store, state, ScriptedBackend([]), members={"me": 1.0, "peer": 1.0}, **config)
            picks[name] = await planner.acquire()
    return picks


async def test_under_the_shared_schedule_the_nodes_deal_out_calls_as_one_scheduler_would(tmp_path: Path) -> None:
    """Computed apart, the two nodes' picks are a central scheduler's two calls: a second call on
    Rich shares its 20 (10 each), so it goes to Poor at 12 a call but stays on Rich over Poor at 8.
    (Poor is kept at both yields, not split: its 36 singletons would make it big enough to divide.)"""
    config = {"schedule": "shared", "split_yield_share": 0.4}
    assert sorted(map(str, (await _picks_of_two_nodes(tmp_path / "12", 12, **config)).values())) == ["Poor", "Rich"]
    assert list((await _picks_of_two_nodes(tmp_path / "8", 8, **config)).values()) == ["Rich", "Rich"]


async def test_a_remainder_bucket_split_drops_the_labels_its_siblings_already_have(tmp_path: Path) -> None:
    """Non-overlapping: "Other countries" divided again lists France, which is a sibling already."""
    backend = ScriptedBackend(['{"categories": ["France", "Monaco", "Andorra"]}'])
    async with await _store(tmp_path) as store:
        state = NodeState()
        await store.add([PlanRecord(PlanAction.SPLIT, "", ("France", "Other countries"), "n1", 1, "test")])
        state.apply_all(await store.load_records())
        state.apply_all([_entry(name, "Other countries") for name in NAMES])
        # France has yielded 10 a call: the untried remainder (20 expected) is the pick
        state.apply_all([_call("n1", n, "France", [f"Ville {n}-{i}" for i in range(10)]) for n in range(1, 4)])
        planner = _planner(store, state, backend, split_known_tokens=100)
        planner.plan  # noqa: B018 - build the plan before acquiring
        await planner.acquire()
        splits = [r for r in await store.load_records() if isinstance(r, PlanRecord) and r.partition]
    assert [s.children for s in splits] == [("Monaco", "Andorra")]


async def test_the_producer_on_a_planner_covers_more_than_without_on_the_same_budget(tmp_path: Path) -> None:
    """End to end on the simulated LLM: the plan splits the topic and the same calls list more cities."""
    universe = load_universe("european-cities")
    model = SimulatedModel(universe, SimParams.fault_free())

    async def covered(partitioned: bool) -> tuple[int, PartitionPlan | None]:
        directory = tmp_path / ("on" if partitioned else "off")
        async with await Store.open(directory, topic=TOPIC, node_name="n1") as store:
            state = NodeState()
            backend = SimulatedBackend(model, seed=5, sleep=_no_wait)
            planner = _planner(store, state, backend) if partitioned else None
            producer = Producer(
                config=ProducerConfig(concurrency=2, max_calls=150), backend=backend, store=store, state=state,
                clock=HybridClock(), topic=TOPIC, partitions=planner,
                should_stop=planner.reason_to_stop if planner else lambda: None,
            )  # fmt: skip
            await producer.run(asyncio.Event())
            return len(state.entries), planner.plan if planner else None

    with_plan, plan = await covered(True)
    without, _ = await covered(False)
    assert plan is not None and plan.depth >= 1 and len(plan.leaves()) >= 4
    assert with_plan > 2.5 * without, (with_plan, without)  # measured 1,525 vs 421 (backend seeds 5-8: 3.2-3.6x)


async def test_concurrent_splits_on_two_nodes_converge_to_one_plan(tmp_path: Path) -> None:
    """Two nodes that each think they own the root split it differently; once they swap records, one plan."""
    answers = {"n1": '{"categories": ["Northern Europe", "Southern Europe"]}',
               "n2": '{"categories": ["Western Europe", "Eastern Europe", "Central Europe"]}'}  # fmt: skip
    planners: dict[str, Planner] = {}
    states: dict[str, NodeState] = {}
    records: dict[str, list[PlanRecord]] = {}
    for name in ("n1", "n2"):
        async with await _store(tmp_path, name) as store:
            state = states[name] = NodeState()
            state.apply_all([_entry(text) for text in NAMES])
            planners[name] = _planner(store, state, ScriptedBackend([answers[name]]), split_known_tokens=100)
            await planners[name].acquire()
            records[name] = [r for r in await store.load_records() if isinstance(r, PlanRecord)]
    assert planners["n1"].plan.live_leaves() != planners["n2"].plan.live_leaves()  # they disagree for now
    states["n1"].apply_all(records["n2"])
    states["n2"].apply_all(records["n1"])
    plans = [planners[name].plan for name in ("n1", "n2")]
    assert plans[0].partitions() == plans[1].partitions()
    [winner] = [r for r in records["n1"] + records["n2"] if r.precedence == min(x.precedence for x in records["n1"] + records["n2"])]
    assert plans[0].get("").decided_by == winner  # type: ignore[union-attr]
    assert len(plans[0].superseded()) == 1


async def test_a_truncated_or_failed_split_answer_is_asked_again_before_any_fallback(tmp_path: Path) -> None:
    """A transient fault must not turn a semantic plan alphabetical: the next attempt's categories are used."""
    truncated = Completion(text='{"categories": ["Northern Europe", "Sou', finish_reason="length")
    good = '{"categories": ["Northern Europe", "Southern Europe", "Western Europe"]}'
    backend = ScriptedBackend([truncated, LLMRateLimited("429", retry_after_s=1.0), good])
    async with await _store(tmp_path) as store:
        state = NodeState()
        state.apply_all([_entry(name) for name in NAMES])
        planner = _planner(store, state, backend, split_known_tokens=100)
        await planner.acquire()
        [split] = [r for r in await store.load_records() if isinstance(r, PlanRecord)]
    assert split.children == ("Northern Europe", "Southern Europe", "Western Europe")
    assert planner.stats.split_calls == 3 and planner.stats.split_fallbacks == 0


async def test_a_one_letter_leaf_is_never_sent_to_the_model_for_a_split(tmp_path: Path) -> None:
    """"Starting with K" cannot be divided by letters: no split call, the leaf is kept whole (and retired when dry)."""
    backend = ScriptedBackend([])  # any call would fail the test: there is no answer to pop
    async with await _store(tmp_path) as store:
        state = NodeState()
        await store.add([PlanRecord(PlanAction.SPLIT, "", ("A–J", "Starting with K", "L–Z"), "n1", 1, "test")])
        state.apply_all(await store.load_records())
        state.apply_all([_entry(f"K{name}", "Starting with K") for name in NAMES])
        planner = _planner(store, state, backend, split_known_tokens=100)
        planner.plan  # noqa: B018
        # the other leaves are untried (optimistic), so make K the only live choice
        await store.add([PlanRecord(PlanAction.RETIRE, leaf, (), "n1", 2, "test") for leaf in ("A–J", "L–Z")])
        state.apply_all([r for r in await store.load_records() if isinstance(r, PlanRecord) and r.action is PlanAction.RETIRE])
        assert await planner.acquire() == "Starting with K"
    assert backend.prompts == [] and planner.stats.split_calls == 0


async def test_owners_follow_a_change_of_weight_as_well_as_of_members(tmp_path: Path) -> None:
    """A capacity record that arrives later changes the weights: the cached owners are recomputed."""
    from partitioning.assign import assign

    members = {"n1": 1.0, "n2": 1.0, "n3": 1.0}
    async with await _store(tmp_path) as store:
        state = NodeState()
        children = tuple(f"Part {n}" for n in range(20))
        await store.add([PlanRecord(PlanAction.SPLIT, "", children, "n1", 1, "test")])
        state.apply_all(await store.load_records())
        planner = _planner(store, state, ScriptedBackend([]), members=members)
        assert planner.owners() == assign(planner.plan.live_leaves(), members)
        members["n3"] = 50.0  # n3 announced a far larger capacity
        assert planner.owners() == assign(planner.plan.live_leaves(), members)
        assert sum(owner == "n3" for owner in planner.owners().values()) > 14
