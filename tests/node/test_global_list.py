"""Tests for node.global_list: the list as a pure function of the set of entry records."""

from __future__ import annotations

import json
import logging
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.dedup import Deduplicator
from node.global_list import GlobalList, ListEntry, global_list
from node.normalize import entry_id, normal_form
from node.records import EntryRecord, MatchKind
from tests.node.dedup_cases import CLUSTER_POOL

NODES = ("n1", "n2", "n3")


def record(text: str, hlc: int = 1, origin: str = "n1", partition: str = "p") -> EntryRecord:
    return EntryRecord(id=entry_id(text), text=text, partition=partition, origin=origin, hlc=hlc)


def serialised(lines: list[ListEntry]) -> bytes:
    """The list as the API would write it: byte-for-byte comparable."""
    return json.dumps(
        [
            {
                "id": line.record.id,
                "text": line.record.text,
                "origin": line.record.origin,
                "hlc": line.record.hlc,
                "aliases": [[a.id, a.text, a.origin, a.hlc] for a in line.aliases],
                "cursor": list(line.sort_key),
            }
            for line in lines
        ],
        ensure_ascii=False,
    ).encode()


def reference_list(records: list[EntryRecord]) -> list[ListEntry]:
    """The definition, computed from scratch: no incremental state, pairs queried after the fact."""
    shown: dict[str, EntryRecord] = {}
    for r in records:
        key = (r.hlc, r.origin, r.text, r.partition)
        if r.id not in shown or key < (
            shown[r.id].hlc,
            shown[r.id].origin,
            shown[r.id].text,
            shown[r.id].partition,
        ):
            shown[r.id] = r
    index = Deduplicator()
    for r in sorted(shown.values(), key=lambda r: r.id):
        index.add(r.id, r.text)
    parent = {entry: entry for entry in shown}

    def find(entry: str) -> str:
        while parent[entry] != entry:
            entry = parent[entry]
        return entry

    for entry, r in shown.items():
        for other, _score in index.near_duplicates(r.text):
            parent[find(entry)] = find(other)
    clusters: dict[str, list[str]] = {}
    for entry in shown:
        clusters.setdefault(find(entry), []).append(entry)
    lines = []
    for members in clusters.values():
        ordered = sorted(members, key=lambda e: (shown[e].hlc, e))
        canonical = shown[ordered[0]]
        lines.append(
            ListEntry(
                record=canonical,
                aliases=tuple(shown[e] for e in ordered[1:]),
                sort_key=(normal_form(canonical.text), canonical.id),
            )
        )
    return sorted(lines, key=lambda line: line.sort_key)


@st.composite
def record_sets(draw: st.DrawFn) -> list[EntryRecord]:
    """Records of names with many near-duplicates, some ids accepted on several nodes."""
    names = draw(
        st.lists(st.sampled_from(CLUSTER_POOL), min_size=8, max_size=len(CLUSTER_POOL), unique=True)
    )
    records = []
    for name in names:
        spellings = [name, name.upper(), name.lower()]
        for _ in range(draw(st.integers(1, 3))):
            records.append(
                record(
                    draw(st.sampled_from(spellings)),
                    hlc=draw(st.integers(1, 6)),  # small range: ties in hlc happen
                    origin=draw(st.sampled_from(NODES)),
                )
            )
    return list(dict.fromkeys(records))  # a set: duplicates of one record merge


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_sets(), st.randoms(use_true_random=False))
def test_list_does_not_depend_on_arrival_order(records, rng):
    """The same set fed in many orders on several nodes gives the same list, byte for byte."""
    expected = serialised(reference_list(records))
    for _node in NODES:
        for _order in range(3):
            shuffled = records[:]
            rng.shuffle(shuffled)
            built = GlobalList()
            built.add_all(shuffled)
            assert serialised(list(built)) == expected


def test_near_duplicates_from_peers_are_kept_and_clustered():
    """Two nodes' concurrent near-duplicates both stay in the set, shown as one line."""
    built = GlobalList()
    assert built.add(record("Hannover", hlc=5, origin="n2"))
    assert built.add(record("Hanover", hlc=3, origin="n1"))
    assert built.entry_count == 2 and len(built) == 1
    (line,) = built
    assert line.record.text == "Hanover"  # smallest (hlc, id)
    assert [a.text for a in line.aliases] == ["Hannover"]
    assert built.aliases(entry_id("Hannover")) == built.aliases(entry_id("Hanover")) == line.aliases
    assert built.cluster_of(entry_id("Hannover")) == line


def test_canonical_is_smallest_hlc_then_id():
    """On equal clocks the smallest id is canonical."""
    a, b = record("Tallinn", hlc=7), record("Tallin", hlc=7)
    built = GlobalList()
    built.add_all([a, b])
    (line,) = built
    assert line.record.id == min(a.id, b.id)


def test_one_id_on_two_nodes_is_one_entry_showing_the_smallest_hlc_origin():
    """Records with one id merge; the smallest (hlc, origin) is shown, whatever came first."""
    late, early, tie = record("Köln", 9, "n1"), record("KÖLN", 4, "n3"), record("koln", 4, "n2")
    for order in ([late, early, tie], [tie, late, early], [early, tie, late]):
        built = GlobalList()
        changed = [built.add(r) for r in order]
        assert len(built) == built.entry_count == 1
        assert built.shown(late.id) == tie
        assert changed[0] is True
    assert GlobalList().add_all([late, late]) == 1


