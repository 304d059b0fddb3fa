"""An entry's status — confirmed, unconfirmed, rejected — as a pure function of its evidence.

Exhaustive enumeration drives a model into its long tail, where it invents plausible names.
Two kinds of evidence tell real entries from inventions, both in the replicated records:

- **independent generations** (observation records): a real item recurs across independent
  calls, an invention rarely does — the self-consistency idea of SelfCheckGPT (Manakul et al.,
  EMNLP 2023, arXiv 2303.08896);
- **verification verdicts** (verdict records): the model, asked "is this a real item of the
  topic?", judges more reliably than it generates — the generate-then-verify pattern of
  Chain-of-Verification (Dhuliawala et al., arXiv 2309.11495) and L3X (arXiv 2405.02732).

``status_of`` combines them by the rules of ``VerificationPolicy`` (table-tested), so every node
holding the same records shows the same status. ``wants_check`` says which entries are worth
a verification call: the ones whose status the next verdict could still change.

The verifier is the same fallible model, so one verdict proves little: Chain-of-Verification
measured a checking model that keeps 0.38/0.59 = 64% of the real items it had listed and lets
0.68/2.95 = 23% of its inventions through. The *sequential* rule (the default) therefore weighs
verdicts as a sequential probability ratio test (Wald 1945): each "real" multiplies the
likelihood ratio that an entry is real by 0.64/0.23 ≈ 2.8, each "not real" by 0.36/0.77 ≈ 0.47,
and an entry is settled once the ratio passes ``settle_odds`` either way — a handful of checks
where the verdicts agree, more where they conflict, none wasted on entries already settled. The *majority* and
*strict* rules are the earlier fixed-count ones, kept for the precision benchmark's comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from node.errors import ConfigError

__all__ = ["EntryStatus", "Evidence", "VerificationPolicy", "status_of", "wants_check"]


class EntryStatus(StrEnum):
    CONFIRMED = "confirmed"  # repeated by independent calls, or verified real
    UNCONFIRMED = "unconfirmed"  # generated once and not (decisively) verified yet
    REJECTED = "rejected"  # verified not real: kept in the set, left out of the default list


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the records say about one line of the list (its entry and aliases together)."""

    generations: int = 0  # generated items that resolved to it, over all calls
    real: int = 0  # verdicts "real"
    not_real: int = 0  # verdicts "not real"

    @property
    def verdicts(self) -> int:
        return self.real + self.not_real


