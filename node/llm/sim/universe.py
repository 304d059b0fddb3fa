"""The closed universes the simulated LLM answers from: real data, loaded from compact files.

A universe is one topic's ground truth: every item, with where it sits in the topic's
grouping (``levels``, e.g. subregion then country), how popular it is, and the other names
real models use for it (exonyms, transliterations). The simulated model samples from it;
benchmarks measure coverage and alias leakage against it. Dedup and the rest of the system
never read it.

The files in ``node/llm/sim/data/`` are derived from GeoNames (CC BY 4.0) and ISO 3166
names by ``scripts/build_universes.py``; ``data/ATTRIBUTION.md`` lists sources, licences and
versions. Each is gzip-compressed JSON: a header, a table of group paths, and one row per
item ``[name, path index, popularity, [alternate names]]``.

``synthetic-<N>`` names a synthetic universe of N invented items, generated at load time by
``node.llm.sim.synthetic`` (for scale runs); ``available_universes()`` lists
``SYNTHETIC_UNIVERSES``, and ``load_universe`` accepts any N in its range.

Identity is the system's own: an item is the entry ``entry_id(name)``. Two items whose names
share a normal form (the Brests of France and Belarus) are therefore *one* entry of the
ground truth: ``truth_ids()`` and ``truth_size`` count distinct normal forms, not items.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from node.errors import ConfigError
from node.normalize import EntryId, entry_id, normal_form

__all__ = [
    "SYNTHETIC_UNIVERSES",
    "Universe",
    "UniverseItem",
    "UnknownUniverseError",
    "available_universes",
    "load_universe",
]

logger = logging.getLogger(__name__)

_DATA_PACKAGE = "node.llm.sim"
_DATA_DIR = "data"
_SUFFIX = ".json.gz"
_FORMAT_VERSION = 1
_SYNTHETIC_PREFIX = "synthetic-"  # node.llm.sim.synthetic.SYNTHETIC_PREFIX (that module imports this one)
SYNTHETIC_UNIVERSES = ("synthetic-20000",)  # generated, not shipped: the ones the CLIs offer


class UnknownUniverseError(ConfigError):
    """No universe has the name asked for; the message lists those that exist."""


@dataclass(frozen=True, slots=True)
class UniverseItem:
    """One thing of the topic: its main name, its group path, popularity, other names."""

    name: str
    path: tuple[str, ...]  # from the top level down, e.g. ("Western Europe", "France")
    popularity: float  # population for places; the simulator draws by popularity**alpha
    alternate_names: tuple[str, ...] = ()  # most used first; none shares the name's normal form


@dataclass(frozen=True)
class Universe:
    """A closed topic: its items, the levels that group them, and helpers to query it."""

    name: str
    topic: str  # what a user would ask to enumerate, e.g. "cities of Europe"
    levels: tuple[str, ...]  # names of the path levels, e.g. ("subregion", "country")
    items: tuple[UniverseItem, ...]
    attribution: str = field(default="", compare=False)  # sources and licence of the data

    def __post_init__(self) -> None:
        if not self.levels:
            raise ConfigError(f"universe {self.name!r} has no levels")
        for item in self.items:
            if len(item.path) != len(self.levels):
                raise ConfigError(
                    f"universe {self.name!r}: item {item.name!r} has path {item.path!r}, "
                    f"want one group per level {self.levels!r}"
                )
            if not normal_form(item.name):
                raise ConfigError(f"universe {self.name!r}: item name {item.name!r} is empty")

    def __repr__(self) -> str:
        return (
            f"<Universe {self.name} items={len(self.items)} truth={self.truth_size} "
            f"levels={'/'.join(self.levels)}>"
        )

    def groups(self, level: str) -> tuple[tuple[str, ...], ...]:
        """The distinct group paths down to ``level``, sorted: ``groups("country")`` gives
        ``(("Eastern Europe", "Belarus"), ...)``. Raises ``ValueError`` for an unknown level."""
        if level not in self.levels:
            raise ValueError(f"universe {self.name!r} has levels {self.levels!r}, not {level!r}")
        depth = self.levels.index(level) + 1
        return tuple(sorted({item.path[:depth] for item in self.items}))

    def items_under(self, path_prefix: Sequence[str]) -> tuple[UniverseItem, ...]:
        """The items whose path starts with ``path_prefix`` (all of them for an empty prefix)."""
        prefix = tuple(path_prefix)
        return tuple(item for item in self.items if item.path[: len(prefix)] == prefix)

    def truth_ids(self) -> frozenset[EntryId]:
        """The ground truth: the entry id of every item's name (homonyms collapse to one)."""
        return self._truth_ids

    @property
    def truth_size(self) -> int:
        """How many distinct entries the ground truth holds (items minus homonym repeats)."""
        return len(self._truth_ids)

    def id_of_any_name(self) -> Mapping[EntryId, int]:
        """Entry id of every name and alternate name -> index in ``items`` of its item.

        Ground truth for alias leakage ("Cologne" and "Köln" accepted as two entries). A main
        name wins over another item's alternate; among homonyms, the most popular item wins.
        """
        return self._index_by_id

    @cached_property
    def _name_ids(self) -> tuple[EntryId, ...]:
        return tuple(entry_id(item.name) for item in self.items)

    @cached_property
    def _truth_ids(self) -> frozenset[EntryId]:
        return frozenset(self._name_ids)

    @cached_property
    def _index_by_id(self) -> Mapping[EntryId, int]:
        by_popularity = sorted(range(len(self.items)), key=lambda i: (-self.items[i].popularity, i))
        index_by_id: dict[EntryId, int] = {}
        for index in by_popularity:
            index_by_id.setdefault(self._name_ids[index], index)
        for index in by_popularity:
            for alternate in self.items[index].alternate_names:
                index_by_id.setdefault(entry_id(alternate), index)
        return MappingProxyType(index_by_id)


