"""Child labels of a split: a model's answer cleaned into labels, and the alphabetical fallback.

A split asks the model for at most N non-overlapping sub-categories of a partition. Its
answer is untrusted text: ``node.parser.parse_answer`` extracts the items (JSON of any key,
fenced or not, numbered or bulleted lists, prose), then each item is cleaned into a label
(markup, wrapping quotes, trailing punctuation and a trailing qualifier such as "(country)"
go; path separators become "-" so a label never contains " > "; a SHOUTED label is
title-cased) and dropped when it cannot name a partition: no letters, longer than
``MAX_LABEL_CHARS``, a vague bucket made only of generic words ("Other", "Misc", "Major ones",
"The rest" — while "Other countries" names what it holds and stays, since dropping it would
lose the items the model did not list), a name of the parent, or a duplicate by normal form
("The Netherlands" = "Netherlands"). The first ``max_parts`` survivors are kept; a split is
usable with two or more. Leading articles stay in the label as the model wrote them.

The fallback is mechanical: contiguous ranges of initials ("A–F", "Starting with K"), balanced by the known
entries per initial. Choosing the cut points is the linear-partition problem (Skiena, *The
Algorithm Design Manual*, 2nd ed., §8.5), solved by dynamic programming over the ≤ 26
letters: the heaviest range is minimal (exactly); ties are broken prefix by prefix by the
sum of squared range weights, then of squared widths (spreading letters without entries).

Names that start with a digit or a non-Latin letter have the initial "#". They file under
whichever letter range holds "a", so no new label syntax is needed (a model, or the
simulated LLM, reads "A–F" but not "#–F"), and the rule nests: the children of a range
holding "a" include one holding "a".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from string import ascii_lowercase

from node.normalize import normal_form
from node.parser import parse_answer
from node.prompts import PARTITION_SEPARATOR

__all__ = [
    "MAX_LABEL_CHARS", "NON_LATIN_INITIAL", "DropReason", "SplitLabels", "clean_split_labels",
    "initial_of", "label_admits", "letter_ranges", "letter_set",
]  # fmt: skip

log = logging.getLogger(__name__)

MAX_LABEL_CHARS = 80  # a longer label is a description, not a name; dropped, never truncated
NON_LATIN_INITIAL = "#"  # the initial of a name that starts with a digit or a non-Latin letter


class DropReason(StrEnum):
    """Why a label of a split answer was not kept."""

    NO_LETTERS = "no letters"
    TOO_LONG = "too long"
    VAGUE = "vague bucket"
    PARENT = "names the parent"
    DUPLICATE = "duplicate"
    OVER_LIMIT = "over max_parts"


@dataclass(frozen=True, slots=True)
class SplitLabels:
    """The child labels a split answer gave, and what was dropped from it and why."""

    labels: tuple[str, ...]
    dropped: tuple[tuple[str, DropReason], ...]  # (item as the model wrote it, reason)

    @property
    def usable(self) -> bool:
        """Two labels at least: one label is no split."""
        return len(self.labels) >= 2


# Words that name no kind of thing: a label made only of these is a bucket that overlaps its
# siblings ("Major ones", "Other", "The rest"), while "Other countries" says what it holds.
_VAGUE_WORDS = frozenset(
    "other others misc miscellaneous various rest remaining remainder everything anything else "
    "all etc more additional major minor small smaller large larger big bigger main lesser "
    "known well popular famous notable general mixed unknown uncategorized unclassified "
    "one ones item items entry entries thing things stuff category categories subcategory "
    "subcategories sub group groups type types kind kinds part parts option options "
    "and or of the".split()
)
_SMALL_WORDS = frozenset("and or of the in on for de la le du des del y et und".split())
_EDGE_QUOTES = " \"'`“”‘’«»„"
_EDGE_PUNCTUATION = " .,;:!?"
_EMPHASIS = re.compile(r"\*\*|__|`")
_TRAILING_PARENTHETICAL = re.compile(r"(?<=\S)\s*\(([^()]*)\)$")
_PATH_SEPARATORS = re.compile(r"\s*(?:[>/\\|›»→]|::)\s*")

_LETTER_RANGE = re.compile(
    r"(?:^|[\s(:])([A-Za-z])\s*(?:-|–|—|to|through|\.\.)\s*([A-Za-z])(?:$|[\s),.:])"
)
_STARTING_WITH = re.compile(
    r"\b(?:starting|beginning|begin|start)s?\s+with\s+(?:the\s+letter\s+)?([A-Za-z])\b",
    re.IGNORECASE,
)
_LONE_LETTER = re.compile(r"(?:(?:the\s+)?letter\s+)?([A-Za-z])", re.IGNORECASE)


def clean_split_labels(
    answer_text: str, *, max_parts: int, parent_labels: Sequence[str] = ()
) -> SplitLabels:
    """The child labels in a split answer for the partition ``parent_labels``."""
    if max_parts < 2:
        raise ValueError(f"max_parts must be >= 2, got {max_parts}")
    parsed = parse_answer(answer_text)
    parent_forms = _path_forms(parent_labels)
    labels: list[str] = []
    seen_forms: set[str] = set()
    dropped: list[tuple[str, DropReason]] = []
    for item in parsed.entries:
        label = _clean_label(item)
        form = normal_form(label)
        reason: DropReason | None = None
        if not any(char.isalpha() for char in label):
            reason = DropReason.NO_LETTERS
        elif len(label) > MAX_LABEL_CHARS:
            reason = DropReason.TOO_LONG
        elif all(word in _VAGUE_WORDS for word in form.split()):
            reason = DropReason.VAGUE
        elif form in parent_forms:
            reason = DropReason.PARENT
        elif form in seen_forms:
            reason = DropReason.DUPLICATE
        elif len(labels) >= max_parts:
            reason = DropReason.OVER_LIMIT
        if reason is None:
            labels.append(label)
            seen_forms.add(form)
        else:
            dropped.append((item, reason))
    log.debug(
        "split answer (%s): %d labels kept, %d dropped, %d items unparsable",
        parsed.format,
        len(labels),
        len(dropped),
        parsed.dropped,
    )
    return SplitLabels(tuple(labels), tuple(dropped))


def _path_forms(path: Sequence[str]) -> set[str]:
    """Normal forms of every label of ``path`` and of every run of them ("France", "Western
    Europe > France"): a child named so repeats its parent or an ancestor."""
    forms = {
        normal_form(PARTITION_SEPARATOR.join(path[start:end]))
        for start in range(len(path))
        for end in range(start + 1, len(path) + 1)
    }
    forms.discard("")
    return forms


def _clean_label(item: str) -> str:
    label = " ".join(_EMPHASIS.sub("", item).split()).strip(_EDGE_QUOTES + "*_")
    label = label.rstrip(_EDGE_PUNCTUATION).strip(_EDGE_QUOTES)
    qualifier = _TRAILING_PARENTHETICAL.search(label)
    # "France (country)" loses its qualifier, but "Cities (A–F)" keeps the range it names.
    if qualifier is not None and letter_set(qualifier.group(1)) is None:
        label = label[: qualifier.start()].rstrip(_EDGE_PUNCTUATION).strip(_EDGE_QUOTES)
    label = " ".join(_PATH_SEPARATORS.sub("-", label).split()).strip("-")
    return _unshout(label)


def _unshout(label: str) -> str:
    """A SHOUTED label in title case: NORTHERN EUROPE → Northern Europe; "UK", "A–F" stay."""
    if not label.isupper() or sum(char.isalpha() for char in label) < 4:
        return label
    words = []
    for index, word in enumerate(label.split()):
        if index > 0 and word.lower() in _SMALL_WORDS:
            word = word.lower()
        elif sum(char.isalpha() for char in word) > 3:
            word = "-".join(part[:1] + part[1:].lower() for part in word.split("-"))
        words.append(word)
    return " ".join(words)


def letter_set(label: str) -> frozenset[str] | None:
    """The initials a letter-range label names ("A–F", "Cities M-P", "starting with K", "K").

    Lowercase letters, plus "#" when the range holds "a"; None for any other label.
    """
    range_match = _LETTER_RANGE.search(label)
    if range_match is not None:
        low, high = sorted((range_match.group(1).lower(), range_match.group(2).lower()))
        letters = frozenset(ascii_lowercase[ord(low) - ord("a") : ord(high) - ord("a") + 1])
    else:
        single = _STARTING_WITH.search(label) or _LONE_LETTER.fullmatch(label.strip())
        if single is None:
            return None
        letters = frozenset(single.group(1).lower())
    return letters | {NON_LATIN_INITIAL} if "a" in letters else letters


def initial_of(normal_form_text: str) -> str:
    """The initial a name files under: its normal form's first letter, or "#"."""
    first = normal_form_text[:1]
    return first if "a" <= first <= "z" else NON_LATIN_INITIAL


def label_admits(label: str, normal_form_text: str) -> bool | None:
    """Whether a letter-range label holds the name; None for a semantic label (unknown)."""
    letters = letter_set(label)
    return None if letters is None else initial_of(normal_form_text) in letters


def letter_ranges(
    initial_counts: Mapping[str, int], parts: int, *, within: frozenset[str] | None = None
) -> list[str]:
    """At most ``parts`` contiguous letter ranges covering a–z (or ``within``), balanced.

    ``initial_counts`` are the known entries per initial (as ``initial_of`` gives); the "#"
    count weighs on "a". Every available letter is in exactly one range, counted or not.
    Fewer than two available letters cannot be split: []. A ``within`` with gaps gives
    ranges that span them, which is harmless: a child only ever classifies its parent's names.
    """
    if parts < 2:
        raise ValueError(f"parts must be >= 2, got {parts}")
    letters = sorted((within if within is not None else frozenset(ascii_lowercase)) - {"#"})
    if any(letter not in ascii_lowercase or len(letter) != 1 for letter in letters):
        raise ValueError(f"within must hold only a-z and '#', got {sorted(within or ())}")
    if any(count < 0 for count in initial_counts.values()):
        raise ValueError("initial counts must be >= 0")
    if len(letters) < 2:
        return []
    weights = [initial_counts.get(letter, 0) for letter in letters]
    if letters[0] == "a":
        weights[0] += initial_counts.get(NON_LATIN_INITIAL, 0)
    bounds = _balanced_runs(weights, min(parts, len(letters)))
    return [_render_range(letters[start:end]) for start, end in bounds]


def _balanced_runs(weights: Sequence[int], runs: int) -> list[tuple[int, int]]:
    """Cut ``weights`` into ``runs`` non-empty contiguous runs, as (start, end) bounds.

    best[j][i] is the cost of cutting the first i weights into j runs: (heaviest run, sum of
    squared run weights, sum of squared run widths), compared in that order; cut[j][i] is
    where that cut's last run starts. Ties go to the earliest start, so the result is unique.
    """
    size = len(weights)
    prefix = [0]
    for weight in weights:
        prefix.append(prefix[-1] + weight)
    best = [[(0, 0, 0)] * (size + 1) for _ in range(runs + 1)]
    cut = [[0] * (size + 1) for _ in range(runs + 1)]
    for run in range(1, runs + 1):
        for end in range(run, size + 1):
            best[run][end], cut[run][end] = min(
                (
                    (
                        max(best[run - 1][start][0], prefix[end] - prefix[start]),
                        best[run - 1][start][1] + (prefix[end] - prefix[start]) ** 2,
                        best[run - 1][start][2] + (end - start) ** 2,
                    ),
                    start,
                )
                for start in (range(run - 1, end) if run > 1 else (0,))  # run 1 starts at 0
            )
    bounds: list[tuple[int, int]] = []
    end = size
    for run in range(runs, 0, -1):
        bounds.append((cut[run][end], end))
        end = cut[run][end]
    return bounds[::-1]


def _render_range(letters: Sequence[str]) -> str:
    first, last = letters[0].upper(), letters[-1].upper()
    # "Starting with K", not a bare "K": a lone letter does not read as a range to a model.
    return f"Starting with {first}" if first == last else f"{first}–{last}"
