"""Spending control of one node: the network budget's gate, the start rate, and the usage records.

Every LLM call of the node — enumeration streams, verification and split completions — goes
through ``MeteredBackend``, a wrapper around the real backend, in three steps:

1. **admit**: refuse with ``BudgetSpent`` when the spend this node knows of plus its own
   calls in flight reach the network budget (``node.spend``); else wait for the start rate
   (``node.rate_limit``: ``--max-calls-per-minute``, lowered by AIMD after 429s) and count
   the call in flight. The check and the count happen in one step of the event loop, so two
   workers cannot both take the last call.
2. **settle**: when the call ends, commit one ``UsageRecord`` (the tokens the endpoint
   reported; for a stream that failed part-way, estimated from the text at ~4 characters a
   token), apply it and gossip it — and only then stop counting the call in flight. At every
   moment each call of this node is counted exactly once: in flight, or in the spend.
3. tell the start rate how the call went.

**The overshoot bound.** Let B be the call budget, K_i(t) the calls counted by node i's usage
records at time t and F_i(t) its calls in flight. Node i starts a call only while
K_i + F_i < B, so K_i + F_i ≤ B just after. Take the last call started anywhere, by node i at
t*. Every call ever made had started by t*, and at t* each was either counted by node i
(K_i + F_i), in flight on another node j, or ended on another node j with its record not yet
at node i. So the network's final spend S obeys

    S − B ≤ Σ_{j≠i} F_j(t*) + U_i(t*) ≤ Σ_{j≠i} concurrency_j + U_i(t*)

where U_i(t*) counts the calls other nodes had ended whose usage records had not reached
node i by t*: what dissemination had not delivered yet — about the records' propagation delay
times the cluster's call rate; under a network partition, everything the other side spent
since the cut (each side can spend the whole budget on its own until it heals).

For tokens, a call's cost is unknown until it ends, so each call in flight is reserved at the
mean tokens per call so far; the tokens overshoot is at most the tokens of the calls in flight
on the other nodes at t*, plus what this node's own calls in flight used beyond their
reservation, plus the tokens of the calls whose records had not arrived.

Not counted at all: a call cancelled in flight by a stop or a crash leaves no usage record
(the provider may bill it) — at most ``concurrency`` calls per stop of a node.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from node.aio import first_of
from node.codec import MAX_BUDGET, MAX_CALL_TOKENS
from node.errors import ConfigError, LLMError, LLMRateLimited, NodeError
from node.hlc import HybridClock
from node.llm.base import ChatMessage, Completion, CompletionStream, LLMBackend, Usage
from node.rate_limit import AimdConfig, StartRate
from node.records import BudgetRecord, Record, UsageRecord
from node.spend import BudgetLimits
from node.state import NodeState
from node.store import Store

__all__ = ["Budget", "BudgetConfig", "BudgetSpent", "BudgetStats", "MeteredBackend", "StartAbandoned", "estimate_tokens"]

log = logging.getLogger(__name__)

_CHARS_PER_TOKEN = 4  # the usual rough figure for English text (as node.llm.openai_backend estimates)


class BudgetSpent(NodeError):
    """The network budget leaves no room for another call; the call was not sent.

    Not an ``LLMError``: nothing failed and retrying cannot help — the node stops producing.
    """


class StartAbandoned(BudgetSpent):
    """The node is stopping: a call waiting for its start slot gave up; it was never sent."""


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    """A node's spending limits (``--budget-calls``, ``--budget-tokens``, ``--max-calls-per-minute``)."""

    # LLM calls the whole network may make (0 = no limit from this node). A cluster setting:
    # the strictest of the nodes' settings holds everywhere (``node.spend``).
    calls: int = 0
    tokens: int = 0  # prompt + completion tokens the whole network may spend (0 = no limit); the same rule
    # this node's start rate ceiling (0 = none); a 429 lowers the rate below it for a while (AIMD)
    max_calls_per_minute: float = 0.0

    def __post_init__(self) -> None:
        for option, value in (("--budget-calls", self.calls), ("--budget-tokens", self.tokens)):
            if not 0 <= value <= MAX_BUDGET:
                raise ConfigError(f"{option} must be within 0..{MAX_BUDGET} (0 = no limit), got {value}")
        if not (math.isfinite(self.max_calls_per_minute) and self.max_calls_per_minute >= 0):
            raise ConfigError(f"--max-calls-per-minute must be a number >= 0 (0 = no limit), got {self.max_calls_per_minute}")


@dataclass
class BudgetStats:
    """Counters of this node's gate."""

    admitted: int = 0  # calls let through
    refused: int = 0  # calls refused by the budget
    rate_waits: int = 0  # admissions that had to wait for the start rate
    waited_s: float = 0.0  # time spent waiting for it
    rate_limited: int = 0  # calls that ended in a 429
    high_water_calls: int = 0  # the most calls counted (spend known + in flight) just after an admission


