"""Synthetic universes of any size, generated deterministically from a seed: for scale runs.

The shipped universes stop at ~7,800 items; a scale benchmark needs tens of thousands. A
synthetic universe ``synthetic-<N>`` is generated at load time (nothing large is stored in
git) with the same shape as the real ones, so the simulated model, the partition planner
and the benchmarks handle it unchanged:

- **a two-level hierarchy**, region → province (like subregion → country), with
  provinces of very unequal size (log-normal weights, as countries hold very different
  numbers of cities), so partitions split where they must;
- **invented single-word place names** built from syllables ("Velmora", "Drakoten"), at
  most 11 letters, with no letter doubled, no "y" and no vowel pair: then a name is its own
  fuzzy key (``node.fuzzy_match``: doubled letters, y/i and ae/oe/ue are what it folds),
  and no two names are one insertion or deletion apart. Two keys of at most 11 letters
  that are further apart score at most 1 − 2/22 ≈ 0.909 < 0.92, the fuzzy stage's
  threshold, so dedup treats every two items as distinct (the tests check it with the
  dedup itself);
- **alternate names** for ~9% of the items, as european-cities has (9.2%): half are
  spelling variants the fuzzy stage folds or matches (a "y" for an "i", a doubled
  consonant, an "h" after the first consonant: "Kalomyra" for "Kalomira"), half are
  exonyms, unrelated names no dedup can tie to the item (like Cologne for Köln) — alias
  leakage the benchmarks must see;
- **popularity from real populations' rank–size law**: popularity is population, as in the
  shipped universes. The populations follow the rank–size law P(r) = P1·r^−s (Zipf's law for
  cities: Zipf 1949; Gabaix, QJE 1999) with P1 and s taken from the european-cities universe
  (its largest population, and the least-squares slope of log population on log rank,
  s ≈ 0.81), at ranks 1..N dealt to the items in random order. The simulated model then
  solves its popularity exponent from them exactly as for the shipped universes
  (``SimParams.target_distinct_in_10``). Nothing is tuned for the synthetic universe.
  (Resampling the real populations instead would put ~2.6 items at every real rank: a top
  so flat that no exponent up to the solver's bound of 8 gives 3.5 distinct in 10.)

It is synthetic ground truth, not real data: coverage of it says nothing about a real
model's knowledge, only about the system's mechanics at scale.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Sequence

from rapidfuzz import fuzz

from node.errors import ConfigError
from node.llm.sim.universe import Universe, UniverseItem, load_universe

__all__ = [
    "ALTERNATE_SHARE",
    "DEFAULT_SYNTHETIC_SEED",
    "MAX_NAME_CHARS",
    "MAX_SYNTHETIC_ITEMS",
    "MIN_SYNTHETIC_ITEMS",
    "POPULATION_SOURCE",
    "SYNTHETIC_PREFIX",
    "generate_universe",
    "rank_size_law",
    "synthetic_size",
    "synthetic_universe",
]

logger = logging.getLogger(__name__)

SYNTHETIC_PREFIX = "synthetic-"
MIN_SYNTHETIC_ITEMS = 100
MAX_SYNTHETIC_ITEMS = 200_000
DEFAULT_SYNTHETIC_SEED = 20_000  # the seed of every ``synthetic-<N>`` loaded by name
POPULATION_SOURCE = "european-cities"  # whose rank–size law of populations gives the popularity
ALTERNATE_SHARE = 0.09  # items with alternate names (european-cities: 9.2%)
EXONYM_SHARE = 0.5  # of those, the share whose alternate is an unrelated name

TOPIC = "towns of Synthetica"
LEVELS = ("region", "province")
MAX_NAME_CHARS = 11  # keeps every two names below the fuzzy threshold (module docstring)
ITEMS_PER_PROVINCE = 200  # on average; european-cities has ~165 per country
MIN_PROVINCE_ITEMS = 5
PROVINCE_SIZE_SIGMA = 1.0  # log-normal spread of province sizes
MAX_GROUP_SIMILARITY = 80.0  # fuzz.ratio between group names stays below the scope's 85

_ONSETS = (
    "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
    "br", "dr", "gr", "kr", "tr", "pl", "vl", "sk", "st", "sv",
)  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "", "", "n", "r", "l", "s", "m")  # an open syllable most often
_SYLLABLE_TABLE = tuple(onset + vowel + coda for onset in _ONSETS for vowel in _VOWELS for coda in _CODAS)
_SYLLABLES = (2, 2, 3, 3, 3, 4)  # item names: two to four syllables
_DOUBLED = re.compile(r"(.)\1")


def synthetic_size(name: str) -> int | None:
    """N for a name ``synthetic-<N>``, None for any other name; ``ConfigError`` if N is out of range."""
    if not name.startswith(SYNTHETIC_PREFIX):
        return None
    digits = name.removeprefix(SYNTHETIC_PREFIX)
    if not digits.isdigit() or digits != str(int(digits)):
        return None
    size = int(digits)
    if not MIN_SYNTHETIC_ITEMS <= size <= MAX_SYNTHETIC_ITEMS:
        raise ConfigError(
            f"universe {name!r}: a synthetic universe holds {MIN_SYNTHETIC_ITEMS:,}..{MAX_SYNTHETIC_ITEMS:,} items"
        )
    return size


def synthetic_universe(name: str) -> Universe:
    """The universe ``synthetic-<N>``: ``generate_universe(N)`` with the default seed (``load_universe`` caches it)."""
    size = synthetic_size(name)
    if size is None:
        raise ConfigError(f"{name!r} is not a synthetic universe name ({SYNTHETIC_PREFIX}<items>)")
    return generate_universe(size, seed=DEFAULT_SYNTHETIC_SEED, name=name)


def generate_universe(size: int, *, seed: int = DEFAULT_SYNTHETIC_SEED, name: str | None = None) -> Universe:
    """``size`` items with distinct names over a region → province hierarchy, a pure function of ``seed``."""
    if not MIN_SYNTHETIC_ITEMS <= size <= MAX_SYNTHETIC_ITEMS:
        raise ConfigError(f"a synthetic universe holds {MIN_SYNTHETIC_ITEMS:,}..{MAX_SYNTHETIC_ITEMS:,} items, not {size}")
    rng = random.Random(f"synthetic:{seed}:{size}")
    names = _NameRegistry(rng)
    provinces = _hierarchy(size, names, rng)
    populations = iter(_populations(size, rng))
    items: list[UniverseItem] = []
    for path, count in provinces:
        for _ in range(count):
            main = names.new_name()
            items.append(UniverseItem(main, path, next(populations), _alternates(main, names, rng)))
    items.sort(key=lambda item: (item.path, -item.popularity, item.name))
    universe = Universe(
        name=name or f"{SYNTHETIC_PREFIX}{size}",
        topic=TOPIC,
        levels=LEVELS,
        items=tuple(items),
        attribution=(
            f"Synthetic: invented names generated by node.llm.sim.synthetic (seed {seed}); popularity from "
            f"the rank-size law of the {POPULATION_SOURCE} universe's populations (GeoNames, CC BY 4.0)"
        ),
    )
    logger.debug("generated %r", universe)
    return universe


class _NameRegistry:
    """Invents names no two of which are equal or one insertion/deletion apart (see the module docstring)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._taken: set[str] = set()  # lowercase names (= normal forms = fuzzy keys)
        self._deletions: set[str] = set()  # every name with one letter deleted

    def new_name(self, syllables: Sequence[int] = _SYLLABLES) -> str:
        while True:
            key = self._candidate(self._rng.choice(syllables))
            if self.claim(key):
                return key.capitalize()

    def claim(self, key: str) -> bool:
        """Take ``key`` if it keeps every two names apart; False (and nothing taken) otherwise."""
        deletions = {key[:i] + key[i + 1 :] for i in range(len(key))}
        if key in self._taken or key in self._deletions or not deletions.isdisjoint(self._taken):
            return False
        self._taken.add(key)
        self._deletions |= deletions
        return True

    def reserve(self, variant: str) -> bool:
        """Take a spelling variant of a taken name if no name is spelled so (it is meant to be near its own)."""
        if variant in self._taken:
            return False
        self._taken.add(variant)
        return True

    def _candidate(self, syllables: int) -> str:
        while True:
            opening = self._rng.choice(_VOWELS) if self._rng.random() < 0.1 else ""  # a few open with a vowel
            key = opening + "".join(self._rng.choices(_SYLLABLE_TABLE, k=syllables))
            if 4 <= len(key) <= MAX_NAME_CHARS and not _DOUBLED.search(key):
                return key


