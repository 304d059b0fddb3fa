"""Streaming dedup: resolve a generated item to an existing entry, or accept it as new.

An item goes through three stages, cheapest first, and never scans the list:

1. **Exact** — the id of its normal form (``node.normalize``) is looked up in a dict.
2. **Candidates** — MinHash-LSH (Broder, "On the resemblance and containment of documents",
   1997; Indyk & Motwani, 1998; banding as in Leskovec, Rajaraman & Ullman, *Mining of
   Massive Datasets*, ch. 3). The item's *fuzzy key* (``node.fuzzy_match``: the normal form
   with abbreviations expanded and transliteration variants folded) is cut into character
   k-grams between start and end markers. Its signature is exactly datasketch's ``MinHash``
   (``affine32`` scheme, same seeded permutations, same MurmurHash3 pre-mix; tests check
   equality) fed those k-grams, computed with one numpy broadcast and a cache of the k-grams'
   hashes instead of one ``MinHash`` object and one SHA-1 per k-gram. The signature is cut
   into ``bands`` bands of ``rows`` values, each band folded to a 60-bit int; entries equal in
   some band are candidates. Only those ints are stored — one dict, band key → slot — not
   signatures. Extended names ("Klagenfurt am Wörthersee" / "Klagenfurt") get exact routes in
   the same dict, since their k-gram sets are too different for MinHash.
3. **Verification** — each candidate is verified by ``node.fuzzy_match``'s rule on the two
   fuzzy keys (rapidfuzz): equal keys, an extension, or a similar spelling with the same
   initial, never names that differ in a number, a Roman numeral or a qualifier word.

Everything here is a pure function of the texts and ``FuzzyParams``, whose permutation seed is
a module constant shared by every node: so the "verified near-duplicate" relation is the same
on every node whatever the order of insertion (a pair collides in a band or it does not).
The global list (``node.global_list``) clusters entries on exactly this relation.

The parameters were chosen from measurements on the simulated LLM's real universes (GeoNames
names against their real alternate names, and every town against all the others for false
friends) and a hand-built table; ``docs/benchmarks.md`` ("Dedup") has the tables and
``scripts/bench/dedup.py`` reruns them. Exonyms (Köln / Cologne) are beyond any string
similarity: they leak, and the benchmark says how much.

``Deduplicator(fuzzy=False)`` keeps stage 1 only (exact ids): no candidate, no verification,
no near-duplicate pairs, so the global list built on it never clusters. It exists for the
"exact dedup only" ablation of ``scripts/bench/levers.py``; every node of a cluster must use
the same setting, since the list is a function of the set *and* of this relation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from datasketch import MinHash
from rapidfuzz import process

from node.fuzzy_match import (
    DEFAULT_PARAMS,
    FUZZY_SEED,
    SCORERS,
    FuzzyParams,
    Scorer,
    extension_head,
    fuzzy_key,
    is_extension,
    near_duplicate_score,
)
from node.fuzzy_match import (
    fuzzy_key_of_normal as _fuzzy_key_of_normal,  # scripts/bench/dedup.py imports it from here
)
from node.normalize import ID_BYTES, EntryId, normal_form
from node.records import ItemDetail, MatchKind, ObservedItem

__all__ = [
    "DEFAULT_PARAMS",
    "FUZZY_SEED",
    "Deduplicator",
    "FuzzyParams",
    "MinHasher",
    "Resolution",
    "Scorer",
    "extension_head",
    "fuzzy_key",
    "kgram_hash",
    "kgrams",
    "near_duplicate_score",
    "verified_pairs",
]

logger = logging.getLogger(__name__)

_U32 = npt.NDArray[np.uint32]
_U64 = npt.NDArray[np.uint64]

# Bound of the k-gram hash cache (~100 bytes an item): far above a language's k-grams.
_MAX_CACHED_KGRAMS: Final = 1 << 18
_SHIFT_TO_60_BITS: Final = np.uint64(4)
# Odd multiplier of the polynomial k-gram hash: 64-bit golden ratio.
_KGRAM_MULTIPLIER: Final = 0x9E3779B97F4A7C15
_MASK64: Final = (1 << 64) - 1
# Start and end markers, so that "niger" and "nigeria" differ in their last k-gram.
_START, _END = "\x02", "\x03"


def kgram_hash(kgram: str) -> int:
    """The 32-bit hash of one k-gram (scalar reference of the vectorised path).

    Multiplicative hashing of the code points: c0·M^k + c1·M^(k-1) + … + c(k-1)·M mod 2**64,
    high 32 bits. The last multiplication matters: without it two k-grams differing by a small
    amount in their last character would share their high bits.
    """
    value = 0
    for char in kgram:
        value = ((value + ord(char)) * _KGRAM_MULTIPLIER) & _MASK64
    return value >> 32


def kgrams(key: str, k: int) -> list[str]:
    """The character k-grams of ``key`` between start and end markers (at least one)."""
    padded = _START + key + _END
    return [padded[i : i + k] for i in range(max(1, len(padded) - k + 1))]


class MinHasher:
    """MinHash signatures and LSH band keys of fuzzy keys, for fixed parameters.

    ``signature(key)`` equals ``datasketch.MinHash(num_perm, seed=seed, hashfunc=kgram_hash)``
    updated with ``kgrams(key, k)``: same permutations, same pre-mix; only the per-item object
    and the per-k-gram Python work are gone. The pre-mixed hash of each k-gram is cached (the
    k-grams of one language are few: tens of thousands), so an item costs a few dict lookups
    and three numpy operations.
    """

    def __init__(self, params: FuzzyParams | None = None) -> None:
        self._params = params = params or DEFAULT_PARAMS
        a, b = MinHash(num_perm=params.num_perm, seed=params.seed).permutations
        self._perm_a: _U32 = np.asarray(a, dtype=np.uint32)
        self._perm_b: _U32 = np.asarray(b, dtype=np.uint32)
        self._k = params.shingle_chars
        self._mixed: dict[str, int] = {}  # k-gram -> fmix32(kgram_hash(k-gram))
        # Band folding. With an even number of rows a band is rows/2 uint64 words of the
        # signature (a free view; byte order only renames keys, equality is what counts):
        # key = xor of word × an odd multiplier proper to (band, word). Proper to the band, so
        # equal rows in two bands give two keys and one dict holds every band.
        rng = np.random.RandomState(params.seed)
        words = max(1, params.rows // 2) if params.rows % 2 == 0 else params.rows
        self._fold_mult: _U64 = (
            rng.randint(0, 1 << 62, (params.bands, words), dtype=np.uint64) * 2 + 1
        )

    def __repr__(self) -> str:
        p = self._params
        lsh = f"{p.bands}x{p.rows}"
        return f"<MinHasher k={p.shingle_chars} lsh={lsh} cached_kgrams={len(self._mixed)}>"

    def mixed_kgram_hashes(self, key: str) -> list[int]:
        """fmix32(kgram_hash(g)) for each k-gram g of ``key``: datasketch's pre-mixed input."""
        mixed = self._mixed
        grams = kgrams(key, self._k)
        hashes = list(map(mixed.get, grams))
        if None in hashes:
            for index, gram in enumerate(grams):
                if hashes[index] is None:
                    value = _fmix32(kgram_hash(gram))
                    hashes[index] = value
                    if len(mixed) < _MAX_CACHED_KGRAMS:  # bounded against hostile input
                        mixed[gram] = value
        return hashes  # type: ignore[return-value]  # no None left

    def signature(self, key: str) -> _U32:
        """The MinHash signature of ``key`` (``num_perm`` uint32 values)."""
        hashes = np.array(self.mixed_kgram_hashes(key), dtype=np.uint32)
        # h -> a*h + b mod 2**32 for every permutation (uint32 wraps), min over the k-grams.
        permuted = np.multiply.outer(hashes, self._perm_a) + self._perm_b
        signature: _U32 = permuted.min(axis=0)
        return signature

    def band_keys(self, key: str) -> list[int]:
        """One int per band: equal in some band ⇔ the two keys are LSH candidates.

        (Up to a 2**-60 chance of a spurious equality, which verification then rejects.)
        """
        return self.band_keys_of(self.signature(key))

    def band_keys_of(self, signature: _U32) -> list[int]:
        """The band keys of a signature (60-bit ints: Python stores them in 32 bytes)."""
        bands, rows = self._params.bands, self._params.rows
        if rows % 2 == 0:
            grid = np.ascontiguousarray(signature).view(np.uint64).reshape(bands, rows // 2)
        else:
            grid = signature.astype(np.uint64).reshape(bands, rows)
        folded = np.bitwise_xor.reduce(grid * self._fold_mult, axis=1)
        folded >>= _SHIFT_TO_60_BITS
        keys: list[int] = folded.tolist()
        return keys


def _fmix32(value: int) -> int:
    """MurmurHash3's 32-bit finaliser (datasketch's pre-mix in the affine32 scheme)."""
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & 0xFFFFFFFF
    value ^= value >> 13
    value = (value * 0xC2B2AE35) & 0xFFFFFFFF
    return value ^ (value >> 16)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a generated item resolved to."""

    match: MatchKind
    entry_id: EntryId  # the matched entry, or the item's own id when ``match`` is NEW
    matched_text: str | None  # display text of the matched entry (None when NEW)
    score: float = 1.0  # verification score of a fuzzy match; 1.0 for exact and new

    def observed(self) -> ObservedItem:
        """The observation of a generated item resolved this way."""
        return ObservedItem(entry_id=self.entry_id, match=self.match)

    def detail(self, text: str) -> ItemDetail:
        """The observation's detail for generated ``text`` resolved this way."""
        return ItemDetail(text=text, score=self.score)


def _id_of_normal(normal: str) -> EntryId:
    # node.normalize.entry_id without normalising twice; tests check they agree.
    return hashlib.blake2b(normal.encode("utf-8"), digest_size=ID_BYTES).hexdigest()


@dataclass(frozen=True, slots=True)
class _Prepared:
    """An item's work so far, kept so ``add`` right after ``resolve`` redoes nothing."""

    entry_id: EntryId
    key: str
    band_keys: list[int]
    verified: list[tuple[int, float]] | None = None  # (slot, score), once computed


class Deduplicator:
    """The index of known entries and the resolver of generated items (not thread-safe).

    Memory per entry: a slot in the exact dict, the fuzzy key, and ``bands`` items of one
    int-keyed dict. No signature is kept. With ``fuzzy=False`` only the exact dict is used
    (see the module docstring).
    """

    def __init__(self, params: FuzzyParams | None = None, *, fuzzy: bool = True) -> None:
        self._params = params or DEFAULT_PARAMS
        self._fuzzy = fuzzy
        self._hasher = MinHasher(self._params)
        self._slot_of: dict[EntryId, int] = {}
        self._ids: list[EntryId] = []
        self._texts: list[str] = []
        self._keys: list[str] = []
        # band key -> slot, or list of slots once two entries share the band key.
        self._buckets: dict[int, int | list[int]] = {}
        self._last: _Prepared | None = None
        self.fuzzy_checks = 0  # candidates verified so far (a cost counter for metrics)

    @property
    def params(self) -> FuzzyParams:
        """The fuzzy parameters in force."""
        return self._params

    @property
    def fuzzy(self) -> bool:
        """False when only exact ids match (no near-duplicates are ever found)."""
        return self._fuzzy

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._slot_of

    def __repr__(self) -> str:
        p = self._params
        if not self._fuzzy:
            return f"<Deduplicator entries={len(self._ids)} exact only>"
        return (
            f"<Deduplicator entries={len(self._ids)} buckets={len(self._buckets)} "
            f"k={p.shingle_chars} lsh={p.bands}x{p.rows} {p.scorer}>={p.min_score}>"
        )

    def text_of(self, entry_id: EntryId) -> str | None:
        """The text the entry was first added with (None if unknown); the list shows its own."""
        slot = self._slot_of.get(entry_id)
        return None if slot is None else self._texts[slot]

    def resolve(self, text: str) -> Resolution:
        """Resolve a generated item: exact, else fuzzy, else new (not added: call ``add``).

        Raises ``ValueError`` for text with no letters or digits (not an entry).
        """
        normal = normal_form(text)
        if not normal:
            raise ValueError(f"not an entry: {text!r}")
        item_id = _id_of_normal(normal)
        slot = self._slot_of.get(item_id)
        if slot is not None:
            return Resolution(MatchKind.EXACT, item_id, self._texts[slot])
        if not self._fuzzy:
            return Resolution(MatchKind.NEW, item_id, None)
        prepared = self._prepare(item_id, normal)
        verified = self._verified(prepared)
        self._last = _Prepared(item_id, prepared.key, prepared.band_keys, verified)
        if not verified:
            return Resolution(MatchKind.NEW, item_id, None)
        # Highest score; ties go to the smallest id, so the choice is order-independent.
        slot, score = min(verified, key=lambda pair: (-pair[1], self._ids[pair[0]]))
        return Resolution(MatchKind.FUZZY, self._ids[slot], self._texts[slot], score)

    def add(self, entry_id: EntryId, text: str) -> list[tuple[EntryId, float]]:
        """Index an accepted entry; return the indexed entries verified as its near-duplicates.

        ``entry_id`` must be ``entry_id(text)``. Adding a known id changes nothing and
        returns ``[]``. The returned pairs, gathered over all insertions, are the same set
        whatever the order of insertion (the global list relies on it).
        """
        if entry_id in self._slot_of:
            return []
        if not self._fuzzy:  # exact only: an id and its text, no key, no bands, no neighbours
            self._slot_of[entry_id] = len(self._ids)
            self._ids.append(entry_id)
            self._texts.append(text)
            self._keys.append("")
            return []
        prepared = self._last
        if prepared is None or prepared.entry_id != entry_id:
            prepared = self._prepare(entry_id, normal_form(text))
        verified = prepared.verified
        if verified is None:
            verified = self._verified(prepared)
        neighbours = [(self._ids[s], score) for s, score in verified]
        slot = len(self._ids)
        self._slot_of[entry_id] = slot
        self._ids.append(entry_id)
        self._texts.append(text)
        self._keys.append(prepared.key)
        buckets = self._buckets
        for band_key in prepared.band_keys:
            held = buckets.get(band_key)
            if held is None:
                buckets[band_key] = slot
            elif isinstance(held, int):
                buckets[band_key] = [held, slot]
            else:
                held.append(slot)
        self._last = None
        return neighbours

    def near_duplicates(self, text: str) -> list[tuple[EntryId, float]]:
        """Indexed entries verified as near-duplicates of ``text`` (its own id excluded)."""
        if not self._fuzzy:
            return []
        normal = normal_form(text)
        prepared = self._prepare(_id_of_normal(normal), normal)
        return [(self._ids[s], score) for s, score in self._verified(prepared)]

    def _prepare(self, item_id: EntryId, normal: str) -> _Prepared:
        key = _fuzzy_key_of_normal(normal, self._params)
        band_keys = self._hasher.band_keys(key)
        if self._params.match_extensions:
            # Exact routes for "x" ~ "x am y": every key under itself, an extended key also
            # under its head; MinHash would rarely pair such different lengths.
            band_keys.append(_exact_route(key))
            head = extension_head(key)
            if head is not None:
                band_keys.append(_exact_route(head))
        self._last = _Prepared(item_id, key, band_keys)
        return self._last

    def _candidates(self, prepared: _Prepared) -> set[int]:
        found: set[int] = set()
        for held in map(self._buckets.get, prepared.band_keys):
            if held is None:
                continue
            if isinstance(held, int):
                found.add(held)
            else:
                found.update(held)
        own = self._slot_of.get(prepared.entry_id)
        if own is not None:
            found.discard(own)
        return found

    def _verified(self, prepared: _Prepared) -> list[tuple[int, float]]:
        return self._verify(prepared, self._candidates(prepared))

    def _verify(self, prepared: _Prepared, candidates: set[int]) -> list[tuple[int, float]]:
        if not candidates:
            return []
        self.fuzzy_checks += len(candidates)
        params = self._params
        key = prepared.key
        slots = list(candidates)
        keys = [self._keys[slot] for slot in slots]
        score_fn, scale = SCORERS[params.scorer]
        # One C call drops the candidates below the threshold; the full rule then runs on the
        # few left (and on extensions, which the rule accepts whatever their similarity).
        passing = {
            index
            for _choice, _score, index in process.extract(
                key, keys, scorer=score_fn, processor=None,
                score_cutoff=params.min_score * scale, limit=None,
            )
        }  # fmt: skip
        if params.match_extensions:
            passing.update(i for i, other in enumerate(keys) if is_extension(key, other))
        verified: list[tuple[int, float]] = []
        for index in passing:
            score = near_duplicate_score(key, keys[index], params)
            if score:
                verified.append((slots[index], score))
        return verified


def _exact_route(key: str) -> int:
    """A bucket key for exact equality of ``key`` (60 bits, like the band keys)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"swarmlist-x").digest()
    return int.from_bytes(digest, "little") >> 4


def verified_pairs(texts: Sequence[str], params: FuzzyParams | None = None) -> set[tuple[int, int]]:
    """All verified near-duplicate pairs (i < j) among ``texts`` by one index (for measuring)."""
    dedup = Deduplicator(params)
    index_of: dict[EntryId, int] = {}
    pairs: set[tuple[int, int]] = set()
    for i, text in enumerate(texts):
        normal = normal_form(text)
        if not normal:
            continue
        item_id = _id_of_normal(normal)
        if item_id in index_of:
            continue
        for other_id, _score in dedup.add(item_id, text):
            j = index_of[other_id]
            pairs.add((min(i, j), max(i, j)))
        index_of[item_id] = i
    return pairs