@dataclass(frozen=True, kw_only=True)
class VerificationPolicy:
    """How evidence becomes a status, and how much verification an entry gets."""

    repeat_confirms: int = 2  # generations that confirm an entry on their own (inventions rarely recur)
    # How verdicts settle an entry generated fewer times than that: "sequential" weighs them by the
    # verifier's error rates below until their ratio passes settle_odds; "majority" rejects when more
    # say "not real" than "real"; "strict" rejects on one "not real" (the fixed-count rules).
    rule: Literal["sequential", "majority", "strict"] = "sequential"
    # The verifier's rates (Chain-of-Verification, arXiv 2309.11495, Table 1, Llama 65B, two-step:
    # 0.38 of 0.59 real items per answer kept, 0.68 of 2.95 inventions let through). A network on
    # a better verifier may set them from its measurement — on every node alike, like the dedup
    # parameters, or nodes would show different statuses for the same records.
    p_real_says_real: float = 0.64
    p_invented_says_real: float = 0.23
    settle_odds: float = 99.0  # likelihood ratio of the verdicts (real : invented, or the reverse)
    # that settles an entry: posterior odds 99 : 1 from even prior odds
    singleton_checks: int = 2  # majority/strict: "real" verdicts that confirm an entry not repeated
    # Verdicts asked per entry at most; None: 24 for the sequential rule (with CoVe's rates it
    # settles an entry in 5 verdicts at least, ~10 typically, and ~1 in 10 reach 24 undecided and
    # stay unconfirmed), 3 for the fixed-count rules.
    max_checks: int | None = None
    # Verification calls at most this share of all calls; 0 (the default until the precision
    # benchmark settles the policy) makes none: statuses then come from repeated generation.
    call_share: float = 0.0
    batch: int = 80  # entries per verification call (a checklist answer is ~15 tokens an item)

    def __post_init__(self) -> None:
        too_few_checks = self.max_checks is not None and self.max_checks < 1
        if self.repeat_confirms < 1 or self.singleton_checks < 1 or too_few_checks:
            raise ConfigError("repeat_confirms, singleton_checks and max_checks must be >= 1")
        if not 0.0 <= self.call_share <= 1.0:
            raise ConfigError(f"call_share must be within [0, 1], got {self.call_share}")
        if not 1 <= self.batch <= 200:
            raise ConfigError(f"batch must be within 1..200, got {self.batch}")
        if self.rule not in ("sequential", "majority", "strict"):
            raise ConfigError(f"rule must be sequential, majority or strict, got {self.rule!r}")
        if not 0.0 < self.p_invented_says_real < self.p_real_says_real < 1.0:
            raise ConfigError("the verifier must say 'real' more often of real items than of invented ones, "
                              f"both within (0, 1): got {self.p_real_says_real} and {self.p_invented_says_real}")
        if not (math.isfinite(self.settle_odds) and self.settle_odds > 1.0):
            raise ConfigError(f"settle_odds must be a finite number > 1, got {self.settle_odds}")

    @classmethod
    def off(cls) -> VerificationPolicy:
        """No verification calls: statuses come from repeated generation alone."""
        return cls(call_share=0.0)

    @classmethod
    def checking(cls, share: float = 0.1) -> VerificationPolicy:
        """Verification calls within ``share`` of all calls."""
        return cls(call_share=share)

    @property
    def check_limit(self) -> int:
        """Verdicts asked per entry at most (``max_checks``, or the rule's default)."""
        if self.max_checks is not None:
            return self.max_checks
        return 24 if self.rule == "sequential" else 3

    def log_odds(self, evidence: Evidence) -> float:
        """The verdicts' weight of evidence that the entry is real: the natural log of their
        likelihood ratio (real : invented) under the verifier's rates."""
        says_real = math.log(self.p_real_says_real / self.p_invented_says_real)
        says_not = math.log((1.0 - self.p_real_says_real) / (1.0 - self.p_invented_says_real))
        return evidence.real * says_real + evidence.not_real * says_not


def status_of(evidence: Evidence, policy: VerificationPolicy) -> EntryStatus:
    """The status the evidence supports (see the module docstring)."""
    repeated = evidence.generations >= policy.repeat_confirms
    if policy.rule == "sequential":
        weight = policy.log_odds(evidence)
        settle = math.log(policy.settle_odds)
        if weight <= -settle:  # verdicts can reject a repeated entry too: inventions do recur, rarely
            return EntryStatus.REJECTED
        if repeated or weight >= settle:
            return EntryStatus.CONFIRMED
        return EntryStatus.UNCONFIRMED
    if evidence.not_real > evidence.real:
        return EntryStatus.REJECTED
    if not repeated and policy.rule == "strict" and evidence.not_real:
        return EntryStatus.REJECTED
    if evidence.real > evidence.not_real or repeated:
        return EntryStatus.CONFIRMED
    return EntryStatus.UNCONFIRMED


def wants_check(evidence: Evidence, policy: VerificationPolicy) -> bool:
    """Whether another verdict could still change this entry's status, within ``max_checks``."""
    if evidence.verdicts >= policy.check_limit:
        return False
    status = status_of(evidence, policy)
    if status is EntryStatus.REJECTED:
        return False
    if evidence.generations >= policy.repeat_confirms and not evidence.not_real:
        return False  # repeated and never doubted: settled by self-consistency
    if policy.rule == "sequential":  # until the weight passes the settling ratio either way
        return abs(policy.log_odds(evidence)) < math.log(policy.settle_odds)
    if status is EntryStatus.CONFIRMED:
        return evidence.real - evidence.not_real < policy.singleton_checks
    return True
