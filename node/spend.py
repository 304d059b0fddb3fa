"""The network's LLM spend and budget, as pure functions of the replicated set.

**Spend.** Every LLM call a node makes — enumeration, verification or split, succeeded or
failed — ends in one ``UsageRecord`` (node, call number, prompt and completion tokens). The
spend is the sum over those records. Records are immutable and keyed by their content, so the
set's union holds each call once however often it is gossiped: there is no counter that two
merges could add twice, and two nodes holding the same set report the same spend.

**Budget.** A node announces the budget it was started with (``--budget-calls``,
``--budget-tokens``; 0 = no limit) as a ``BudgetRecord``. Per node the newest record counts
(as for ``CapacityRecord``), and the cluster's limit, per kind, is the *strictest* non-zero
value among the nodes' newest records. So:

- every node enforces the same limit once it holds the same records, whatever it was started
  with — a node started without a budget joins a budgeted cluster under its budget;
- a budget is a promise about money: no node can raise what another node's operator set, and
  a misconfigured node can only make the cluster stop sooner, never spend more;
- raising it takes restarting every node that announced a lower value with the new one (a
  node gone for good keeps its last word: its record stays in the set).

The alternative — refusing a peer whose budget differs at join — was not taken: the join
handshake belongs to ``gossip/``, which knows nothing of LLMs, and it would make changing the
budget a stop-the-world restart of the whole cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node.records import BudgetRecord, UsageRecord

__all__ = ["BudgetLimits", "Spend", "effective_limits", "newer_budget"]


@dataclass(frozen=True, slots=True)
class Spend:
    """LLM calls and their tokens, summed over usage records."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, record: UsageRecord) -> Spend:
        """This spend with one more call."""
        return Spend(
            self.calls + 1,
            self.prompt_tokens + record.prompt_tokens,
            self.completion_tokens + record.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """The network's limits; 0 = no limit of that kind."""

    calls: int = 0
    tokens: int = 0

    @property
    def limited(self) -> bool:
        return bool(self.calls or self.tokens)

    def calls_left(self, spend: Spend) -> int | None:
        """Calls left under the budget (never negative), or None without a call limit."""
        return max(0, self.calls - spend.calls) if self.calls else None

    def tokens_left(self, spend: Spend) -> int | None:
        """Tokens left under the budget (never negative), or None without a token limit."""
        return max(0, self.tokens - spend.tokens) if self.tokens else None

    def describe(self) -> str:
        """For logs and stop reasons: "200 calls, 1,000,000 tokens" or "no limit"."""
        parts = [f"{self.calls:,} calls" if self.calls else "", f"{self.tokens:,} tokens" if self.tokens else ""]
        return ", ".join(part for part in parts if part) or "no limit"


def newer_budget(candidate: BudgetRecord, current: BudgetRecord) -> bool:
    """Whether ``candidate`` supersedes ``current`` (one node's records): the later hlc, then
    the larger values, so that every node picks the same one whatever the arrival order."""
    return (candidate.hlc, candidate.calls, candidate.tokens) > (current.hlc, current.calls, current.tokens)


def effective_limits(newest: Iterable[BudgetRecord]) -> BudgetLimits:
    """The cluster's limits from each node's newest budget record: the strictest non-zero value per kind."""
    records = list(newest)
    return BudgetLimits(
        calls=min((record.calls for record in records if record.calls), default=0),
        tokens=min((record.tokens for record in records if record.tokens), default=0),
    )
