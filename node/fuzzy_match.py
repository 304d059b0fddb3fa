"""The fuzzy key of an entry and the rule that verifies two keys as one thing's names.

The *fuzzy key* is what the fuzzy stage of ``node.dedup`` compares: the normal form
(``node.normalize``) with abbreviations expanded ("St." = "Saint") and transliteration variants
folded (ae/oe/ue = a/o/u, ye = e, y = i, doubled letters single). MinHash candidates both miss
real variants and collide distinct names, so each candidate pair is verified by a rule on the
two fuzzy keys: equal keys; or an extension "x <connector> …" of the other; or a string
similarity ≥ ``min_score`` with the same initial — by default the normalised Indel similarity
(1 − insertions and deletions needed / total length = 2·LCS / (|a| + |b|), rapidfuzz's
``fuzz.ratio``; Navarro, "A guided tour to approximate string matching", ACM Computing
Surveys 33(1), 2001). Names that differ in a number, a Roman numeral or a qualifier
word ("South Sudan" / "Sudan", "Louis XIV" / "Louis XV") never match.

Both are pure functions of the texts and ``FuzzyParams``, symmetric in the two keys, so the
"verified near-duplicate" relation is the same on every node. ``FuzzyParams`` also holds the
MinHash-LSH parameters (k-gram size, bands × rows, the shared permutation seed) that
``node.dedup`` uses, since all of them together define that relation. The defaults were
measured: ``docs/benchmarks.md`` ("Dedup"), rerun by ``scripts/bench/dedup.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from rapidfuzz import fuzz
from rapidfuzz.distance import Indel, JaroWinkler

from node.errors import ConfigError
from node.normalize import normal_form

__all__ = [
    "DEFAULT_PARAMS",
    "FUZZY_SEED",
    "SCORERS",
    "FuzzyParams",
    "ScoreFn",
    "Scorer",
    "extension_head",
    "fuzzy_key",
    "fuzzy_key_of_normal",
    "is_extension",
    "near_duplicate_score",
]

FUZZY_SEED: Final = 20261125
"""Seed of the MinHash permutations. Every node must use the same one: the near-duplicate
relation, and so the global list, depend on it."""

Scorer = Literal["indel", "jaro_winkler", "token_sort"]


@dataclass(frozen=True, kw_only=True)
class FuzzyParams:
    """The fuzzy stage's parameters (defaults measured: see docs/benchmarks.md, "Dedup")."""

    # k of the character k-grams; smaller k raises the similarity of variants and of
    # unrelated names alike (more candidates to verify). Place names are short: 2.
    shingle_chars: int = 2
    # LSH bands × rows = number of MinHash permutations. A pair of Jaccard similarity J is a
    # candidate with probability 1 - (1 - J**rows)**bands: more bands find more variants and
    # cost memory per entry (one dict item per band); more rows cut random candidates.
    bands: int = 32
    rows: int = 6
    # Permutation seed; changing it changes the global list, so it is a protocol constant.
    seed: int = FUZZY_SEED
    # Verification: the string similarity of the two fuzzy keys...
    scorer: Scorer = "indel"
    # ...must reach this (0..1). Lower catches more typos and more distinct look-alike towns
    # (Rotenburg / Rottenburg, Hamm / Hamme): real European place names are dense.
    min_score: float = 0.92
    # ...and, below a perfect score, the two names must begin with the same letter
    # (Feltham / Eltham, Kitzingen / Ditzingen are different towns).
    same_initial: bool = True
    # Never match names that differ in a number, Roman numeral or qualifier word.
    guard_qualifiers: bool = True
    # Expand "St"/"Ste"/"Sankt"/"Mt"/"Ft" before comparing ("St. Gallen" = "Sankt Gallen").
    expand_abbreviations: bool = True
    # Fold transliteration variants before comparing: German ae/oe/ue = a/o/u
    # (Buerstadt = Bürstadt), Russian/Ukrainian ye = e, y = i (Alekseyevka = Alekseevka,
    # Zhukovskiy = Zhukovsky).
    fold_transliterations: bool = True
    # Fold doubled letters (Tallinn = Tallin, and also Rottenburg = Rotenburg).
    fold_double_letters: bool = True
    # Match a name with its extended form "X <connector> …" (Klagenfurt = Klagenfurt am
    # Wörthersee, and also Palma = Palma del Río).
    match_extensions: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.shingle_chars <= 6:
            raise ConfigError(f"shingle_chars must be in 2..6, got {self.shingle_chars}")
        if self.bands < 1 or self.rows < 1:
            raise ConfigError(f"bands and rows must be >= 1, got {self.bands}×{self.rows}")
        if not 0.0 < self.min_score <= 1.0:
            raise ConfigError(f"min_score must be in (0, 1], got {self.min_score}")
        if self.scorer not in SCORERS:
            raise ConfigError(f"unknown scorer {self.scorer!r}; known: {sorted(SCORERS)}")

    @property
    def num_perm(self) -> int:
        """Number of MinHash permutations (bands × rows)."""
        return self.bands * self.rows


