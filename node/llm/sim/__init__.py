"""The simulated LLM: a model-like backend that answers from a real closed universe.

For now this package re-exports the universes (``node.llm.sim.universe``): the ground truth
the simulated model answers from and benchmarks measure coverage against.
"""

from __future__ import annotations

from node.llm.sim.universe import (
    Universe,
    UniverseItem,
    UnknownUniverseError,
    available_universes,
    load_universe,
)

__all__ = [
    "Universe",
    "UniverseItem",
    "UnknownUniverseError",
    "available_universes",
    "load_universe",
]
