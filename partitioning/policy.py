"""When a leaf partition splits or retires, and how many new entries a call on it should bring.

Pure functions of a leaf's numbers (``LeafStats``), so every rule is a table test:

- **split** when the leaf's known entries no longer fit its share of the prompt
  (``split_known_tokens``): past that the model sees only part of what is known and repeats
  the rest — design.md's "split when the context passes a threshold";
- on **falling yield** (fresh entries per item asked over the last ``window_calls`` calls, by
  any node — fresh to the leaf: new to the list, or found before elsewhere and now generated
  here, which puts them in the leaf's context): **split** a leaf with many known entries once
  its yield falls below ``split_yield_share`` — a popularity-biased model keeps returning a big
  part's favourites, and a smaller part has fewer of them — and below ``low_yield_share`` split
  one with many known entries or many still unseen by the Chao1 estimate of its calls' repeat
  counts, and **retire** any other: it is dry. A model that has run dry returns repeats and
  inventions, and an invention counts as fresh, so the retire share must sit above the share a
  model invents for an exhausted part; the repeat-count estimator is no better a signal, as
  every invention is one more singleton;
- a leaf's **expected new entries per call** is its recent yield, blended with an optimistic
  prior while it has fewer than ``window_calls`` calls (an untried part is worth a try: the
  "optimism in the face of uncertainty" of bandit scheduling, Auer et al. 2002);
- **sharing out calls**: ``spread_calls`` puts calls one at a time on the leaf with the most
  expected new entries per call shared among the calls already on it — a central scheduler's
  greedy rule — and ``share_calls`` deals those calls out to the members, owners first, so
  every node computes the same plan of who calls where.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from partitioning.config import PartitionConfig

__all__ = ["LeafStats", "Verdict", "Decision", "judge", "expected_new_per_call", "spread_calls", "share_calls"]


@dataclass(frozen=True, slots=True)
class LeafStats:
    """What is known about one live leaf."""

    path: str
    depth: int
    calls: int  # calls made for it so far, all nodes
    recent_calls: int  # calls in the judged window (≤ window_calls)
    recent_new: int  # entries those calls brought into the leaf: new ones, and ones found
    # elsewhere that its calls generated (they join its context: progress, not repeats)
    known: int  # entries in its context
    known_tokens: int  # prompt tokens they take
    remaining: float = 0.0  # Chao1's estimate of entries not seen yet, from its calls' repeat counts
    can_split: bool = True  # False once a split found no usable labels and no letters to divide
    recent_asked: int | None = None  # items the window's calls asked in all (partitioning.ask);
    # None = recent_calls × items_per_call, every call asked the full count


class Verdict(StrEnum):
    KEEP = "keep"
    SPLIT = "split"
    RETIRE = "retire"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str


def judge(stats: LeafStats, config: PartitionConfig, items_per_call: int) -> Decision:
    """What to do with a leaf now."""
    splittable = stats.can_split and stats.depth < config.max_depth
    if splittable and stats.known_tokens > config.split_known_tokens:
        return Decision(
            Verdict.SPLIT,
            f"its {stats.known} known entries (~{stats.known_tokens} tokens) pass the prompt share of "
            f"{config.split_known_tokens} tokens",
        )
    if stats.recent_calls < config.window_calls:
        return Decision(Verdict.KEEP, "too few calls to judge")
    asked = stats.recent_asked if stats.recent_asked is not None else stats.recent_calls * items_per_call
    share = stats.recent_new / max(1, asked)
    yield_text = f"{stats.recent_new / stats.recent_calls:.1f} new per call over the last {stats.recent_calls}"
    # Only known entries show a leaf big enough to divide while it still yields: early on every
    # leaf's Chao1 is all singletons (many unseen), and a small part split then is judged again
    # leaf by leaf. Once dry, an estimated unseen remainder is reason enough to divide.
    big_now = stats.known >= config.min_split_entries
    big_when_dry = big_now or stats.remaining >= config.min_split_remaining
    dipped = share < config.split_yield_share and big_now
    if splittable and (dipped or (share < config.low_yield_share and big_when_dry)):
        return Decision(
            Verdict.SPLIT,
            f"yield fell to {yield_text} with {stats.known} known and ~{stats.remaining:.0f} estimated unseen",
        )
    if share >= config.low_yield_share:
        return Decision(Verdict.KEEP, f"yield {share:.2f} new per item asked")
    return Decision(Verdict.RETIRE, f"dry: {yield_text}")


def expected_new_per_call(stats: LeafStats, config: PartitionConfig, items_per_call: int) -> float:
    """New entries a call on this leaf should bring: recent yield, optimistic while untried."""
    window = config.window_calls
    untried = max(0, window - stats.recent_calls)
    prior = config.explore_prior * items_per_call
    return (stats.recent_new + prior * untried) / max(1, stats.recent_calls + untried)


def spread_calls(expected: Mapping[str, float], calls: int) -> list[str]:
    """The leaf of each of ``calls`` calls placed one at a time on the leaf with the most
    ``expected[leaf] / (1 + calls already on it)``, in the order they were placed (best first);
    ties go to the smaller path."""
    on: Counter[str] = Counter()
    order: list[str] = []
    heap = [(-value, leaf) for leaf, value in expected.items()]
    heapq.heapify(heap)
    for _ in range(calls if heap else 0):
        _, leaf = heapq.heappop(heap)
        on[leaf] += 1
        order.append(leaf)
        heapq.heappush(heap, (-expected[leaf] / (1 + on[leaf]), leaf))
    return order


def share_calls(
    expected: Mapping[str, float],
    capacity: Mapping[str, int],
    owner: Callable[[str], str | None],
    ranked: Callable[[str], Sequence[str]],
) -> dict[str, Counter[str]]:
    """Which member makes which of the network's calls: ``spread_calls`` over every member's
    ``capacity``, then each call, best first, to the leaf's owner while it has capacity left,
    and the rest to the members with capacity left in ``ranked(leaf)`` order (rendezvous
    rank: the runners-up). A pure function of its inputs, so every member computes the same
    shares, and each takes its own: no leaf gets more calls than the deal gave it."""
    left = {member: max(0, calls) for member, calls in capacity.items()}
    shares: dict[str, Counter[str]] = {member: Counter() for member in capacity}
    overflow: list[str] = []
    for leaf in spread_calls(expected, sum(left.values())):
        first = owner(leaf)
        if first is not None and left.get(first, 0) > 0:
            left[first] -= 1
            shares[first][leaf] += 1
        else:
            overflow.append(leaf)
    for leaf in overflow:
        member = next((m for m in ranked(leaf) if left.get(m, 0) > 0), None)
        if member is not None:
            left[member] -= 1
            shares[member][leaf] += 1
    return shares
