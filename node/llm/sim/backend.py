"""The simulated LLM in-process: an ``LLMBackend`` over ``SimulatedModel``, no HTTP.

``gossip-node --llm sim`` and ``gossip-sim`` use this; ``sim-llm`` serves the same model over
HTTP. Faults surface exactly as the OpenAI backend reports them (``LLMRateLimited`` with its
Retry-After, ``LLMServerError``, ``LLMTimeout`` after the hang has cost ``hang_timeout_s``),
so the producer cannot tell the two apart. Time passes through an injected ``sleep`` so a
simulation on a virtual clock runs as fast as the CPU allows.

Randomness: call number *n* draws from ``Random(f"{seed}:{n}")``, so a seed and a call order
reproduce every answer; each call's draws are independent of how many the previous took.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from node.errors import LLMRateLimited, LLMServerError, LLMTimeout
from node.llm.base import ChatMessage, Completion
from node.llm.sim.model import Fault, SimAnswer, SimulatedModel

__all__ = ["SimulatedBackend", "stream_pieces"]

Sleep = Callable[[float], Awaitable[None]]


def stream_pieces(text: str, *, size: int = 16) -> list[str]:
    """Cut ``text`` into the deltas a streaming endpoint would send (about 4 tokens each)."""
    return [text[start : start + size] for start in range(0, len(text), size)] or [""]


class SimulatedBackend:
    """Runs on the event loop; any number of concurrent calls."""

    def __init__(
        self,
        model: SimulatedModel,
        *,
        seed: int = 0,
        sleep: Sleep = asyncio.sleep,
        hang_timeout_s: float = 30.0,
    ) -> None:
        self._model = model
        self._seed = seed
        self._sleep = sleep
        self._hang_timeout_s = hang_timeout_s
        self._calls = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"<SimulatedBackend {self.name} seed={self._seed} calls={self._calls}>"

    @property
    def name(self) -> str:
        return f"sim:{self._model.universe.name}"

    @property
    def model(self) -> SimulatedModel:
        return self._model

    @property
    def calls(self) -> int:
        return self._calls

    def _answer(self, messages: Sequence[ChatMessage]) -> SimAnswer:
        rng = random.Random(f"{self._seed}:{self._calls}")
        self._calls += 1
        return self._model.respond(messages, rng)

    async def _raise_fault(self, answer: SimAnswer) -> None:
        if answer.fault is Fault.RATE_LIMIT:
            retry_after = self._model.params.retry_after_s
            raise LLMRateLimited(f"simulated 429, retry after {retry_after:g}s", retry_after_s=retry_after)
        if answer.fault is Fault.SERVER_ERROR:
            raise LLMServerError("simulated 500 Internal Server Error", status=500)
        if answer.fault is Fault.HANG:
            await self._sleep(self._hang_timeout_s)
            raise LLMTimeout(f"simulated hang: no answer within {self._hang_timeout_s:g}s")

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> Completion:
        answer = self._answer(messages)
        await self._raise_fault(answer)
        await self._sleep(answer.latency_s)
        return Completion(
            text=answer.text,
            usage=answer.usage,
            latency_s=answer.latency_s,
            model=self.name,
            finish_reason=answer.finish_reason,
        )

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> _SimStream:
        return _SimStream(self, messages)

    async def aclose(self) -> None:
        self._closed = True


class _SimStream:
    """A streamed simulated answer; latency is spread over the deltas."""

    def __init__(self, backend: SimulatedBackend, messages: Sequence[ChatMessage]) -> None:
        self._backend = backend
        self._messages = messages
        self._completion: Completion | None = None

    @property
    def completion(self) -> Completion | None:
        return self._completion

    def __aiter__(self) -> AsyncIterator[str]:
        return self._deltas()

    async def _deltas(self) -> AsyncIterator[str]:
        backend = self._backend
        answer = backend._answer(self._messages)
        await backend._raise_fault(answer)
        params = backend.model.params
        await backend._sleep(params.first_token_s * params.time_scale)
        pieces = stream_pieces(answer.text)
        per_piece = max(0.0, answer.latency_s - params.first_token_s * params.time_scale) / len(pieces)
        for piece in pieces:
            if per_piece:
                await backend._sleep(per_piece)
            yield piece
        self._completion = Completion(
            text=answer.text,
            usage=answer.usage,
            latency_s=answer.latency_s,
            model=backend.name,
            finish_reason=answer.finish_reason,
        )
