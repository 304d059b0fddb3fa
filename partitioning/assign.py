"""Ownership: which live member owns each leaf partition, by weighted rendezvous hashing.

Rendezvous or Highest Random Weight hashing (Thaler & Ravishankar, "A Name-Based Mapping
Scheme for Rendezvous", U. Michigan TR CSE-TR-316-96, 1996; "Using Name-Based Mappings to
Increase Hit Rates", IEEE/ACM ToN 6(1), 1998) gives every (member, partition) pair a
pseudo-random score; a partition is owned by the member with the highest score. Every node
computes the same owner from the same membership view with no coordination, and when a member
leaves only the partitions it owned move (each to its runner-up); when one joins it takes
only the partitions where it now scores highest — about 1/N of them, the minimum possible.

Members differ in capacity (their ``--concurrency``), so scores are weighted with the
logarithmic method (Schindelhauer & Schomaker, "Weighted Distributed Hash Tables", SPAA 2005;
the same rule as Resch's "logarithmic method" for weighted HRW): with ``u`` uniform in (0, 1),
``score = -weight / ln(u)``. ``-ln(u) / weight`` is exponential with rate ``weight``, and the
minimum of independent exponentials falls on member i with probability ``w_i / Σw``; so each
member owns a share proportional to its weight, and raising one member's weight only ever moves
partitions *to* that member. Scaling every weight by one constant changes nothing.

``u`` comes from BLAKE2b over the length-prefixed member name and the partition path (never
``hash()``, which is salted per process), so every process on every machine agrees. Scores are
floats: a platform's ``log`` may differ by one ulp, which could flip only a near-exact tie
(probability ~2^-50 per pair); a momentary disagreement costs duplicate work, never data.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping

__all__ = ["rendezvous_score", "rank_members", "owner_of", "assign", "owned_by", "churn"]

# Domain separation: these hashes can never coincide with entry ids or other BLAKE2b uses.
_PERSON = b"swarmlist-hrw-1"
# 52 bits so that (x + 0.5) is exact in a double and u lies strictly inside (0, 1):
# u = 0 would make ln(u) infinite and u = 1 would divide by zero.
_UNIFORM_BITS = 52


def _uniform(member: str, partition: str) -> float:
    """A stable uniform in (0, 1) for the pair (member, partition)."""
    member_bytes = member.encode("utf-8")
    # The length prefix makes the split unambiguous: ("ab", "c") and ("a", "bc") differ.
    hasher = hashlib.blake2b(digest_size=8, person=_PERSON)
    hasher.update(len(member_bytes).to_bytes(8, "big"))
    hasher.update(member_bytes)
    hasher.update(partition.encode("utf-8"))
    return _uniform_from_digest(hasher.digest())


def _uniform_from_digest(digest: bytes) -> float:
    bits = int.from_bytes(digest[:8], "big") >> (64 - _UNIFORM_BITS)
    return (bits + 0.5) / (1 << _UNIFORM_BITS)


def _check_weight(member: str, weight: float) -> None:
    if not math.isfinite(weight) or weight <= 0:
        raise ValueError(
            f"weight of member {member!r} must be a finite number > 0 (its capacity), "
            f"got {weight!r}"
        )


def _check_weights(weights: Mapping[str, float]) -> None:
    for member, weight in weights.items():
        _check_weight(member, weight)


def _score(member: str, partition: str, weight: float) -> float:
    return -weight / math.log(_uniform(member, partition))


def rendezvous_score(member: str, partition: str, weight: float = 1.0) -> float:
    """The weighted HRW score of ``member`` for ``partition``: higher wins; always > 0."""
    _check_weight(member, weight)
    return _score(member, partition, weight)


def _rank_key(partition: str, weights: Mapping[str, float]) -> Callable[[str], tuple[float, str]]:
    # Ties (practically impossible between distinct names) go to the smaller name, so the
    # ranking never depends on the mapping's insertion order.
    def key(member: str) -> tuple[float, str]:
        return (-_score(member, partition, weights[member]), member)

    return key


def rank_members(partition: str, weights: Mapping[str, float]) -> list[str]:
    """Every member of ``weights``, best owner of ``partition`` first (ties by name)."""
    _check_weights(weights)
    return sorted(weights, key=_rank_key(partition, weights))


def _best(partition: str, weights: Mapping[str, float]) -> str:
    """The top-ranked member; ``weights`` must not be empty."""
    return min(weights, key=_rank_key(partition, weights))


def owner_of(partition: str, weights: Mapping[str, float]) -> str | None:
    """The member that owns ``partition``, or None when there are no members."""
    _check_weights(weights)
    return _best(partition, weights) if weights else None


def assign(partitions: Iterable[str], weights: Mapping[str, float]) -> dict[str, str]:
    """Partition -> owner for every partition; empty when there are no members."""
    _check_weights(weights)
    if not weights:
        return {}
    return {partition: _best(partition, weights) for partition in partitions}


def owned_by(member: str, partitions: Iterable[str], weights: Mapping[str, float]) -> list[str]:
    """The partitions ``member`` owns, sorted; empty if it is not a member."""
    owners = assign(partitions, weights)
    return sorted(partition for partition, owner in owners.items() if owner == member)


def churn(before: Mapping[str, str], after: Mapping[str, str]) -> float:
    """Share of the partitions present in both assignments whose owner changed (0.0 if none)."""
    common = before.keys() & after.keys()
    if not common:
        return 0.0
    moved = sum(1 for partition in common if before[partition] != after[partition])
    return moved / len(common)
