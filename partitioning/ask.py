"""How many items a call asks of a leaf: fewer as the leaf runs dry (the adaptive ask).

Why: a model asked for N more items of a category it has exhausted confabulates to fill the
count — long-tail recall falls off and hallucination rises with it (L3X, arXiv 2405.02732;
the simulated LLM's ``invented_rate_exhausted``, docs/simulated-llm.md). A dry leaf's last
calls, which the planner needs to judge it dry, are where most invented lines come from. So a
leaf whose recent calls brought few fresh entries is probed with a small ask:

    ask = clamp(ceil(ask_gain × recent fresh per call), min_ask, items_per_call)

with "recent" the planner's judging window (``window_calls``). A leaf with no call yet gets
the full ask (optimism, as ``policy.expected_new_per_call``). The ask grows back when a small
ask comes back mostly fresh: it tracks the yield, it is not a one-way ratchet.

Retirement keeps its meaning — fresh entries *per item asked* over the window, below
``low_yield_share`` — because the judge divides by what the window's calls really asked,
not by ``calls × items_per_call``. Observation records do not carry the ask, but they need
not: the ask is a pure function of the leaf's call history, so ``asks_of`` recomputes each
call's ask from the calls before it, and an owner judging a helper's calls needs nothing the
records do not hold. The recomputation is exact when the calls on a leaf do not overlap; a
call chosen while another on the same leaf was in flight (or before a peer's observation
arrived) saw fewer calls, and is credited with the ask the finished history implies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from partitioning.config import PartitionConfig

__all__ = ["ask_for", "asks_of", "window_asked"]


def ask_for(recent_fresh: Sequence[int], config: PartitionConfig, items_per_call: int) -> int:
    """Items to ask of a leaf whose last calls (oldest first, at most ``window_calls``) brought ``recent_fresh``."""
    if not config.adaptive_ask or not recent_fresh:
        return items_per_call
    window = recent_fresh[-config.window_calls :]
    per_call = sum(window) / len(window)
    floor = min(config.min_ask, items_per_call)
    return max(floor, min(items_per_call, math.ceil(config.ask_gain * per_call)))


def asks_of(fresh: Sequence[int], config: PartitionConfig, items_per_call: int) -> list[int]:
    """The ask of each call in a leaf's history (its calls' fresh counts, oldest first).

    Call ``i`` asked what ``ask_for`` gives for the calls before it. A slice of the history
    may be passed: its first calls are then credited as if nothing came before them.
    """
    return [ask_for(fresh[max(0, i - config.window_calls) : i], config, items_per_call) for i in range(len(fresh))]


def window_asked(fresh: Sequence[int], config: PartitionConfig, items_per_call: int) -> int:
    """Items the last ``window_calls`` calls of a leaf asked in all (``fresh``: its whole history or a tail)."""
    window = config.window_calls
    history = fresh[-2 * window :]  # each call's ask depends on at most the window before it
    return sum(asks_of(history, config, items_per_call)[-window:])