# Words a model abbreviates; the normal form has already dropped the dot ("St." -> "st").
_ABBREVIATIONS: Final = {
    "st": "saint",
    "ste": "sainte",
    "sankt": "saint",  # German "Sankt Gallen" = "St. Gallen"
    "mt": "mount",
    "ft": "fort",
}

# Words that make a different place of the same name: "South Sudan" is not "Sudan",
# "Bad Homburg" is not "Homburg".
_QUALIFIERS: Final = frozenset(
    {
        "north", "south", "east", "west", "northern", "southern", "eastern", "western",
        "central", "equatorial", "new", "old", "upper", "lower", "great", "little",
        "nord", "sud", "est", "ouest", "nieder", "ober", "unter", "bad",
    }
)  # fmt: skip
_ROMAN: Final = frozenset(
    "i ii iii iv v vi vii viii ix x xi xii xiii xiv xv xvi xvii xviii xix xx xxi xxii xxiii".split()
)
# Words that join a place name to its qualifier: "am Main", "upon Avon", "de Mallorca".
_CONNECTORS: Final = frozenset(
    "am an im in ob bei auf sur sous les en sul sulla di del della dei de da do dos das la"
    " on upon under op aan bij nad pod na".split()
)
_TRANSLITERATIONS: Final = re.compile("ye|ae|oe|ue")
_RUNS_OF_I: Final = re.compile("i+")
_DOUBLE_LETTERS: Final = re.compile(r"(.)\1+")


def fuzzy_key(text: str, params: FuzzyParams | None = None) -> str:
    """What the fuzzy stage compares: the normal form, abbreviations expanded, folded."""
    return fuzzy_key_of_normal(normal_form(text), params or DEFAULT_PARAMS)


def fuzzy_key_of_normal(normal: str, params: FuzzyParams) -> str:
    key = normal
    if params.expand_abbreviations:
        words = key.split(" ")
        if not _ABBREVIATIONS.keys().isdisjoint(words):
            key = " ".join(_ABBREVIATIONS.get(word, word) for word in words)
    if params.fold_transliterations or params.fold_double_letters:
        words = key.split(" ")
        if _ROMAN.isdisjoint(words):
            key = _fold(key, params)
        else:  # "Louis XIV", "Budapest III": numerals are not spellings to fold
            key = " ".join(word if word in _ROMAN else _fold(word, params) for word in words)
    return key


def _fold(text: str, params: FuzzyParams) -> str:
    if params.fold_transliterations:
        text = _TRANSLITERATIONS.sub(_fold_pair, text)
        text = _RUNS_OF_I.sub("i", text.replace("y", "i"))
    if params.fold_double_letters:
        text = _DOUBLE_LETTERS.sub(r"\1", text)
    return text


def _fold_pair(match: re.Match[str]) -> str:
    return "e" if match.group() == "ye" else match.group()[0]


def _distinguishing_words(key: str) -> list[str]:
    """The words of ``key`` that two names of one thing must share exactly."""
    return sorted(w for w in key.split(" ") if w in _QUALIFIERS or w in _ROMAN or w.isdigit())


def _differ_in_qualifiers(key_a: str, key_b: str) -> bool:
    return _distinguishing_words(key_a) != _distinguishing_words(key_b)


def extension_head(key: str) -> str | None:
    """The head of an extended key: "klagenfurt" for "klagenfurt am worthersee", else None."""
    words = key.split(" ")
    for position in range(1, len(words) - 1):
        if words[position] in _CONNECTORS:
            return " ".join(words[:position])
    return None


def is_extension(key_a: str, key_b: str) -> bool:
    short, long = (key_a, key_b) if len(key_a) < len(key_b) else (key_b, key_a)
    return long.startswith(short + " ") and extension_head(long) == short


ScoreFn = Callable[..., float]
SCORERS: Final[dict[str, tuple[ScoreFn, float]]] = {
    # (rapidfuzz scorer, its scale): scores are reported on 0..1.
    "indel": (Indel.normalized_similarity, 1.0),  # = fuzz.ratio / 100
    "jaro_winkler": (JaroWinkler.normalized_similarity, 1.0),
    "token_sort": (fuzz.token_sort_ratio, 100.0),
}


def near_duplicate_score(key_a: str, key_b: str, params: FuzzyParams | None = None) -> float:
    """The verification rule: similarity (0..1] of two fuzzy keys, or 0.0 if not verified.

    A pure function of the two keys and the parameters, symmetric in its arguments.
    """
    params = params or DEFAULT_PARAMS
    if params.guard_qualifiers and _differ_in_qualifiers(key_a, key_b):
        return 0.0
    if key_a == key_b:
        return 1.0
    score_fn, scale = SCORERS[params.scorer]
    score = float(score_fn(key_a, key_b)) / scale
    if params.match_extensions and is_extension(key_a, key_b):
        return max(score, 1e-3)  # verified whatever the similarity
    if params.same_initial and key_a[:1] != key_b[:1]:
        return 0.0
    return score if score >= params.min_score else 0.0


DEFAULT_PARAMS: Final = FuzzyParams()
