"""A streamed answer from an OpenAI-compatible endpoint, and what each attempt has received.

``OpenAIBackend.stream`` returns an ``OpenAICompletionStream``; the backend's retrying
generator does the requests, and records each attempt's chunks in a ``StreamProgress``,
which checks each chunk's shape (the client validates loosely) before taking its text.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import TracebackType
from typing import Self

from openai.types.chat import ChatCompletionChunk

from node.errors import LLMBadResponse
from node.llm.base import Completion

__all__ = ["OpenAICompletionStream", "StreamProgress"]


class OpenAICompletionStream:
    """A streamed answer: ``async for delta in stream`` yields text deltas in order.

    Failures raise ``LLMError`` from the iteration. Before the first delta, failures are
    retried transparently under the backend's policy; after it they are raised at once,
    because a retry would repeat (differently) text the caller already consumed. A stream
    cut mid-way — the connection closed, or the body ended without a ``finish_reason`` —
    raises ``LLMConnectionError``; a stream with no chunk for ``stream_idle_timeout_s``, or
    not finished within ``stream_total_timeout_s``, raises ``LLMTimeout``; a body past
    ``max_response_bytes`` raises ``LLMBadResponse``. ``completion`` is set once the stream
    ends normally.

    The stream holds one of the backend's concurrency slots until it ends: iterate it to
    the end, or use ``async with`` (or ``aclose()``) when stopping early.
    """

    def __init__(
        self, start: Callable[[Callable[[Completion], None]], AsyncGenerator[str, None]]
    ) -> None:
        self._start = start
        self._deltas: AsyncGenerator[str, None] | None = None
        self._completion: Completion | None = None

    @property
    def completion(self) -> Completion | None:
        return self._completion

    def __aiter__(self) -> AsyncIterator[str]:
        if self._deltas is not None:
            raise RuntimeError("a completion stream can be iterated only once")
        self._deltas = self._start(self._finish)
        return self._deltas

    def _finish(self, completion: Completion) -> None:
        self._completion = completion

    async def aclose(self) -> None:
        """Stop the stream early and release its connection and slot; safe to call twice."""
        if self._deltas is not None:
            await self._deltas.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "done" if self._completion else ("started" if self._deltas is not None else "new")
        return f"<OpenAICompletionStream {state}>"


class StreamProgress:
    """What one streaming attempt has received so far."""

    __slots__ = ("finish_reason", "model", "parts", "usage")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: object = None
        self.model = ""

    def absorb(self, chunk: object) -> str:
        """Record one chunk; return its text for the first choice ("" if none)."""
        if not isinstance(chunk, ChatCompletionChunk):
            raise LLMBadResponse(f"expected a chat completion chunk, got {type(chunk).__name__}")
        choices = getattr(chunk, "choices", None)
        if not isinstance(choices, list):
            raise LLMBadResponse("a stream chunk has no choices list")
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage  # the include_usage chunk: empty choices, whole-call usage
        model = getattr(chunk, "model", None)
        if isinstance(model, str) and model:
            self.model = model
        text = ""
        for choice in choices:
            if getattr(choice, "index", 0) != 0:
                continue
            content = getattr(getattr(choice, "delta", None), "content", None)
            if isinstance(content, str):
                text += content
            finish_reason = getattr(choice, "finish_reason", None)
            if isinstance(finish_reason, str):
                self.finish_reason = finish_reason
        if text:
            self.parts.append(text)
        return text
