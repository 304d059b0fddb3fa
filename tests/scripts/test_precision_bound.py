"""Tests for scripts/bench/precision_bound.py: the lower bound on verdicts any verification policy needs."""

from __future__ import annotations

import math
import random

from node.evidence import (
    EntryStatus,
    Evidence,
    VerificationPolicy,
    status_of,
    wants_check,
)
from scripts.bench.precision_bound import least_verdicts

P_REAL, P_INVENTED = 0.64, 0.23


def _bound(cells: list[tuple[int, int]], kept: float, rejected: float) -> float:
    verdicts, _, _ = least_verdicts(cells, allowed_kept_inventions=kept, allowed_rejected_real=rejected,
                                    p_real=P_REAL, p_invented=P_INVENTED)  # fmt: skip
    return verdicts


def test_a_cell_of_inventions_only_is_rejected_whole_for_free() -> None:
    assert _bound([(0, 1000)], kept=0.5, rejected=0.5) < 1.0


def test_a_cell_within_the_allowances_needs_no_verdict() -> None:
    """Ten inventions among real lines, ten allowed to stay: keeping the cell whole meets the target."""
    assert _bound([(1000, 10)], kept=10, rejected=5) < 1.0


def test_a_mixed_cell_costs_about_what_walds_bound_says_and_no_more_than_a_plan_that_meets_it() -> None:
    """1,000 real and 1,000 invented lines, 1% error allowed each way: the bound is below the cost of
    testing every line at exactly those error rates, and not far below it."""
    per_line_divergence = 0.99 * math.log(99) + 0.01 * math.log(1 / 99)
    d_real = P_REAL * math.log(P_REAL / P_INVENTED) + (1 - P_REAL) * math.log((1 - P_REAL) / (1 - P_INVENTED))
    d_invented = (P_INVENTED * math.log(P_INVENTED / P_REAL)
                  + (1 - P_INVENTED) * math.log((1 - P_INVENTED) / (1 - P_REAL)))  # fmt: skip
    plan = 1000 * per_line_divergence / d_real + 1000 * per_line_divergence / d_invented
    bound = _bound([(1000, 1000)], kept=10, rejected=10)
    assert 0.7 * plan <= bound <= plan * 1.001


def test_no_real_sequential_test_beats_the_bound() -> None:
    """The node's own sequential rule, run on simulated verdicts, spends at least the bound for the
    errors it makes (the bound could fail here if it were not a lower bound). Wald's bound is about
    expectations, so the errors are taken at an upper confidence bound of their rate."""
    rng = random.Random(7)
    policy = VerificationPolicy(max_checks=200)
    lines = [True] * 2000 + [False] * 2000
    verdicts = kept_inventions = rejected_real = 0
    for real in lines:
        evidence = Evidence(1, 0, 0)
        while wants_check(evidence, policy):
            says_real = rng.random() < (P_REAL if real else P_INVENTED)
            evidence = Evidence(1, evidence.real + says_real, evidence.not_real + (not says_real))
            verdicts += 1
        status = status_of(evidence, policy)
        kept_inventions += not real and status is not EntryStatus.REJECTED
        rejected_real += real and status is EntryStatus.REJECTED
    assert kept_inventions < 60 and rejected_real < 60  # it is a real test: it decides
    kept, rejected = (count + 2 * math.sqrt(count) + 1 for count in (kept_inventions, rejected_real))
    assert verdicts >= _bound([(2000, 2000)], kept=kept, rejected=rejected)
