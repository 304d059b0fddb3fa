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
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
    singleton_checks: int = 2  # "real" verdicts that confirm an entry generated fewer times than that
    strict_singletons: bool = False  # one "not real" rejects an entry never repeated (else: majority)
    max_checks: int = 3  # verdicts asked per entry at most
    # Verification calls at most this share of all calls; 0 (the default until the precision
    # benchmark settles the policy) makes none: statuses then come from repeated generation.
    call_share: float = 0.0
    batch: int = 80  # entries per verification call (a checklist answer is ~15 tokens an item)

    def __post_init__(self) -> None:
        if self.repeat_confirms < 1 or self.singleton_checks < 1 or self.max_checks < 1:
            raise ConfigError("repeat_confirms, singleton_checks and max_checks must be >= 1")
        if not 0.0 <= self.call_share <= 1.0:
            raise ConfigError(f"call_share must be within [0, 1], got {self.call_share}")
        if not 1 <= self.batch <= 200:
            raise ConfigError(f"batch must be within 1..200, got {self.batch}")

    @classmethod
    def off(cls) -> VerificationPolicy:
        """No verification calls: statuses come from repeated generation alone."""
        return cls(call_share=0.0)

    @classmethod
    def checking(cls, share: float = 0.1) -> VerificationPolicy:
        """Verification calls within ``share`` of all calls."""
        return cls(call_share=share)


def status_of(evidence: Evidence, policy: VerificationPolicy) -> EntryStatus:
    """The status the evidence supports (see the module docstring)."""
    repeated = evidence.generations >= policy.repeat_confirms
    if evidence.not_real > evidence.real:
        return EntryStatus.REJECTED
    if not repeated and policy.strict_singletons and evidence.not_real:
        return EntryStatus.REJECTED
    if evidence.real > evidence.not_real or repeated:
        return EntryStatus.CONFIRMED
    return EntryStatus.UNCONFIRMED


def wants_check(evidence: Evidence, policy: VerificationPolicy) -> bool:
    """Whether another verdict could still change this entry's status, within ``max_checks``."""
    if evidence.verdicts >= policy.max_checks:
        return False
    status = status_of(evidence, policy)
    if status is EntryStatus.REJECTED:
        return False
    if evidence.generations >= policy.repeat_confirms and not evidence.not_real:
        return False  # repeated and never doubted: settled by self-consistency
    if status is EntryStatus.CONFIRMED:
        return evidence.real - evidence.not_real < policy.singleton_checks
    return True
