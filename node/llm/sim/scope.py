"""Where in its universe the simulated model looks: partition labels → a subtree (+ letters).

A model asked about "Western Europe > France" or "Cities in France" or "A–F" understands the
label loosely; so does this. Each label is matched against the group names below the current
scope (exact normal form, then whole-word containment, then string similarity), at the next
level first and then at any deeper level; a letter-range label ("A–F", "starting with M")
restricts the scope to names with those initials. A label that matches nothing is ignored —
a real model would answer about the broader topic, which shows up as strays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from node.normalize import normal_form

__all__ = ["Scope", "resolve_scope", "letter_range_label", "initial_of"]

_LETTER_RANGE = re.compile(
    r"(?:^|[\s(:])([A-Za-z])\s*(?:-|–|—|to|through|\.\.)\s*([A-Za-z])(?:$|[\s),.])"
)
_SINGLE_LETTER = re.compile(r"\b(?:starting|beginning|begin|start)s?\s+with\s+(?:the\s+letter\s+)?([A-Za-z])\b", re.I)
_FUZZY_MIN = 85.0


@dataclass(frozen=True, slots=True)
class Scope:
    """A subtree of the universe, optionally restricted to names with some initials."""

    prefix: tuple[str, ...] = ()
    initials: frozenset[str] | None = None  # lowercase letters; None = any

    def admits(self, path: Sequence[str], name_normal_form: str) -> bool:
        if tuple(path[: len(self.prefix)]) != self.prefix:
            return False
        return self.initials is None or initial_of(name_normal_form) in self.initials


def initial_of(name_normal_form: str) -> str:
    """The letter a name files under ("#" for a digit or non-Latin start)."""
    first = name_normal_form[:1]
    return first if "a" <= first <= "z" else "#"


def letter_range_label(label: str) -> frozenset[str] | None:
    """The initials a label like "A–F", "Cities M-P" or "starting with K" names, if any."""
    match = _LETTER_RANGE.search(label)
    if match:
        low, high = sorted((match.group(1).lower(), match.group(2).lower()))
        return frozenset(chr(code) for code in range(ord(low), ord(high) + 1))
    single = _SINGLE_LETTER.search(label)
    if single:
        return frozenset({single.group(1).lower()})
    return None


_NARROWER_GROUP = 140.0  # the label is a word-run of the group's name: "Macedonia", "North Macedonia"


def _label_score(label_nf: str, group_nf: str) -> float:
    if label_nf == group_nf:
        return 200.0
    if re.search(rf"\b{re.escape(group_nf)}\b", label_nf):
        return 150.0 + len(group_nf) / 100  # longer containment wins: "Western Europe" over "Europe"
    if re.search(rf"\b{re.escape(label_nf)}\b", group_nf):
        return _NARROWER_GROUP
    return fuzz.ratio(label_nf, group_nf)


def _best_group(label: str, candidates: Iterable[tuple[str, ...]]) -> tuple[str, ...] | None:
    label_nf = normal_form(label)
    if not label_nf:
        return None
    best: tuple[float, tuple[str, ...]] | None = None
    narrower = 0
    for path in candidates:
        score = _label_score(label_nf, normal_form(path[-1]))
        narrower += score == _NARROWER_GROUP
        if score >= _FUZZY_MIN and (best is None or score > best[0] or (score == best[0] and path < best[1])):
            best = (score, path)
    if best is not None and best[0] == _NARROWER_GROUP and narrower > 1:
        return None  # "Europe" is in every European subregion's name: it names none of them
    return best[1] if best else None


def resolve_scope(labels: Sequence[str], group_paths: Sequence[tuple[str, ...]]) -> Scope:
    """Follow ``labels`` down the tree whose groups are ``group_paths`` (every proper prefix)."""
    prefix: tuple[str, ...] = ()
    initials: frozenset[str] | None = None
    for label in labels:
        letters = letter_range_label(label)
        if letters is not None:
            initials = letters if initials is None else initials & letters
            continue
        below = [path for path in group_paths if len(path) > len(prefix) and path[: len(prefix)] == prefix]
        next_level = [path for path in below if len(path) == len(prefix) + 1]
        found = _best_group(label, next_level) or _best_group(label, below)
        if found is not None:
            prefix = found
    return Scope(prefix, initials)
