"""The global list: a pure function of the set of entry records, maintained incrementally.

design.md "Data model". Records from peers are merged by key and never fuzzy-dropped, so
near-duplicates accepted concurrently on two nodes both live in the set. The list groups them:

- one record is *shown* per id: the smallest ``(hlc, origin)`` (then text, partition, so that
  even malformed duplicates resolve the same way everywhere);
- *clusters* are the connected components of the verified near-duplicate relation of
  ``node.dedup`` (LSH band collision with the fixed seed ∧ the verification rule), which is a
  pure function of the texts, so the components do not depend on arrival order;
- a cluster's *canonical* entry is its smallest ``(hlc, id)``; the others are its aliases;
- the list is ordered by ``(normal form of the canonical text, canonical id)``; that pair is
  also the keyset cursor of a page.

Incremental: adding a record indexes it once (the resolver shares this index), verifies its
LSH candidates only, unions their components (union by size with relabelling of the smaller
side: O(n log n) over all insertions) and moves only the affected clusters in the sorted order.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from node.dedup import Deduplicator, FuzzyParams, Resolution
from node.normalize import EntryId, entry_id, normal_form
from node.records import EntryRecord

__all__ = ["SortKey", "ListEntry", "GlobalList", "global_list"]

logger = logging.getLogger(__name__)

SortKey = tuple[str, EntryId]
"""Position in the list: (normal form of the canonical entry's text, canonical id)."""


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One line of the list: a cluster's canonical record and its aliases."""

    record: EntryRecord  # the canonical entry's shown record
    aliases: tuple[EntryRecord, ...]  # the cluster's other shown records, by (hlc, id)
    sort_key: SortKey

    @property
    def id(self) -> EntryId:
        """The canonical entry's id."""
        return self.record.id


def _shown_order(record: EntryRecord) -> tuple[int, str, str, str]:
    # (hlc, origin) is design.md's rule; text and partition only break ties between records
    # that should not exist (one origin, one clock value, two texts), deterministically.
    return (record.hlc, record.origin, record.text, record.partition)


class GlobalList:
    """The list of one node's set of entry records (not thread-safe; one event loop)."""

    def __init__(self, params: FuzzyParams | None = None, *, fuzzy: bool = True) -> None:
        # fuzzy=False: exact ids only, so no clusters (the "exact dedup only" ablation)
        self._dedup = Deduplicator(params, fuzzy=fuzzy)
        self._shown: dict[EntryId, EntryRecord] = {}
        self._root_of: dict[EntryId, EntryId] = {}
        self._members: dict[EntryId, list[EntryId]] = {}  # root -> ids of its cluster
        self._canonical: dict[EntryId, EntryId] = {}  # root -> canonical id
        self._key_of: dict[EntryId, SortKey] = {}  # root -> its position in _order
        self._root_at: dict[SortKey, EntryId] = {}
        self._order: list[SortKey] = []
        self.rejected = 0  # records whose id is not the hash of their text's normal form

    @property
    def deduplicator(self) -> Deduplicator:
        """The index of every entry in the list (one index, not two: shared with the resolver).

        Resolve against it; add entries only through ``add`` — an id indexed behind the list's
        back would be a neighbour the list does not know.
        """
        return self._dedup

    def resolve(self, text: str) -> Resolution:
        """Resolve a generated item against the list's entries (see ``Deduplicator.resolve``)."""
        return self._dedup.resolve(text)

    def __len__(self) -> int:
        """Number of lines (clusters)."""
        return len(self._order)

    @property
    def entry_count(self) -> int:
        """Number of distinct entry ids, aliases included."""
        return len(self._shown)

    def __repr__(self) -> str:
        return f"<GlobalList lines={len(self._order)} entries={len(self._shown)}>"

    def add(self, record: EntryRecord) -> bool:
        """Merge one record; True if it changed the list (a new id or a new shown record).

        A record whose id is not ``entry_id(record.text)`` is refused (counted in
        ``rejected``): the clustering depends on the text, so a forged id could make two
        nodes disagree.
        """
        current = self._shown.get(record.id)
        if current is not None:
            if _shown_order(record) >= _shown_order(current):
                return False
            if normal_form(record.text) != normal_form(current.text):
                return self._refuse(record)
            self._shown[record.id] = record
            self._refresh(self._root_of[record.id])
            return True
        if entry_id(record.text) != record.id:
            return self._refuse(record)
        self._shown[record.id] = record
        neighbours = self._dedup.add(record.id, record.text)
        root = record.id
        self._root_of[root] = root
        self._members[root] = [root]
        self._canonical[root] = root
        for other_id, _score in neighbours:
            root = self._union(root, self._root_of[other_id])
        self._refresh(root)
        return True

    def add_all(self, records: Iterable[EntryRecord]) -> int:
        """Merge many records; the number that changed the list."""
        return sum(1 for record in records if self.add(record))

    def __iter__(self) -> Iterator[ListEntry]:
        for key in self._order:
            yield self._line(self._root_at[key])

    def page(self, after: SortKey | None = None, limit: int = 100) -> list[ListEntry]:
        """Up to ``limit`` lines after the cursor ``after`` (from the start when None)."""
        start = 0 if after is None else bisect.bisect_right(self._order, after)
        return [self._line(self._root_at[key]) for key in self._order[start : start + limit]]

    def shown(self, entry: EntryId) -> EntryRecord | None:
        """The record shown for an id, or None if the id is not in the set."""
        return self._shown.get(entry)

    def cluster_of(self, entry: EntryId) -> ListEntry:
        """The line that ``entry`` is the canonical entry or an alias of (KeyError if unknown)."""
        return self._line(self._root_of[entry])

    def aliases(self, entry: EntryId) -> tuple[EntryRecord, ...]:
        """The aliases on the line of ``entry`` (its cluster without the canonical entry)."""
        return self.cluster_of(entry).aliases

    def _refuse(self, record: EntryRecord) -> bool:
        self.rejected += 1
        logger.warning(
            "refused entry record %s from %s: id does not match its text %r",
            record.id,
            record.origin,
            record.text[:80],
        )
        return False

    def _union(self, root_a: EntryId, root_b: EntryId) -> EntryId:
        if root_a == root_b:
            return root_a
        if len(self._members[root_a]) < len(self._members[root_b]):
            root_a, root_b = root_b, root_a
        moved = self._members.pop(root_b)
        for member in moved:
            self._root_of[member] = root_a
        self._members[root_a].extend(moved)
        del self._canonical[root_b]  # the caller's _refresh recomputes root_a's
        self._unlist(root_b)
        return root_a

    def _precedence(self, entry: EntryId) -> tuple[int, EntryId]:
        return (self._shown[entry].hlc, entry)

    def _refresh(self, root: EntryId) -> None:
        """Recompute a cluster's canonical entry and move it to its place in the order."""
        canonical = min(self._members[root], key=self._precedence)
        self._canonical[root] = canonical
        key = (normal_form(self._shown[canonical].text), canonical)
        if self._key_of.get(root) == key:
            return
        self._unlist(root)
        self._key_of[root] = key
        self._root_at[key] = root
        bisect.insort(self._order, key)

    def _unlist(self, root: EntryId) -> None:
        key = self._key_of.pop(root, None)
        if key is None:
            return
        del self._root_at[key]
        index = bisect.bisect_left(self._order, key)
        del self._order[index]

    def _line(self, root: EntryId) -> ListEntry:
        canonical = self._canonical[root]
        others = sorted(
            (member for member in self._members[root] if member != canonical),
            key=self._precedence,
        )
        return ListEntry(
            record=self._shown[canonical],
            aliases=tuple(self._shown[member] for member in others),
            sort_key=self._key_of[root],
        )


def global_list(
    records: Iterable[EntryRecord], params: FuzzyParams | None = None
) -> list[ListEntry]:
    """The list of a set of entry records (the pure function; ``GlobalList`` maintains it)."""
    built = GlobalList(params)
    built.add_all(records)
    return list(built)