def _hierarchy(size: int, names: _NameRegistry, rng: random.Random) -> list[tuple[tuple[str, str], int]]:
    """(region, province) paths with how many items each holds, summing to ``size``."""
    province_count = max(2, round(size / ITEMS_PER_PROVINCE))
    region_count = max(1, round(math.sqrt(province_count)))
    group_names: list[str] = []
    regions = [_group_name(names, group_names) for _ in range(region_count)]
    paths = [(regions[index % region_count], _group_name(names, group_names)) for index in range(province_count)]
    weights = [rng.lognormvariate(0.0, PROVINCE_SIZE_SIGMA) for _ in paths]
    spare = size - MIN_PROVINCE_ITEMS * province_count
    if spare < 0:
        raise ConfigError(f"{size} items cannot fill {province_count} provinces of {MIN_PROVINCE_ITEMS}")
    shares = [spare * weight / sum(weights) for weight in weights]
    counts = [MIN_PROVINCE_ITEMS + math.floor(share) for share in shares]
    by_remainder = sorted(range(len(paths)), key=lambda index: (-(shares[index] % 1), index))
    for index in by_remainder[: size - sum(counts)]:  # largest remainders get the leftover items
        counts[index] += 1
    return sorted(zip(paths, counts, strict=True))


def _group_name(names: _NameRegistry, others: list[str]) -> str:
    """A region or province name unlike every other group's (the model resolves labels by similarity)."""
    while True:
        name = names.new_name((2, 3))
        if all(fuzz.ratio(name.lower(), other.lower()) < MAX_GROUP_SIMILARITY for other in others):
            others.append(name)
            return name