def estimate_tokens(chars: int) -> int:
    """Tokens in ``chars`` characters of text, roughly."""
    return math.ceil(chars / _CHARS_PER_TOKEN)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class Budget:
    """One per node; runs on the event loop. ``wrap`` the backend, ``announce`` the budget at start."""

    def __init__(
        self,
        config: BudgetConfig,
        *,
        state: NodeState,
        store: Store,
        clock: HybridClock,
        on_committed: Callable[[Sequence[Record]], None] = lambda records: None,
        now: Callable[[], float] = _loop_time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        aimd: AimdConfig | None = None,
    ) -> None:
        self._config = config
        self._state = state
        self._store = store
        self._clock = clock
        self._on_committed = on_committed
        self._sleep = sleep
        self._node = store.identity.name
        self._call = state.last_usage_call(self._node)  # numbering resumes after a restart
        self._in_flight = 0
        self._limits_seen = BudgetLimits()
        self.rate = StartRate(ceiling_per_min=config.max_calls_per_minute, now=now, config=aimd)
        self.stats = BudgetStats()
        self._stopping = asyncio.Event()

    def __repr__(self) -> str:
        spend = self._state.spend()
        return (
            f"<Budget {self._node} spent={spend.calls} calls/{spend.tokens} tokens "
            f"limit={self._state.budget_limits().describe()!r} in_flight={self._in_flight} {self.rate!r}>"
        )

    @property
    def in_flight(self) -> int:
        """This node's calls admitted and not settled yet."""
        return self._in_flight

    def wrap(self, backend: LLMBackend) -> MeteredBackend:
        """``backend`` with every call admitted, paced and recorded by this budget."""
        return MeteredBackend(backend, self)

    def spent_reason(self) -> str | None:
        """Why no further call may start now (the network budget is reached, counting this node's
        calls in flight at the mean cost of a call), or None."""
        return self._reason(self._in_flight)

    def exhausted_reason(self) -> str | None:
        """Why no call will ever start again: the recorded spend alone reaches the budget, or None.

        ``spent_reason`` may say "reached" only because calls in flight are reserved at the mean
        cost; once they settle for less there is room again, so that is a wait, not a stop.
        """
        return self._reason(0)

    def _reason(self, in_flight: int) -> str | None:
        limits = self._state.budget_limits()
        self._note(limits)
        if not limits.limited:
            return None
        spend = self._state.spend()
        flying = f", {in_flight} in flight" if in_flight else ""
        if limits.calls and spend.calls + in_flight >= limits.calls:
            return f"network budget of {limits.calls:,} LLM calls reached: {spend.calls:,} made{flying}"
        if limits.tokens:
            reserved = in_flight * (spend.tokens / spend.calls if spend.calls else 0.0)
            if spend.tokens + reserved >= limits.tokens:
                return f"network budget of {limits.tokens:,} tokens reached: {spend.tokens:,} used{flying}"
        return None

    def _note(self, limits: BudgetLimits) -> None:
        """Log the network's budget when it changes (a peer's stricter record arrived, say)."""
        if limits == self._limits_seen:
            return
        self._limits_seen = limits
        mine = BudgetLimits(self._config.calls, self._config.tokens)
        if limits == mine:
            log.info("network budget: %s", limits.describe())
        else:
            log.warning("network budget: %s — the strictest of the nodes' settings; this node was started with %s",
                        limits.describe(), mine.describe())  # fmt: skip

    async def announce(self) -> None:
        """Commit this node's budget setting as a record, unless its newest record already says it."""
        newest = self._state.budget_of(self._node)
        calls, tokens = self._config.calls, self._config.tokens
        if newest is None and not (calls or tokens):
            return  # no limit, and none announced before: a record would change nothing
        if newest is not None:
            if (newest.calls, newest.tokens) == (calls, tokens):
                return
            self._clock.observe(newest.hlc)  # the new one must be the newest, even if the wall clock went back
        record = BudgetRecord(node=self._node, calls=calls, tokens=tokens, hlc=self._clock.now())
        await self._commit(record)

    async def admit(self) -> float:
        """Wait until this node may start a call, and count it in flight; returns its start time.

        Raises ``BudgetSpent`` if the network budget leaves no room (checked again after every wait),
        ``StartAbandoned`` once ``stop_waiting`` was called.
        """
        waited = False
        while True:
            if self._stopping.is_set():
                raise StartAbandoned("the node is stopping")
            reason = self.spent_reason()
            if reason is not None:
                self.stats.refused += 1
                raise BudgetSpent(reason)
            wait_s = self.rate.wait_s()
            if wait_s <= 0:
                break
            if not waited:
                self.stats.rate_waits += 1
                waited = True
            self.stats.waited_s += wait_s
            await first_of(self._sleep(wait_s), self._stopping.wait())
        self._in_flight += 1
        self.stats.admitted += 1
        self.stats.high_water_calls = max(self.stats.high_water_calls, self._state.spend().calls + self._in_flight)
        return self.rate.started()

    def stop_waiting(self) -> None:
        """The node is stopping: calls waiting for a start slot give up now, and none starts after.

        Without this a stop on a rate-limited node waits for the next slot (up to the producer's
        stop grace) before it can end, though the call would never have been sent.
        """
        self._stopping.set()

    def abandon(self) -> None:
        """An admitted call was cancelled before it ended: no record (nothing is known of its cost)."""
        self._in_flight -= 1

    async def settle(self, started_at: float, usage: Usage, failure: LLMError | None, *, attempts: int = 1) -> None:
        """An admitted call ended: record its usage, then stop counting it in flight; adjust the rate."""
        try:
            self._call += 1
            record = UsageRecord(
                node=self._node,
                call=self._call,
                # the endpoint's numbers, bounded as peers and a restart will decode them: a -1 or a
                # 2**40 would be stored here but refused everywhere else (digests never equal again)
                prompt_tokens=min(max(usage.prompt_tokens, 0), MAX_CALL_TOKENS),
                completion_tokens=min(max(usage.completion_tokens, 0), MAX_CALL_TOKENS),
                hlc=self._clock.now(),
            )
            await self._commit(record)
        finally:
            self._in_flight -= 1
        if isinstance(failure, LLMRateLimited):
            self.stats.rate_limited += 1
            self.rate.rate_limited(started_at, failure.retry_after_s)
        elif failure is None and attempts > 1:
            self.rate.retried(started_at)
        elif failure is None:
            self.rate.succeeded(started_at)

    async def _commit(self, record: Record) -> None:
        added = await self._store.add([record])
        for new in added:
            self._state.apply(new)
        self._on_committed(added)

    def metrics(self) -> dict[str, object]:
        """This node's gate and pace (the spend itself is in the records: ``NodeState.spend``)."""
        return {
            "in_flight": self._in_flight,
            "rate_per_min": self.rate.rate_per_min,
            "paused_s": self.rate.paused_s(),
            "rate_decreases": self.rate.decreases,
            **vars(self.stats),
        }


