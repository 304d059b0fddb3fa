"""Tests for node.evidence: an entry's status as a pure function of generations and verdicts."""

from __future__ import annotations

import pytest

from node.errors import ConfigError
from node.evidence import (
    EntryStatus,
    Evidence,
    VerificationPolicy,
    status_of,
    wants_check,
)

POLICY = VerificationPolicy(rule="strict", max_checks=3)
MAJORITY = VerificationPolicy(rule="majority", max_checks=3)
SEQUENTIAL = VerificationPolicy()  # the default rule
C, U, R = EntryStatus.CONFIRMED, EntryStatus.UNCONFIRMED, EntryStatus.REJECTED


@pytest.mark.parametrize(
    ("generations", "real", "not_real", "strict", "majority"),
    [
        (1, 0, 0, U, U),  # generated once, never checked
        (2, 0, 0, C, C),  # repeated by an independent call: self-consistency confirms
        (9, 0, 0, C, C),
        (1, 1, 0, C, C),  # verified real once
        (1, 0, 1, R, R),  # verified not real
        (1, 1, 1, R, U),  # conflicting verdicts on a singleton: strict rejects, majority is undecided
        (1, 2, 1, R, C),
        (1, 1, 2, R, R),
        (2, 1, 1, C, C),  # a tie on a repeated entry: repetition decides
        (3, 0, 1, R, R),  # repeated, but verified not real: the verdict wins
        (3, 2, 1, C, C),
        (5, 1, 2, R, R),
    ],
)
def test_status_table(generations: int, real: int, not_real: int, strict: EntryStatus, majority: EntryStatus) -> None:
    """Each combination of evidence maps to one status, under both rules for conflicting singletons."""
    evidence = Evidence(generations, real, not_real)
    assert status_of(evidence, POLICY) is strict
    assert status_of(evidence, MAJORITY) is majority


@pytest.mark.parametrize(
    ("evidence", "wanted"),
    [
        (Evidence(1, 0, 0), True),  # unchecked singleton
        (Evidence(1, 1, 0), True),  # one "real" is not enough for a singleton (singleton_checks = 2)
        (Evidence(1, 2, 0), False),  # settled real
        (Evidence(1, 0, 1), False),  # rejected: settled
        (Evidence(2, 0, 0), False),  # repeated and never doubted
        (Evidence(2, 0, 1), False),  # repeated, doubted once: rejected (not_real > real)
        (Evidence(3, 1, 1), True),  # repeated, one verdict each way: another may settle it
        (Evidence(1, 2, 1), False),  # three checks: the limit
    ],
)
def test_which_entries_want_another_check(evidence: Evidence, wanted: bool) -> None:
    """Only evidence the next verdict could still change is worth a verification call."""
    assert wants_check(evidence, POLICY) is wanted


@pytest.mark.parametrize(
    ("generations", "real", "not_real", "expected"),
    [
        (1, 0, 0, U),  # generated once, never checked
        (2, 0, 0, C),  # repeated: self-consistency confirms
        (1, 1, 0, U),  # one "real" from a verifier that passes 23% of inventions proves little
        (1, 4, 0, U),  # odds 2.8^4 ≈ 60 : 1, short of 99 : 1
        (1, 5, 0, C),  # 2.8^5 ≈ 167 : 1
        (1, 5, 1, U),  # a dissent brings it back under 99 : 1
        (1, 0, 1, U),  # one "not real": the verifier says it of 36% of real items
        (1, 0, 6, U),  # 0.47^6: odds ≈ 1 : 95
        (1, 0, 7, R),  # ≈ 1 : 203
        (1, 2, 10, R),  # conflicting, but the weight is clear
        (3, 0, 2, C),  # repeated and doubted twice: the repeat stands
        (3, 0, 7, R),  # repeated, but the verdicts outweigh it
    ],
)
def test_sequential_status_table(generations: int, real: int, not_real: int, expected: EntryStatus) -> None:
    """The default rule weighs each verdict by the verifier's error rates (an SPRT)."""
    assert status_of(Evidence(generations, real, not_real), SEQUENTIAL) is expected


@pytest.mark.parametrize(
    ("evidence", "wanted"),
    [
        (Evidence(1, 0, 0), True),
        (Evidence(1, 4, 1), True),  # undecided
        (Evidence(1, 5, 0), False),  # confirmed
        (Evidence(1, 0, 7), False),  # rejected
        (Evidence(2, 0, 0), False),  # repeated and never doubted
        (Evidence(2, 0, 1), True),  # repeated but doubted: more verdicts may reject it
        (Evidence(2, 6, 1), False),  # ... until they settle it real (2.8^6 × 0.47 ≈ 214 : 1)
        (Evidence(1, 12, 12), False),  # max_checks (24) reached undecided: it stays unconfirmed
    ],
)
def test_sequential_checks_go_on_until_the_odds_settle(evidence: Evidence, wanted: bool) -> None:
    assert wants_check(evidence, SEQUENTIAL) is wanted


def test_each_rule_has_its_own_default_check_limit() -> None:
    assert VerificationPolicy().check_limit == 24
    assert VerificationPolicy(rule="majority").check_limit == VerificationPolicy(rule="strict").check_limit == 3
    assert VerificationPolicy(rule="majority", max_checks=5).check_limit == 5


def test_a_more_reliable_verifier_settles_in_fewer_verdicts() -> None:
    """The rates weigh the verdicts: with a verifier right 95% of the time two agreeing verdicts settle it."""
    reliable = VerificationPolicy(p_real_says_real=0.95, p_invented_says_real=0.05)
    assert status_of(Evidence(1, 2, 0), reliable) is C and status_of(Evidence(1, 0, 2), reliable) is R
    assert status_of(Evidence(1, 2, 0), SEQUENTIAL) is U


@pytest.mark.parametrize(
    "knobs",
    [
        {"rule": "vote"},
        {"p_real_says_real": 0.2, "p_invented_says_real": 0.3},  # says "real" more of inventions: useless
        {"p_real_says_real": 1.0},
        {"p_invented_says_real": 0.0},
        {"settle_odds": 1.0},
        {"settle_odds": float("inf")},
    ],
)
def test_bad_sequential_knobs_are_refused(knobs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        VerificationPolicy(**knobs)  # type: ignore[arg-type]


def test_policy_validation_and_off() -> None:
    """Bad knobs are a ConfigError; off() makes no verification calls but keeps the status rules."""
    with pytest.raises(ConfigError):
        VerificationPolicy(call_share=1.5)
    with pytest.raises(ConfigError):
        VerificationPolicy(batch=0)
    with pytest.raises(ConfigError):
        VerificationPolicy(max_checks=0)
    off = VerificationPolicy.off()
    assert off.call_share == 0 and status_of(Evidence(2, 0, 0), off) is C
