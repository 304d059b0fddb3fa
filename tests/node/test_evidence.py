"""Tests for node.evidence: an entry's status as a pure function of generations and verdicts."""

from __future__ import annotations

import pytest

from node.errors import ConfigError
from node.evidence import EntryStatus, Evidence, VerificationPolicy, status_of, wants_check

POLICY = VerificationPolicy(strict_singletons=True)
MAJORITY = VerificationPolicy(strict_singletons=False)
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
