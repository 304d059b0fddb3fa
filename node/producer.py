"""The producer loop: ask the LLM for entries nobody has, resolve them, commit them as they arrive.

``concurrency`` workers each repeat: verify a batch of weakly evidenced entries when one is due
(``node.verifier``, within its share of the calls), or pick a partition → build the prompt with the partition's
known entries within the token budget (the shared-state lever) → stream the answer through
the parser → resolve every completed item (exact → fuzzy → new) → commit a new entry the
moment its line completes → at the end of the call, commit the call's observation record.

Resolution and commit of one item happen under one lock, so two concurrent calls that both
produce "Louvre" accept it once: the second sees the first as an exact match. A record joins
the in-memory state (and so the page, the list file and gossip) only after its commit.

LLM faults never stop the node: a failed call is recorded with what it produced before
failing, and the worker backs off (exponential with full jitter, honouring Retry-After)
before its next call. Nor does a disk that refuses commits (full, read-only): production
pauses — one log line saying why — and the node keeps serving what it has; while paused no
LLM call is made (its answer could not be kept), the store is asked with a tiny write after
growing pauses (up to ``store_retry_max_s``), and production resumes once that succeeds.
The loop ends when ``stop`` is set, the call budget or the network budget (``node.budget``) is spent, or the
``should_stop`` hook (the exhaustion estimate) says the topic is done.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from node.aio import first_of
from node.budget import Budget, BudgetSpent
from node.errors import ConfigError, LLMError, LLMRateLimited
from node.hlc import HybridClock
from node.llm.base import LLMBackend, Usage
from node.llm.retry import backoff_delay_s
from node.parser import StreamingParser
from node.prompts import PARTITION_SEPARATOR, PromptTemplates, build_enumeration_prompt
from node.records import EntryRecord, ItemDetail, MatchKind, ObservationRecord, ObservedItem, Record
from node.state import NodeState
from node.store import Store, StoreWriteError
from node.verifier import Verifier

__all__ = ["ProducerConfig", "Producer", "ProducerStats", "PartitionSource", "AskSizer", "WholeTopic"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

_WAIT_FOR_VERIFICATION_S = 0.5  # a worker with nothing to do while another verifies looks again after this
_BUDGET_RECHECK_S = 0.5  # a worker refused only by the reservation of calls in flight looks again after this
UNPARSEABLE_AS_DRY = 3  # unparseable answers in a row for one part, by one node, that count as a call finding nothing


@dataclass(frozen=True, kw_only=True)
class ProducerConfig:
    """How a node spends its LLM calls."""

    concurrency: int = 2  # concurrent LLM calls; more finishes sooner but shares less state
    items_per_call: int = 20  # entries asked for per call; larger answers cost fewer prompts
    known_budget_tokens: int = 3000  # prompt tokens for known entries (the shared state)
    known_by_frequency: bool = True  # known entries most-generated first (else newest first)
    # Resolve generated items exact → fuzzy (else exact ids only, and the list never clusters
    # near-duplicates: the benchmark's "exact dedup only" ablation). Every node of a cluster
    # must agree, or two nodes holding one set would show two lists.
    fuzzy_dedup: bool = True
    max_calls: int = 0  # LLM calls this node may make; 0 = until exhausted
    backoff_base_s: float = 1.0  # first backoff ceiling after a failed call; doubles per failure
    backoff_max_s: float = 60.0  # backoff ceiling
    max_retry_after_s: float = 120.0  # longest Retry-After honoured
    stop_grace_s: float = 5.0  # on stop, calls in flight get this long to finish, then are cancelled
    # While the disk refuses commits, ask it again after 1, 2, 4… s, at most this long apart:
    # shorter resumes sooner after room is made; each ask is one tiny commit, no LLM call.
    store_retry_max_s: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 256:
            raise ConfigError(f"concurrency must be within 1..256, got {self.concurrency}")
        if not 1 <= self.items_per_call <= 200:
            raise ConfigError(f"items per call must be within 1..200, got {self.items_per_call}")
        if self.known_budget_tokens < 0:
            raise ConfigError("known_budget_tokens must be >= 0")
        if self.max_calls < 0:
            raise ConfigError(f"max calls must be >= 0 (0 = no limit), got {self.max_calls}")
        if self.stop_grace_s < 0:
            raise ConfigError("stop_grace_s must be >= 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ConfigError("backoff must satisfy 0 <= backoff_base_s <= backoff_max_s")
        if not self.store_retry_max_s > 0:
            raise ConfigError(f"store_retry_max_s must be > 0, got {self.store_retry_max_s}")


@dataclass
class ProducerStats:
    """Counters of this node's own calls (the observations hold the per-item truth)."""

    calls_started: int = 0
    calls_ok: int = 0
    calls_failed: int = 0
    items: int = 0
    new_entries: int = 0
    parse_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    store_pauses: int = 0  # times production paused because the disk refused a commit


