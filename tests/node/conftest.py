"""Fixtures for node tests: a simulated backend that records prompts, and fake sleeping."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from node.llm.base import ChatMessage
from node.llm.sim.backend import SimulatedBackend
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.universe import load_universe


class RecordingSleep:
    """A sleep that returns at once and remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class RecordingBackend(SimulatedBackend):
    """The in-process simulated LLM, remembering every prompt it was sent."""

    def __init__(self, model: SimulatedModel, **kwargs: object) -> None:
        super().__init__(model, **kwargs)  # type: ignore[arg-type]
        self.prompts: list[Sequence[ChatMessage]] = []

    def stream(self, messages: Sequence[ChatMessage], **kwargs: object):  # type: ignore[no-untyped-def]
        self.prompts.append(messages)
        return super().stream(messages, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fake_sleep() -> RecordingSleep:
    return RecordingSleep()


def make_backend(params: SimParams | None = None, *, universe: str = "countries", seed: int = 1,
                 sleep: RecordingSleep | None = None) -> RecordingBackend:  # fmt: skip
    model = SimulatedModel(load_universe(universe), params or SimParams.fault_free(), knowledge_seed=seed)
    return RecordingBackend(model, seed=seed, sleep=sleep or RecordingSleep())
