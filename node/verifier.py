"""Verification calls: ask the model whether weakly evidenced entries are real, and record its verdicts.

Each node verifies the entries it accepted itself (their ``origin``), so nodes never check the
same entry twice in parallel; the verdicts are records, gossiped like the rest, and every node
computes the same statuses from them (``node.evidence``). Which entries need a check, and how
many checks, is ``VerificationPolicy``'s: an entry generated once, or repeated but doubted,
until its verdicts settle it. They are batched (``policy.batch`` per call), the most suspect
first — those generated only by answers that mostly repeated known entries — and verified:

- during production, only as a full batch and within the call budget — verification calls are
  at most ``policy.call_share`` of this node's calls, so it can never crowd out enumeration;
- once the topic is exhausted, the rest, in partial batches, within the same share: idle
  capacity at the end is when checking is cheapest.

A failed or garbled verification answer changes nothing: its entries stay pending and are
asked again later (an entry the answer skipped is too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node.errors import LLMError
from node.evidence import wants_check
from node.global_list import ListEntry
from node.hlc import HybridClock
from node.llm.base import LLMBackend
from node.normalize import EntryId
from node.prompts import PARTITION_SEPARATOR, PromptTemplates, build_verify_prompt
from node.records import EntryRecord, Record, VerdictRecord
from node.state import NodeState
from node.store import Store
from node.verdicts import parse_verdicts

__all__ = ["Verifier", "VerifierStats"]

log = logging.getLogger(__name__)


@dataclass
class VerifierStats:
    calls: int = 0
    failed: int = 0
    asked: int = 0  # items asked about
    real: int = 0  # verdicts "real"
    not_real: int = 0  # verdicts "not real"
    unanswered: int = 0  # asked items the answer did not judge
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Verifier:
    """Runs on the event loop; one per node."""

    def __init__(
        self,
        *,
        state: NodeState,
        store: Store,
        clock: HybridClock,
        backend: LLMBackend,
        topic: str,
        templates: PromptTemplates | None = None,
        on_committed: Callable[[Sequence[Record]], None] = lambda records: None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._state = state
        self._policy = state.policy
        self._store = store
        self._clock = clock
        self._backend = backend
        self._topic = topic
        self._templates = templates or PromptTemplates()
        self._on_committed = on_committed
        self._on_change = on_change
        self._node = store.identity.name
        # entries of this node that may want a check, in arrival order, each with its suspicion
        # (lower = checked sooner; None until first needed, see _suspicion)
        self._pending: dict[EntryId, float | None] = {}
        self._in_flight: set[EntryId] = set()
        self.stats = VerifierStats()
        for line in state.entries:  # after a restart: what this node accepted and is not settled yet
            for record in (line.record, *line.aliases):
                if record.origin == self._node:
                    self._pending[record.id] = None

    def __repr__(self) -> str:
        return f"<Verifier {self._node} calls={self.stats.calls} pending={len(self._pending)}>"

    @property
    def busy(self) -> bool:
        """A verification call is in flight."""
        return bool(self._in_flight)

    def committed(self, records: Sequence[Record]) -> None:
        """Hear of this node's own commits: its new entries are candidates."""
        for record in records:
            if isinstance(record, EntryRecord) and record.origin == self._node:
                self._pending[record.id] = None

    def _line(self, entry: EntryId) -> ListEntry | None:
        if self._state.entries.shown(entry) is None:
            return None
        return self._state.entries.cluster_of(entry)

    def _suspicion(self, entry: EntryId) -> float:
        """The largest share of new items among the answers that generated ``entry``: low means it
        came only from answers that mostly repeated known entries — a part that had run dry, where
        the model invents (about three in four such entries are inventions on the simulator,
        ``scripts/bench/precision_bound.py``). Those are checked first: there a verdict's share of
        the budget rejects the most."""
        shares = [record.new_share for record, _item, _detail in self._state.observations_of(entry)]
        return max(shares, default=1.0)  # no observation held: nothing suspect about it

    def _batch(self, limit: int) -> list[ListEntry]:
        """Up to ``limit`` lines that want a check, the most suspect first (then the oldest);
        settled ones leave the queue."""
        batch: list[ListEntry] = []
        seen: set[EntryId] = set()
        for entry, key in self._pending.items():
            if key is None:
                self._pending[entry] = self._suspicion(entry)
        for entry in sorted(self._pending, key=lambda entry: self._pending[entry] or 0.0):  # stable: oldest first
            line = self._line(entry)
            if line is None or not wants_check(self._state.evidence(line), self._policy):
                del self._pending[entry]
                continue
            if line.id in seen or line.id in self._in_flight:
                continue
            seen.add(line.id)
            batch.append(line)
            if len(batch) >= limit:
                break
        return batch

    def due(self, other_calls: int, *, final: bool = False) -> bool:
        """Whether a verification call should come next, given this node's other calls.

        Within the share: the next verification call keeps verification calls at most
        ``call_share`` of all calls. During production only a full batch is worth a call.
        """
        policy = self._policy
        calls = self.stats.calls  # started ones, in flight included
        if policy.call_share <= 0 or calls + 1 > policy.call_share * (other_calls + calls + 1):
            return False
        wanted = 1 if final else policy.batch
        return len(self._batch(wanted)) >= wanted

    async def verify_once(self) -> LLMError | None:
        """One verification call over the next batch; returns the failure, if the call failed."""
        batch = self._batch(self._policy.batch)
        if not batch:
            return None
        self.stats.calls += 1
        call = self.stats.calls
        ids = [line.id for line in batch]
        self._in_flight.update(ids)
        try:
            return await self._ask(call, batch)
        finally:
            self._in_flight.difference_update(ids)

    async def _ask(self, call: int, batch: list[ListEntry]) -> LLMError | None:
        texts = [line.record.text for line in batch]
        partitions = {line.record.partition for line in batch}
        partition = partitions.pop() if len(partitions) == 1 else ""
        messages = build_verify_prompt(
            self._templates, topic=self._topic, partition=partition.split(PARTITION_SEPARATOR) if partition else [],
            items=texts,
        )  # fmt: skip
        self.stats.asked += len(batch)
        try:
            completion = await self._backend.complete(messages, json_mode=True)
        except LLMError as exc:
            self.stats.failed += 1
            log.warning("verification call %d failed: %s", call, exc)
            return exc
        self.stats.prompt_tokens += completion.usage.prompt_tokens
        self.stats.completion_tokens += completion.usage.completion_tokens
        verdicts = parse_verdicts(completion.text, texts)
        self.stats.unanswered += len(batch) - len(verdicts)
        hlc = self._clock.now()
        records = [
            VerdictRecord(entry=batch[index].id, real=real, node=self._node, call=call,
                          partition=batch[index].record.partition, hlc=hlc)  # fmt: skip
            for index, real in sorted(verdicts.items())
        ]
        for record in records:
            self.stats.real += record.real
            self.stats.not_real += not record.real
        added = await self._store.add(records)
        changed = False
        for new in added:
            changed |= self._state.apply(new)
        self._on_committed(added)
        if changed:
            self._on_change()
        return None