class PartitionSource(Protocol):
    """Where each call's partition and its known entries come from (``partitioning.Planner``)."""

    async def acquire(self) -> str | None:
        """The partition for the next call, or None when nothing is left to do."""

    def release(self, partition: str) -> None:
        """The call on ``partition`` ended."""

    def known_for(self, partition: str) -> list[str]:
        """The known entries for the prompt, most useful first."""


@runtime_checkable
class AskSizer(Protocol):
    """A partition source that sizes each call's ask (``partitioning.Planner``: the adaptive ask)."""

    def items_to_ask(self, partition: str) -> int:
        """Items the next call on ``partition`` asks for (at most ``items_per_call``)."""


class WholeTopic:
    """No partitioning: every call is about the whole topic."""

    def __init__(self, state: NodeState, *, by_frequency: bool = True) -> None:
        self._state = state
        self._by_frequency = by_frequency

    async def acquire(self) -> str | None:
        return ""

    def release(self, partition: str) -> None:
        pass

    def known_for(self, partition: str) -> list[str]:
        return self._state.known_for_prompt(partition, by_frequency=self._by_frequency)


class Producer:
    """Runs on the event loop; one instance per node."""

    def __init__(
        self,
        *,
        config: ProducerConfig,
        backend: LLMBackend,
        store: Store,
        state: NodeState,
        clock: HybridClock,
        topic: str,
        partitions: PartitionSource | None = None,
        verifier: Verifier | None = None,
        budget: Budget | None = None,
        should_stop: Callable[[], str | None] = lambda: None,
        on_change: Callable[[], None] = lambda: None,
        on_committed: Callable[[Sequence[Record]], None] = lambda records: None,
        templates: PromptTemplates | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._backend = backend
        self._store = store
        self._state = state
        self._clock = clock
        self._topic = topic
        self._partitions = partitions or WholeTopic(state, by_frequency=config.known_by_frequency)
        self._ask_sizer = self._partitions if isinstance(self._partitions, AskSizer) else None
        self._verifier = verifier
        self._budget = budget  # the network budget: no call starts once it is reached (node.budget)
        self._should_stop = should_stop
        self._on_change = on_change
        self._on_committed = on_committed
        self._templates = templates or PromptTemplates()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._node = store.identity.name
        self._lock = asyncio.Lock()
        self._call_seq = len(state.calls(self._node))  # resume numbering after a restart
        self._consecutive_failures = 0
        self._refused: StoreWriteError | None = None  # why production is paused, while the disk refuses commits
        self._store_checks = 0  # failed asks of the store in this pause
        self._paused_at = 0.0  # loop time the pause began
        self._store_check_lock = asyncio.Lock()  # one worker asks the store; the others wait for its answer
        self.stats = ProducerStats()
        self._unparseable_in_a_row: dict[str, int] = {}  # partition -> this node's unparseable answers in a row
        self.stop_reason: str | None = None

    def __repr__(self) -> str:
        s = self.stats
        return f"<Producer {self._node} calls={s.calls_started} new={s.new_entries} failed={s.calls_failed}>"

    @property
    def paused(self) -> str | None:
        """Why production is paused (the disk refuses commits), or None while it runs."""
        return str(self._refused) if self._refused is not None else None

    async def run(self, stop: asyncio.Event) -> str:
        """Produce until stopped, out of budget, or exhausted; returns the reason."""
        async with asyncio.TaskGroup() as group:
            workers = [
                group.create_task(self._worker(worker, stop), name=f"producer-{worker}")
                for worker in range(self._config.concurrency)
            ]
            group.create_task(self._cut_short_on_stop(stop, workers), name="producer-stop-grace")
        return self.stop_reason or "stopped"

    async def _cut_short_on_stop(self, stop: asyncio.Event, workers: list[asyncio.Task[None]]) -> None:
        """Once ``stop`` is set, give calls in flight ``stop_grace_s`` to end, then cancel them.

        An LLM call can take a minute (or hang until its timeout); a stop must not wait for it.
        Nothing acknowledged is lost: each entry was committed as its line arrived.
        """
        all_done = asyncio.gather(*workers, return_exceptions=True)
        await first_of(stop.wait(), asyncio.shield(all_done))
        if all_done.done():
            return
        if self._budget is not None:
            self._budget.stop_waiting()  # calls waiting for a start slot were never sent: no grace needed
        _, late = await asyncio.wait(workers, timeout=self._config.stop_grace_s)
        for task in late:
            task.cancel()
        if late:
            log.info("stop: cancelled %d LLM call(s) still in flight after %.1fs", len(late), self._config.stop_grace_s)

    def _call_budget_spent(self) -> bool:
        return bool(self._config.max_calls) and self.stats.calls_started >= self._config.max_calls

    def _may_start_call(self, stop: asyncio.Event) -> bool:
        if stop.is_set():
            self.stop_reason = self.stop_reason or "stopped"
            return False
        if self._call_budget_spent():
            self.stop_reason = self.stop_reason or f"call budget of {self._config.max_calls} spent"
            return False
        spent = self._budget.exhausted_reason() if self._budget is not None else None
        if spent is not None:
            self.stop_reason = self.stop_reason or spent
            return False
        reason = self._should_stop()
        if reason is not None and self._verifier is not None and self._verifier.due(self.stats.calls_started, final=True):
            return True  # the topic is done, but entries are left to check: idle capacity is for that
        if reason is not None:
            self.stop_reason = self.stop_reason or reason
            return False
        return True

    async def _worker(self, worker: int, stop: asyncio.Event) -> None:
        if worker:  # stagger so the workers' calls don't start (and finish) in lockstep
            await self._sleep(self._rng.uniform(0, 0.05 * worker))
        while self._may_start_call(stop) and self.stop_reason is None:
            if self._refused is not None:
                await self._wait_for_store(stop)
                continue
            try:
                delay = await self.one_call()
            except StoreWriteError as exc:
                self._pause(exc)
                continue
            except BudgetSpent as exc:  # a call (enumeration, verification or split) was refused before it was sent
                if self._budget is not None and self._budget.exhausted_reason() is None:
                    # full only counting calls in flight: wait for one to settle (it may cost less)
                    await first_of(self._sleep(_BUDGET_RECHECK_S), stop.wait())
                    continue
                self.stop_reason = self.stop_reason or str(exc)
                return
            if delay:
                await first_of(self._sleep(delay), stop.wait())

    def _pause(self, refusal: StoreWriteError) -> None:
        if self._refused is None:  # the first worker to hit it says why; the others just wait
            self._refused = refusal
            self._paused_at = asyncio.get_running_loop().time()
            self.stats.store_pauses += 1
            log.error("production paused: %s. The node keeps serving what it has; it asks the disk again "
                      "every %.0f s at most and resumes once a write succeeds", refusal,
                      self._config.store_retry_max_s)  # fmt: skip

    async def _wait_for_store(self, stop: asyncio.Event) -> None:
        """While paused: ask the store with a tiny write after growing pauses; resume once it succeeds."""
        async with self._store_check_lock:
            while self._refused is not None and not stop.is_set():
                delay = min(self._config.store_retry_max_s, 2.0 ** min(self._store_checks, 16))
                await first_of(self._sleep(delay), stop.wait())
                if stop.is_set():
                    return
                try:
                    await self._store.check_writable()
                except StoreWriteError as exc:
                    self._store_checks += 1
                    if type(exc) is not type(self._refused):  # the reason changed (full → read-only): say so
                        log.error("production still paused: %s", exc)
                    self._refused = exc
                    continue
                log.info("the data dir accepts writes again: production resumed after a %.0f s pause",
                         asyncio.get_running_loop().time() - self._paused_at)
                self._refused = None
                self._store_checks = 0

    async def one_call(self) -> float:
        """Make one LLM call end to end; returns how long to back off before the next."""
        verifier = self._verifier
        if verifier is not None and verifier.due(self.stats.calls_started):
            return self._after_verification(await verifier.verify_once())
        partition = await self._partitions.acquire()
        if partition is None:  # every partition is done: check what is left to check, then stop
            if verifier is not None and verifier.due(self.stats.calls_started, final=True):
                return self._after_verification(await verifier.verify_once())
            if verifier is not None and verifier.busy:
                return _WAIT_FOR_VERIFICATION_S  # another worker's check may leave entries for a second one
            self.stop_reason = self.stop_reason or self._should_stop() or "no partition left to work on"
            return 0.0
        try:
            if self._refused is not None:  # paused while the partition was picked: the answer could not be kept
                return 0.0
            if self._call_budget_spent():  # another worker took the last call while this one
                return 0.0  # waited on the pick (a split call): the budget is a hard cap
            return await self._call_on(partition)
        finally:
            self._partitions.release(partition)

    async def _call_on(self, partition: str) -> float:
        self.stats.calls_started += 1
        self._call_seq += 1
        call = self._call_seq
        prompt = build_enumeration_prompt(
            self._templates,
            topic=self._topic,
            partition=[label for label in partition.split(PARTITION_SEPARATOR) if label] if partition else [],
            known=self._partitions.known_for(partition),
            count=self._items_to_ask(partition),
            known_budget_tokens=self._config.known_budget_tokens,
        )
        parser = StreamingParser()
        observed: list[tuple[ObservedItem, ItemDetail]] = []
        failure: LLMError | None = None
        stream = self._backend.stream(prompt.messages, json_mode=True)
        try:
            async for delta in stream:
                for text in parser.feed(delta):
                    await self._accept(text, partition, observed)
            for text in parser.close():
                await self._accept(text, partition, observed)
        except LLMError as exc:
            failure = exc
        except BudgetSpent:
            self.stats.calls_started -= 1  # refused before it was sent: not a call
            raise
        except StoreWriteError:  # nothing more of this answer can be kept: stop reading it
            close: Callable[[], Awaitable[None]] | None = getattr(stream, "aclose", None)
            if close is not None:
                await close()
            raise
        completion = stream.completion
        usage = completion.usage if completion is not None else Usage()
        self.stats.prompt_tokens += usage.prompt_tokens
        self.stats.completion_tokens += usage.completion_tokens
        unparseable = failure is None and parser.result().failed
        counted = False
        if unparseable:
            self.stats.parse_failures += 1
            streak = self._unparseable_in_a_row[partition] = self._unparseable_in_a_row.get(partition, 0) + 1
            counted = streak >= UNPARSEABLE_AS_DRY
            log.info("call %d: no entries in the answer (%d characters); %s", call,
                     len(completion.text) if completion else 0,
                     f"{streak} such answers in a row for this part: counted as a call that found nothing" if counted
                     else "not counted as the part's yield")  # fmt: skip
        else:
            self._unparseable_in_a_row.pop(partition, None)
        # An answer with no entries that is not an explicitly empty list is garbage, not evidence
        # that the part is dry: recorded, it would count as a call that found nothing and could
        # retire a part still yielding. Only a model that keeps answering so is taken at its word.
        if observed or (failure is None and (not unparseable or counted)):
            await self._commit_observation(call, partition, observed)
        if failure is None:
            self.stats.calls_ok += 1
            self._consecutive_failures = 0
            return 0.0
        return self._after_failure(call, failure)

    def _items_to_ask(self, partition: str) -> int:
        if self._ask_sizer is None:
            return self._config.items_per_call
        return max(1, min(self._config.items_per_call, self._ask_sizer.items_to_ask(partition)))

    def _after_verification(self, failure: LLMError | None) -> float:
        """Back off after a failed verification call (the verifier counted and logged it)."""
        if failure is None:
            self._consecutive_failures = 0
            return 0.0
        delay = self._backoff(failure)
        log.debug("backing off %.2fs after a failed verification call", delay)
        return delay

    def _after_failure(self, call: int, failure: LLMError) -> float:
        self.stats.calls_failed += 1
        kind = type(failure).__name__
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
        delay = self._backoff(failure)
        log.warning("call %d failed (%s: %s); backing off %.2fs", call, kind, failure, delay)
        return delay

    def _backoff(self, failure: LLMError) -> float:
        """The delay after one more consecutive failure: full jitter, at least any Retry-After."""
        self._consecutive_failures += 1
        delay = backoff_delay_s(
            self._consecutive_failures,
            base_s=self._config.backoff_base_s,
            max_s=self._config.backoff_max_s,
            rng=self._rng,
        )
        if isinstance(failure, LLMRateLimited) and failure.retry_after_s is not None:
            delay = max(delay, min(failure.retry_after_s, self._config.max_retry_after_s))
        return delay

    async def _accept(self, text: str, partition: str, observed: list[tuple[ObservedItem, ItemDetail]]) -> None:
        """Resolve one generated item and, if it is new, commit it before anyone sees it."""
        async with self._lock:
            try:
                resolution = self._state.entries.deduplicator.resolve(text)
            except ValueError:
                return  # no letters or digits: not an entry
            self.stats.items += 1
            if resolution.match is MatchKind.NEW:
                record = EntryRecord(
                    id=resolution.entry_id,
                    text=text,
                    partition=partition,
                    origin=self._node,
                    hlc=self._clock.now(),
                )
                added = await self._store.add([record])
                for new in added:
                    self._state.apply(new)
                    self.stats.new_entries += 1
                self._on_committed(added)
                self._on_change()
            observed.append((resolution.observed(), resolution.detail(text)))

    async def _commit_observation(
        self, call: int, partition: str, observed: list[tuple[ObservedItem, ItemDetail]]
    ) -> None:
        record = ObservationRecord(
            node=self._node, call=call, partition=partition, hlc=self._clock.now(),
            items=tuple(item for item, _ in observed), detail=tuple(detail for _, detail in observed),
        )  # fmt: skip
        async with self._lock:
            added = await self._store.add([record])
            for new in added:
                self._state.apply(new)
        self._on_committed(added)
        self._on_change()
