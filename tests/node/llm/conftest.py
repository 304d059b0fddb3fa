"""Fixtures for the LLM backend tests: a loopback OpenAI-compatible server and backends on it.

``openai_server`` is anything with ``base_url`` (``http://127.0.0.1:PORT/v1``); the scripted
``OpenAITestServer`` today. ``make_backend(**overrides)`` builds an ``OpenAIBackend`` pointed at
it with small timeouts and backoffs (so failure paths take fractions of a second) and closes it
at teardown.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from node.llm.openai_backend import OpenAIBackend, OpenAIConfig
from tests.node.llm.openai_test_server import OpenAITestServer

# Small enough that retries and timeouts cost milliseconds; the tests that need a longer
# timeout or a bigger attempt budget override these.
FAST_CONFIG: dict[str, Any] = {
    "model": "test-model",
    "api_key": "sk-test-key",
    "request_timeout_s": 2.0,
    "connect_timeout_s": 1.0,
    "stream_idle_timeout_s": 1.0,
    "max_attempts": 3,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "max_retry_after_s": 1.0,
    "concurrency": 4,
}


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAITestServer]:
    async with OpenAITestServer(model="test-model") as server:
        yield server


@pytest.fixture
async def make_backend(
    openai_server: OpenAITestServer,
) -> AsyncIterator[Callable[..., OpenAIBackend]]:
    backends: list[OpenAIBackend] = []

    def make(**overrides: Any) -> OpenAIBackend:
        fields = {**FAST_CONFIG, "base_url": openai_server.base_url, **overrides}
        backend = OpenAIBackend(OpenAIConfig(**fields), rng=random.Random(7))
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        await backend.aclose()
