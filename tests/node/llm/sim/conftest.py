"""Fixtures for the simulated LLM's tests: the shipped universes and models over them.

Universes load once per process (``load_universe`` caches them); models are cheap to build
but shared per module anyway, since they are pure computation and keep no per-call state.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from node.llm.base import ChatMessage
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.universe import Universe, load_universe
from node.prompts import PromptTemplates, build_enumeration_prompt, build_split_prompt

TEMPLATES = PromptTemplates()


def enumeration_messages(
    topic: str, partition: Sequence[str], *, known: Sequence[str] = (), count: int = 20
) -> tuple[ChatMessage, ...]:
    """The node's real enumeration prompt, every known entry included."""
    prompt = build_enumeration_prompt(
        TEMPLATES,
        topic=topic,
        partition=partition,
        known=known,
        count=count,
        known_budget_tokens=10**9,
    )
    assert prompt.known_omitted == 0
    return prompt.messages


def split_messages(topic: str, partition: Sequence[str], *, max_parts: int = 8) -> tuple[ChatMessage, ...]:
    """The node's real split prompt."""
    return build_split_prompt(TEMPLATES, topic=topic, partition=partition, max_parts=max_parts)


@pytest.fixture(scope="session")
def countries() -> Universe:
    return load_universe("countries")


@pytest.fixture(scope="session")
def cities() -> Universe:
    return load_universe("european-cities")


@pytest.fixture(scope="session")
def countries_model(countries: Universe) -> SimulatedModel:
    """The realistic model without transport faults, over the countries."""
    return SimulatedModel(countries, SimParams.fault_free())


@pytest.fixture(scope="session")
def cities_model(cities: Universe) -> SimulatedModel:
    """The realistic model without transport faults, over the European cities."""
    return SimulatedModel(cities, SimParams.fault_free())


@pytest.fixture(scope="session")
def ideal_countries_model(countries: Universe) -> SimulatedModel:
    return SimulatedModel(countries, SimParams.ideal())


@pytest.fixture(scope="session")
def ideal_cities_model(cities: Universe) -> SimulatedModel:
    return SimulatedModel(cities, SimParams.ideal())
