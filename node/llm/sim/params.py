"""The simulated LLM's behaviour parameters, each with the observation it is drawn from.

These are the instrument's calibration: every benchmark result is only as honest as they are.
They are documented in ``docs/simulated-llm.md``, printed with every result that uses them
(``SimParams.describe()``), and frozen once benchmarks use them — a change is a commit of its
own with its cited reason, and reruns every benchmark. Never tune them to flatter the system.

``SimParams.version`` names the frozen set; bump it with any change.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from node.errors import ConfigError

__all__ = ["SimParams", "PARAMS_VERSION", "expected_distinct", "solve_popularity_alpha"]

PARAMS_VERSION = "2026-11-25.3"


@dataclass(frozen=True, kw_only=True)
class SimParams:
    """How the simulated model behaves. Probabilities are per generated item unless noted."""

    version: str = PARAMS_VERSION
    # Popularity bias: an item is drawn with weight popularity**alpha. The published figure is
    # the diversity, not alpha: NoveltyBench (arXiv 2504.05228) finds 2.8-3.9 functionally
    # distinct answers in 10 samples for frontier models. So alpha is solved per universe
    # (popularity curves differ: countries vs cities) to give target_distinct_in_10 one-item
    # answers of the whole topic; set popularity_alpha to override the solved value.
    target_distinct_in_10: float = 3.5
    popularity_alpha: float | None = None
    # Long-tail recall: the model knows an item with probability falling from 1 (head) to
    # tail_recall (least popular); items it doesn't know are never generated. Shape from
    # arXiv 2602.14080 / 2405.02732 (recall drops sharply in the long tail); value assumed.
    tail_recall: float = 0.55
    # Popularity quantile above which every item is known (the "head").
    head_quantile: float = 0.5
    # Obedience to "do not repeat these": a drawn item that is on the visible known list is
    # redrawn with probability obey_max / (1 + visible_known / obey_half_list). Imperfect and
    # worse as the list grows (design.md's model; "lost in the middle", arXiv 2307.03172).
    obey_max: float = 0.9
    obey_half_list: float = 300.0
    # The model reads at most this many known entries (its effective context for the list);
    # entries past it are invisible to it.
    context_known_limit: int = 1500
    # Strays: an item from a sibling partition instead of the one asked for.
    stray_rate: float = 0.04
    # Variants: a real alternate name (exonym, transliteration) instead of the main name...
    alternate_name_rate: float = 0.06
    # ...or a surface variant of the main name (accents dropped, "Saint"→"St.", case, typo).
    surface_variant_rate: float = 0.04
    # Invented, plausible-looking names (hallucinations), rarely the same twice.
    invented_rate: float = 0.02
    # Extra share of invented names once the model runs out of items it knows in the part
    # (models confabulate more in the long tail; arXiv 2405.02732).
    invented_rate_exhausted: float = 0.25
    # Items per answer: the asked count times a factor drawn uniformly in [1-x, 1+x].
    count_jitter: float = 0.2
    # Answer formats (weights): JSON as asked, fenced JSON, numbered list, bullets with
    # descriptions, comma-separated prose. Instruction-tuned models follow a JSON request
    # most of the time, not always.
    format_weights: tuple[float, float, float, float, float] = (0.70, 0.12, 0.08, 0.06, 0.04)
    # Verification ("is each of these a real item of the topic?"), per asked item. Chain-of-
    # Verification (Dhuliawala et al., arXiv 2309.11495, Table 1, Llama 65B, Wikidata list
    # questions, two-step: one separate prompt answers every check, as ours does) kept 0.38 of
    # 0.59 correct entities per answer and 0.68 of 2.95 hallucinated ones. So a real item the
    # model knows is called not real with 1 - 0.38/0.59 = 0.36, an invented one is caught with
    # 1 - 0.68/2.95 = 0.77. Neither paper nor any source found gives the rate for a real item
    # the model cannot recall: it recognises some (recognition beats recall) but has less to go
    # on than for items it knows, so halfway between the two measured rates is assumed.
    p_false_reject_known: float = 0.36
    p_reject_unknown_real: float = 0.56
    p_reject_invented: float = 0.77
    # An item left out of the verification answer (answers to long batches are not always
    # complete); assumed.
    verify_skip_rate: float = 0.02
    # Verification answer formats (weights): the JSON asked for, fenced JSON, numbered lines
    # ("1. Oslo — yes"). Same shares as format_weights, its three line formats pooled.
    verify_format_weights: tuple[float, float, float] = (0.70, 0.12, 0.18)
    # Faults, per call: 429 with Retry-After, 500, a hang (no answer), a truncated answer
    # (finish_reason "length"), garbled text. Typical public-API error rates are ~0.1-2%.
    rate_limit_rate: float = 0.01
    server_error_rate: float = 0.005
    hang_rate: float = 0.002
    truncate_rate: float = 0.01
    garble_rate: float = 0.003
    retry_after_s: float = 1.0
    # Latency: time to first token plus output tokens / throughput, scaled by time_scale.
    # ~0.5 s TTFT and ~60 tok/s are typical of hosted chat models.
    first_token_s: float = 0.5
    tokens_per_s: float = 60.0
    time_scale: float = 1.0  # 0 = no delay (tests, simulations on a virtual clock)

    def __post_init__(self) -> None:
        rates = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name.endswith("_rate")
            or field.name.startswith("p_")
            or field.name in {"tail_recall", "head_quantile", "obey_max"}
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"sim parameter {name} must be within [0, 1], got {value}")
        fault_total = (
            self.rate_limit_rate + self.server_error_rate + self.hang_rate
            + self.truncate_rate + self.garble_rate
        )  # fmt: skip
        if fault_total > 1.0:
            raise ConfigError(f"sim fault rates add up to {fault_total:.3f} > 1")
        if (self.popularity_alpha is not None and self.popularity_alpha < 0) or self.obey_half_list <= 0 \
                or self.context_known_limit < 0:  # fmt: skip
            raise ConfigError("sim popularity_alpha, obey_half_list, context_known_limit must be >= 0")
        if not 1.0 <= self.target_distinct_in_10 <= 10.0:
            raise ConfigError(f"sim target_distinct_in_10 must be within [1, 10], got {self.target_distinct_in_10}")
        if not all(math.isfinite(value) for value in (self.time_scale, self.tokens_per_s, self.first_token_s)):
            raise ConfigError("sim latency parameters must be finite numbers")  # nan/inf: an answer never comes
        if self.time_scale < 0 or self.tokens_per_s <= 0 or self.first_token_s < 0:
            raise ConfigError("sim latency parameters must be non-negative (tokens_per_s > 0)")
        if len(self.format_weights) != 5 or min(self.format_weights) < 0 or sum(self.format_weights) <= 0:
            raise ConfigError("sim format_weights must be 5 non-negative weights, not all zero")
        verify_weights = self.verify_format_weights
        if len(verify_weights) != 3 or min(verify_weights) < 0 or sum(verify_weights) <= 0:
            raise ConfigError("sim verify_format_weights must be 3 non-negative weights, not all zero")

    def replace(self, **changes: object) -> SimParams:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def ideal(cls) -> SimParams:
        """A perfectly obedient, fault-free model and verifier: the lower bound benchmarks compare to."""
        return cls(
            obey_max=1.0, obey_half_list=1e12, context_known_limit=10**9, stray_rate=0.0,
            alternate_name_rate=0.0, surface_variant_rate=0.0, invented_rate=0.0,
            invented_rate_exhausted=0.0, tail_recall=1.0, rate_limit_rate=0.0,
            server_error_rate=0.0, hang_rate=0.0, truncate_rate=0.0, garble_rate=0.0,
            p_false_reject_known=0.0, p_reject_unknown_real=0.0, p_reject_invented=1.0,
            verify_skip_rate=0.0, time_scale=0.0,
        )  # fmt: skip

    @classmethod
    def fault_free(cls) -> SimParams:
        """The realistic model without transport faults (for tests of content behaviour)."""
        return cls(
            rate_limit_rate=0.0, server_error_rate=0.0, hang_rate=0.0, truncate_rate=0.0,
            garble_rate=0.0, time_scale=0.0,
        )  # fmt: skip

    def describe(self) -> dict[str, object]:
        """Every parameter by name, for printing beside a result."""
        return dataclasses.asdict(self)


def expected_distinct(popularities: Sequence[float], alpha: float, samples: int = 10) -> float:
    """Expected number of distinct items in ``samples`` draws with weight popularity**alpha."""
    weights = [max(p, 1.0) ** alpha for p in popularities]
    total = sum(weights)
    return float(sum(1.0 - (1.0 - w / total) ** samples for w in weights))


def solve_popularity_alpha(popularities: Sequence[float], target_distinct_in_10: float) -> float:
    """The alpha at which 10 draws give ``target_distinct_in_10`` distinct items (bisection).

    Expected distinctness falls monotonically as alpha grows (draws concentrate on the top).
    """
    low, high = 0.0, 8.0
    if expected_distinct(popularities, high) > target_distinct_in_10:
        return high
    for _ in range(40):
        middle = (low + high) / 2
        if expected_distinct(popularities, middle) > target_distinct_in_10:
            low = middle
        else:
            high = middle
    return float(round((low + high) / 2, 3))