def rank_size_law(populations: Sequence[float]) -> tuple[float, float]:
    """(P1, s) of the rank–size law P(r) = P1·r^−s: the largest population and the least-squares
    slope of log population against log rank (Zipf's law for cities has s ≈ 1)."""
    ordered = sorted((p for p in populations if p > 0), reverse=True)
    xs = [math.log(rank) for rank in range(1, len(ordered) + 1)]
    ys = [math.log(population) for population in ordered]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return ordered[0], -slope


def _populations(size: int, rng: random.Random) -> list[float]:
    """One population per item: the source universe's rank–size law at ranks 1..size, in random order."""
    largest, exponent = rank_size_law([item.popularity for item in load_universe(POPULATION_SOURCE).items])
    populations = [float(round(largest * rank**-exponent)) for rank in range(1, size + 1)]
    rng.shuffle(populations)
    return populations


def _alternates(main: str, names: _NameRegistry, rng: random.Random) -> tuple[str, ...]:
    if rng.random() >= ALTERNATE_SHARE:
        return ()
    if rng.random() < EXONYM_SHARE:
        return (names.new_name(),)
    variant = _spelling_variant(main.lower(), rng)
    if variant is None or not names.reserve(variant):
        return ()
    return (variant.capitalize(),)


def _spelling_variant(key: str, rng: random.Random) -> str | None:
    """Another spelling of ``key``: an "i" written "y", a consonant doubled, or an "h" after the first consonant.

    None of these appears in a generated name, so a variant never is another item's name.
    """
    kinds = []
    if "i" in key[1:]:
        kinds.append("y")
    consonants = [i for i in range(1, len(key) - 1) if key[i] not in _VOWELS and key[i - 1] in _VOWELS]
    if consonants:
        kinds.append("double")
    if key[0] not in (*_VOWELS, "h") and key[1] in _VOWELS:
        kinds.append("h")
    if not kinds:
        return None
    kind = rng.choice(kinds)
    if kind == "y":
        positions = [i for i in range(1, len(key)) if key[i] == "i"]
        at = rng.choice(positions)
        return key[:at] + "y" + key[at + 1 :]
    if kind == "double":
        at = rng.choice(consonants)
        return key[: at + 1] + key[at] + key[at + 1 :]
    return key[0] + "h" + key[1:]
