"""Tests for node.verifier: which entries get checked, the call share, verdicts committed, garbage harmless."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from node.errors import LLMServerError
from node.evidence import EntryStatus, VerificationPolicy, wants_check
from node.hlc import HybridClock
from node.llm.base import ChatMessage, Completion
from node.normalize import entry_id
from node.records import EntryRecord, MatchKind, ObservationRecord, ObservedItem, VerdictRecord
from node.state import NodeState
from node.store import Store
from node.verifier import Verifier

TOPIC = "cities of Europe"
REAL = {"Oslo", "Bergen", "Tromsø", "Stavanger"}


class Judge:
    """Answers verification prompts: real for the names in REAL; or a fixed text / error."""

    def __init__(self, answer: str | Exception | None = None) -> None:
        self._answer = answer
        self.asked: list[list[str]] = []

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
                       json_mode: bool = False) -> Completion:  # fmt: skip
        content = messages[-1].content
        items = json.loads(content[content.index("["): content.index("]\n") + 1])
        self.asked.append(items)
        if isinstance(self._answer, Exception):
            raise self._answer
        if self._answer is not None:
            return Completion(text=self._answer)
        return Completion(text=json.dumps({"verdicts": [{"item": i, "real": i in REAL} for i in items]}))

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, json_mode: bool = False) -> AsyncIterator[str]:
        raise AssertionError("verification is one whole call")

    async def aclose(self) -> None:
        pass


async def _setup(tmp_path: Path, names: Sequence[str], judge: Judge, policy: VerificationPolicy) -> tuple[Store, NodeState, Verifier]:
    store = await Store.open(tmp_path, topic=TOPIC, node_name="n1")
    state = NodeState(policy=policy)
    verifier = Verifier(state=state, store=store, clock=HybridClock(), backend=judge, topic=TOPIC)  # type: ignore[arg-type]
    records = [EntryRecord(entry_id(name), name, "", "n1", n) for n, name in enumerate(names, 1)]
    added = await store.add(records)
    state.apply_all(added)
    verifier.committed(added)
    return store, state, verifier


NAMES = ["Oslo", "Bergenovo", "Tromsø", "Kristiansundheim"]


async def test_a_verification_call_records_verdicts_and_statuses_follow(tmp_path: Path) -> None:
    """Two rounds of checks confirm the real singletons and reject the invented ones."""
    judge = Judge()
    store, state, verifier = await _setup(tmp_path, NAMES, judge, VerificationPolicy(batch=10, call_share=1.0, rule="strict", max_checks=3))
    async with store:
        assert await verifier.verify_once() is None
        assert judge.asked == [NAMES]
        statuses = {line.record.text: state.status(line) for line in state.entries}
        assert statuses == {"Oslo": EntryStatus.CONFIRMED, "Tromsø": EntryStatus.CONFIRMED,
                            "Bergenovo": EntryStatus.REJECTED, "Kristiansundheim": EntryStatus.REJECTED}  # fmt: skip
        await verifier.verify_once()  # the real singletons get their second check; the rejected are settled
        assert judge.asked[1] == ["Oslo", "Tromsø"]
        await verifier.verify_once()
        assert len(judge.asked) == 2  # nothing left to check: no call
        verdicts = [r for r in await store.load_records() if isinstance(r, VerdictRecord)]
    assert len(verdicts) == 6 and {v.node for v in verdicts} == {"n1"}
    assert verifier.stats.real == 4 and verifier.stats.not_real == 2
    assert state.rejected_ids() == {entry_id("Bergenovo"), entry_id("Kristiansundheim")}


async def test_garbage_or_a_failed_call_changes_nothing_and_the_entries_stay_pending(tmp_path: Path) -> None:
    """No verdict is recorded from an unreadable answer or an error; the next call asks again."""
    for answer in ("I cannot verify these.", LLMServerError("500")):
        judge = Judge(answer)
        store, state, verifier = await _setup(tmp_path / type(answer).__name__, NAMES, judge,
                                              VerificationPolicy(batch=10, call_share=1.0, rule="strict", max_checks=3))  # fmt: skip
        async with store:
            result = await verifier.verify_once()
            assert (result is not None) == isinstance(answer, Exception)
            assert not [r for r in await store.load_records() if isinstance(r, VerdictRecord)]
            assert {state.status(line) for line in state.entries} == {EntryStatus.UNCONFIRMED}
            await verifier.verify_once()
            assert judge.asked == [NAMES, NAMES]


async def test_verification_stays_within_its_share_of_calls_and_waits_for_a_full_batch(tmp_path: Path) -> None:
    """During production a call is due only for a full batch and within call_share; at the end, any batch."""
    judge = Judge()
    store, state, verifier = await _setup(tmp_path, NAMES, judge, VerificationPolicy(batch=3, call_share=0.1))
    async with store:
        assert not verifier.due(other_calls=5)  # 1 verification call in 6 would be 17% > 10%
        assert verifier.due(other_calls=9)  # 1 in 10: within the share, and a full batch of 3 is waiting
        await verifier.verify_once()
        assert not verifier.due(other_calls=12)  # 2 in 14 > 10%
        assert verifier.due(other_calls=19, final=True)  # at the end a partial batch is fine
        assert not VerificationPolicy.off().call_share


async def test_repeated_entries_are_not_checked(tmp_path: Path) -> None:
    """An entry generated by two independent calls is confirmed by self-consistency and never asked about."""
    judge = Judge()
    store, state, verifier = await _setup(tmp_path, ["Oslo", "Bergenovo"], judge, VerificationPolicy(batch=5, call_share=1.0))
    async with store:
        items = (ObservedItem(entry_id("Oslo"), MatchKind.EXACT),)
        state.apply_all([ObservationRecord("n2", n, "", n, items) for n in (1, 2)])
        await verifier.verify_once()
    assert judge.asked == [["Bergenovo"]]


async def test_entries_from_answers_that_mostly_repeated_are_checked_first(tmp_path: Path) -> None:
    """A dry part's answer is mostly repeats, and what it adds is mostly invented: its new entries go
    first; among equally suspect ones the oldest does; one with no answer held counts as not suspect."""
    judge = Judge()
    names = ["Oslo", "Bergenovo", "Tromsø", "Kristiansundheim"]
    store, state, verifier = await _setup(tmp_path, names, judge, VerificationPolicy(batch=1, call_share=1.0))
    async with store:
        known = [ObservedItem(entry_id(f"known {n}"), MatchKind.EXACT) for n in range(4)]
        state.apply_all([
            ObservationRecord("n1", 1, "", 1, (ObservedItem(entry_id("Oslo"), MatchKind.NEW),
                                                ObservedItem(entry_id("Tromsø"), MatchKind.NEW))),  # all new
            ObservationRecord("n1", 2, "", 2, (ObservedItem(entry_id("Bergenovo"), MatchKind.NEW), *known)),  # 1/5 new
            ObservationRecord("n1", 3, "", 3, (ObservedItem(entry_id("Kristiansundheim"), MatchKind.NEW),
                                                *known[:1])),  # 1/2 new
        ])  # fmt: skip
        for _ in range(3):
            await verifier.verify_once()
    assert judge.asked == [["Bergenovo"], ["Bergenovo"], ["Bergenovo"]]  # unsettled after 3 "not real"s
    verifier = Verifier(state=state, store=store, clock=HybridClock(), backend=judge, topic=TOPIC)  # type: ignore[arg-type]
    order = [line.record.text for line in verifier._batch(4)]
    assert order == ["Bergenovo", "Kristiansundheim", "Oslo", "Tromsø"]


async def test_the_producer_checks_what_is_left_once_the_topic_is_done(tmp_path: Path) -> None:
    """Idle capacity at the end goes to verification: the producer stops only when nothing is left to check."""
    import asyncio

    from node.llm.sim.backend import SimulatedBackend
    from node.llm.sim.model import SimulatedModel
    from node.llm.sim.params import SimParams
    from node.llm.sim.universe import load_universe
    from node.producer import Producer, ProducerConfig

    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    model = SimulatedModel(load_universe("countries"), SimParams.fault_free())
    backend = SimulatedBackend(model, seed=3, sleep=no_wait)
    policy = VerificationPolicy(call_share=0.5, batch=10)
    async with await Store.open(tmp_path, topic="countries", node_name="n1") as store:
        state = NodeState(policy=policy)
        verifier = Verifier(state=state, store=store, clock=HybridClock(), backend=backend, topic="countries")
        producer = Producer(
            config=ProducerConfig(concurrency=2), backend=backend, store=store, state=state, clock=HybridClock(),
            topic="countries", verifier=verifier, on_committed=verifier.committed, sleep=no_wait,
            should_stop=lambda: "done" if producer.stats.calls_started >= 4 else None,
        )  # fmt: skip
        assert await producer.run(asyncio.Event()) == "done"
    assert verifier.stats.calls >= 2 and verifier.stats.real + verifier.stats.not_real > 0
    left = [line for line in state.entries if wants_check(state.evidence(line), policy)]
    share_left = policy.call_share * (producer.stats.calls_started + verifier.stats.calls + 1) >= verifier.stats.calls + 1
    assert not left or not share_left  # stopped because everything was checked, or the share was spent