def test_an_earlier_record_for_an_alias_moves_the_canonical_and_the_order():
    """When an alias gets an older record it becomes canonical; the line moves to its new place."""
    built = GlobalList()
    built.add_all(
        [record("Sankt Gallen", hlc=5), record("Basel", hlc=1), record("St. Gallen", hlc=6)]
    )
    assert [line.record.text for line in built] == ["Basel", "Sankt Gallen"]
    built.add(record("ST. GALLEN", hlc=2, origin="n2"))
    assert [line.record.text for line in built] == ["Basel", "ST. GALLEN"]
    assert [line.sort_key[0] for line in built] == ["basel", "st gallen"]
    assert len(built._order) == len(built._root_at) == 2


def test_chains_through_an_ambiguous_name_make_one_cluster():
    """Clusters are connected components: Palma links its extensions into one line."""
    names = ["Palma del Río", "Palma di Montechiaro", "Lyon", "Palma"]
    built = GlobalList()
    built.add_all(record(name, hlc=i) for i, name in enumerate(names))
    assert [(line.record.text, len(line.aliases)) for line in built] == [
        ("Lyon", 0),
        ("Palma del Río", 2),
    ]


def test_a_hub_arriving_last_joins_the_clusters_it_links():
    """'Neustadt' verifies against both extensions, which do not verify together: one line."""
    built = GlobalList()
    built.add_all([record("Neustadt an der Weinstraße", 3), record("Neustadt am Rübenberge", 2)])
    assert len(built) == 2
    built.add(record("Neustadt", 9))
    (line,) = built
    assert line.record.text == "Neustadt am Rübenberge"
    assert [a.text for a in line.aliases] == ["Neustadt an der Weinstraße", "Neustadt"]


def test_list_is_ordered_by_normal_form_then_id_and_pages_by_cursor():
    """Iteration is sorted by (normal form, id); pages after a cursor continue it exactly."""
    built = GlobalList()
    built.add_all(record(name, hlc=i) for i, name in enumerate(CLUSTER_POOL))
    lines = list(built)
    assert [line.sort_key for line in lines] == sorted(line.sort_key for line in lines)
    paged: list[ListEntry] = []
    cursor = None
    while page := built.page(after=cursor, limit=4):
        paged.extend(page)
        cursor = page[-1].sort_key
    assert paged == lines
    assert built.page(after=lines[-1].sort_key) == []


def test_forged_id_is_refused(caplog):
    """A record whose id is not the hash of its text's normal form is refused and logged."""
    built = GlobalList()
    forged = EntryRecord(id=entry_id("Paris"), text="Lyon", partition="p", origin="evil", hlc=1)
    with caplog.at_level(logging.WARNING, logger="node.global_list"):
        assert built.add(forged) is False
    assert built.rejected == 1 and len(built) == 0
    assert "id does not match" in caplog.text
    built.add(record("Paris"))
    assert built.add(EntryRecord(entry_id("Paris"), "Lyon", "p", "evil", 0)) is False
    assert built.shown(entry_id("Paris")) == record("Paris")


def test_insert_touches_candidates_not_the_list():
    """With 3,000 lines, one insertion verifies a few candidates and moves one line."""
    rng = random.Random(2)
    letters = "abcdefghiklmnoprstuvz"
    built = GlobalList()
    while len(built) < 3000:
        name = "".join(rng.choice(letters) for _ in range(rng.randint(6, 12))).title()
        built.add(record(name, hlc=len(built)))
    checks = built.deduplicator.fuzzy_checks
    built.add(record("Tallinn", hlc=1))
    built.add(record("Tallin", hlc=2))
    assert built.deduplicator.fuzzy_checks - checks < 20
    assert built.cluster_of(entry_id("Tallin")).record.text == "Tallinn"


def test_global_list_function_equals_the_maintained_list():
    """global_list(records) is the list a GlobalList holds after adding them."""
    records = [record(name, hlc=i % 4, origin=NODES[i % 3]) for i, name in enumerate(CLUSTER_POOL)]
    built = GlobalList()
    built.add_all(records)
    assert global_list(reversed(records)) == list(built)
    assert repr(built) == f"<GlobalList lines={len(built)} entries={len(CLUSTER_POOL)}>"


def test_resolve_uses_the_lists_own_index():
    """A generated item resolves against what the list holds, from every origin."""
    built = GlobalList()
    built.add(record("Klagenfurt am Wörthersee", origin="n2"))
    resolution = built.resolve("Klagenfurt")
    assert resolution.match is MatchKind.FUZZY
    assert resolution.entry_id == entry_id("Klagenfurt am Wörthersee")


def test_unknown_id_raises_key_error():
    """cluster_of and aliases of an id not in the set raise KeyError."""
    with pytest.raises(KeyError):
        GlobalList().cluster_of(entry_id("Atlantis"))


def test_an_exact_only_list_shows_variants_as_lines_of_their_own():
    """GlobalList(fuzzy=False) never clusters: Hanover and Hannover are two lines, not an entry and its alias."""
    records = [record("Hannover", hlc=1), record("Hanover", hlc=2)]
    clustered = GlobalList()
    clustered.add_all(records)
    exact = GlobalList(fuzzy=False)
    exact.add_all(records)
    assert len(clustered) == 1 and clustered.aliases(entry_id("Hannover")) == (records[1],)
    assert len(exact) == 2 and exact.aliases(entry_id("Hannover")) == ()
    assert not exact.deduplicator.fuzzy
