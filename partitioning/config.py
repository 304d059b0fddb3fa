"""``PartitionConfig``: when a node splits, retires and schedules partitions.

These are swarmlist's own policy knobs, not the model's behaviour: they decide how small the
parts get and when a part is judged done. The defaults are reasoned in the field comments;
``scripts/bench/partitioning.py`` and ``scripts/bench/yield_thresholds.py`` measure them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from node.codec import MAX_SPLIT_CHILDREN
from node.errors import ConfigError

__all__ = ["PartitionConfig"]


@dataclass(frozen=True, kw_only=True)
class PartitionConfig:
    """How the partition plan grows and how producers pick their next partition."""

    enabled: bool = True  # off: every call is about the whole topic (the no-partitioning baseline)
    max_split_parts: int = 16  # children asked for per split; more = smaller parts, but a longer split answer
    # (too few makes the model lump the rest into an "Other …" bucket that overlaps its siblings)
    split_known_tokens: int = 1500  # split a leaf whose known entries pass this many prompt tokens
    # (half the default known-entries budget: a part that fills the prompt is already one the
    # model half ignores — obedience falls as the list grows, design.md)
    split_attempts: int = 3  # unusable split answers before the alphabetical fallback
    min_split_entries: int = 40  # a leaf this big (known entries) is split when its yield dips...
    min_split_remaining: float = 10.0  # ...and, once dry, one with this many estimated unseen (Chao1)
    max_depth: int = 8  # no split below this depth
    # The yield rules (partitioning.policy.judge), chosen on scripts/bench/yield_thresholds.py (the
    # levers setup, seeds 1-3; docs/partitioning.md "Choosing the yield thresholds"): splitting a
    # big leaf as soon as its yield dips (0.8) reached 70% of the universe in 20% fewer calls than
    # splitting only when dry (0.4); judging over 2 calls, not 3, spent 29% fewer calls in all for
    # 1.3 points less coverage and 8.5 points more precision.
    window_calls: int = 2  # a leaf's yield is judged over its last this many calls (all nodes)
    low_yield_share: float = 0.4  # fresh entries per item asked below this = low yield: retire a
    # leaf too small to split. It must sit well above the share of names a model invents for an
    # exhausted part, since an invention is new to the list and counts as fresh: ~0.25 of the
    # answer (the simulator's invented_rate_exhausted, from published observations).
    split_yield_share: float = 0.8  # a leaf with min_split_entries known is split once its yield dips
    # below this: its children, smaller pools, start near full yield
    explore_prior: float = 1.0  # expected new per item asked of a leaf with no calls yet (optimistic)
    # The adaptive ask (partitioning.ask): a call asks ceil(ask_gain × the leaf's recent fresh
    # entries per call) items, within min_ask..items_per_call — a nearly dry leaf is probed with
    # small asks, since a model asked for more than it knows invents the rest (arXiv 2405.02732).
    # Off: every call asks items_per_call. Smaller asks cut inventions but find the leaf's last
    # real entries more slowly; too small a min_ask makes each probe's yield noisy.
    adaptive_ask: bool = False
    ask_gain: float = 2.5  # items asked per fresh entry expected (1 / low_yield_share: asks shrink where yield is low)
    min_ask: int = 5  # the smallest ask
    # How entries found in a partition before it was split reach its children's prompts:
    # "route" — down alphabetical splits by initial, and below a semantic split once a child's
    # call generates them (one repeat each); "inherit" — what cannot be routed goes into every
    # child's prompt (no repeats, but the prompt fills with siblings' entries); "none" — children
    # start empty (the baseline: every parent entry is repeated once per child that holds it).
    parent_entries: Literal["route", "inherit", "none"] = "route"
    # Which leaves a node's calls go to (partitioning.planner): "owned" — only the leaves this
    # node owns (all of them when it owns none); "shared" — the network's calls dealt out as one
    # central scheduler would spread them (policy.share_calls), owners first, any node retiring
    # a dry leaf. Measured side by side (scripts/bench/levers.py, seeds 1-3): shared reached
    # 10/20/40/50% of the universe in 119/240/569/825 calls against owned's 148/318/768/939 and
    # 80% of what the model knows in 3% fewer (1,672 against 1,716), but spent 7.5% more calls in
    # all (2,241 against 2,084) for the same final coverage (72.8%) at 1 point less precision.
    # Owned stays the default as it costs less to finish; shared is the one to try when early
    # progress matters more.
    schedule: Literal["owned", "shared"] = "owned"

    def __post_init__(self) -> None:
        if not 2 <= self.max_split_parts <= MAX_SPLIT_CHILDREN:
            raise ConfigError(f"max_split_parts must be within 2..{MAX_SPLIT_CHILDREN}, got {self.max_split_parts}")
        if self.split_known_tokens < 1 or self.min_split_entries < 1 or self.min_split_remaining < 0:
            raise ConfigError("split_known_tokens and min_split_entries must be >= 1")
        if not 0 <= self.max_depth <= 20:
            raise ConfigError(f"max_depth must be within 0..20, got {self.max_depth}")
        if not 1 <= self.split_attempts <= 10:
            raise ConfigError(f"split_attempts must be within 1..10, got {self.split_attempts}")
        if self.window_calls < 1:
            raise ConfigError(f"window_calls must be >= 1, got {self.window_calls}")
        if self.parent_entries not in ("route", "inherit", "none"):
            raise ConfigError(f"parent_entries must be route, inherit or none, got {self.parent_entries!r}")
        if self.schedule not in ("shared", "owned"):
            raise ConfigError(f"schedule must be shared or owned, got {self.schedule!r}")
        if not 0.0 <= self.low_yield_share <= 1.0 or not 0.0 <= self.explore_prior <= 1.0:
            raise ConfigError("low_yield_share and explore_prior must be within [0, 1]")
        if not 0.0 <= self.split_yield_share <= 1.0:
            raise ConfigError(f"split_yield_share must be within [0, 1], got {self.split_yield_share}")
        if not (math.isfinite(self.ask_gain) and self.ask_gain > 0) or self.min_ask < 1:
            raise ConfigError(f"ask_gain must be > 0 and min_ask >= 1, got {self.ask_gain} and {self.min_ask}")

    @classmethod
    def off(cls) -> PartitionConfig:
        """No partitioning: the whole topic in every call."""
        return cls(enabled=False)