def available_universes() -> tuple[str, ...]:
    """The names of the universes shipped with the package, then the synthetic ones, each sorted."""
    data = resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR)
    shipped = sorted(entry.name.removesuffix(_SUFFIX) for entry in data.iterdir() if entry.name.endswith(_SUFFIX))
    return (*shipped, *sorted(SYNTHETIC_UNIVERSES))


@lru_cache(maxsize=None)
def load_universe(name: str) -> Universe:
    """The universe called ``name``, loaded once per process.

    Raises ``UnknownUniverseError`` (a ``ConfigError``) naming the available universes when
    there is none by that name, and ``ConfigError`` if its file is unreadable. ``synthetic-<N>``
    is generated (deterministically) on first use.
    """
    if name.startswith(_SYNTHETIC_PREFIX):
        from node.llm.sim import synthetic  # imports this module: bound at call time

        if synthetic.synthetic_size(name) is not None:
            return synthetic.synthetic_universe(name)
    available = available_universes()
    if name not in available:
        raise UnknownUniverseError(
            f"unknown universe {name!r}; available: {', '.join(available) or '(none)'}"
        )
    resource = resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR, name + _SUFFIX)
    try:
        document = json.loads(gzip.decompress(resource.read_bytes()))
        universe = _decode(document)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ConfigError(f"universe file for {name!r} is unreadable: {exc}") from exc
    logger.debug("loaded %r", universe)
    return universe


def _decode(document: Mapping[str, Any]) -> Universe:
    if document["format_version"] != _FORMAT_VERSION:
        raise ValueError(f"format version {document['format_version']}, want {_FORMAT_VERSION}")
    paths = [tuple(path) for path in document["paths"]]
    items = tuple(
        UniverseItem(name, paths[path_index], float(popularity), tuple(alternates))
        for name, path_index, popularity, alternates in document["items"]
    )
    attribution = f"{'; '.join(document['sources'])}. Licence: {document['licence']}"
    return Universe(
        name=document["name"],
        topic=document["topic"],
        levels=tuple(document["levels"]),
        items=items,
        attribution=attribution,
    )