class MeteredBackend:
    """An ``LLMBackend`` whose every call is admitted, paced and recorded by a ``Budget``.

    Closing it closes the wrapped backend.
    """

    def __init__(self, backend: LLMBackend, budget: Budget) -> None:
        self._backend = backend
        self._budget = budget

    def __repr__(self) -> str:
        return f"<MeteredBackend {self._backend!r} {self._budget!r}>"

    @property
    def name(self) -> str:
        return self._backend.name

    async def complete(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, json_mode: bool = False
    ) -> Completion:
        started_at = await self._budget.admit()
        try:
            completion = await self._backend.complete(messages, max_tokens=max_tokens, json_mode=json_mode)
        except LLMError as exc:
            await self._budget.settle(started_at, Usage(), exc)  # a failed whole answer reports no usage
            raise
        except BaseException:
            self._budget.abandon()
            raise
        await self._budget.settle(started_at, completion.usage, None, attempts=completion.attempts)
        return completion

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, json_mode: bool = False
    ) -> CompletionStream:
        inner = self._backend.stream(messages, max_tokens=max_tokens, json_mode=json_mode)
        return _MeteredStream(inner, self._budget, messages)

    async def aclose(self) -> None:
        await self._backend.aclose()


class _MeteredStream:
    """A stream admitted at its first read and recorded when it ends."""

    def __init__(self, inner: CompletionStream, budget: Budget, messages: Sequence[ChatMessage]) -> None:
        self._inner = inner
        self._budget = budget
        self._messages = messages
        self._reader: AsyncGenerator[str, None] | None = None

    @property
    def completion(self) -> Completion | None:
        return self._inner.completion

    def __aiter__(self) -> AsyncIterator[str]:
        if self._reader is None:
            self._reader = self._deltas()
        return self._reader

    async def aclose(self) -> None:
        """Stop reading now (the call no longer counts in flight) and close the wrapped stream."""
        if self._reader is not None:
            await self._reader.aclose()
        close: Callable[[], Awaitable[None]] | None = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()

    async def _deltas(self) -> AsyncGenerator[str, None]:
        started_at = await self._budget.admit()
        received = 0
        try:
            async for delta in self._inner:
                received += len(delta)
                yield delta
        except LLMError as exc:
            await self._budget.settle(started_at, self._estimate(received), exc)
            raise
        except BaseException:  # cancelled, or the reader closed the stream early
            self._budget.abandon()
            raise
        completion = self._inner.completion
        if completion is None:
            await self._budget.settle(started_at, self._estimate(received), None)
        else:
            await self._budget.settle(started_at, completion.usage, None, attempts=completion.attempts)

    def _estimate(self, received_chars: int) -> Usage:
        """The usage of a stream that ended without a report: nothing if no text came back,
        else the prompt and what arrived (the provider bills a partial answer)."""
        if not received_chars:
            return Usage()
        prompt_chars = sum(len(message.content) for message in self._messages)
        return Usage(prompt_tokens=estimate_tokens(prompt_chars), completion_tokens=estimate_tokens(received_chars))
