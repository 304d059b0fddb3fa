"""The LLM backend seam: what the producer needs from any model, real or simulated.

A backend turns chat messages into a completion, whole or streamed. Implementations:
``node.llm.openai_backend.OpenAIBackend`` (any OpenAI-compatible endpoint through the
``openai`` client) and the simulated LLM (``node.llm.sim``). Every failure surfaces as a
``node.errors.LLMError``; a backend never lets a vendor exception escape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = ["ChatMessage", "Usage", "Completion", "CompletionStream", "LLMBackend"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message as an OpenAI-compatible endpoint receives it."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the endpoint (zeros when it reported none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished LLM call: the answer text and what it cost."""

    text: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0  # wall time from request to last byte, retries included
    model: str = ""
    finish_reason: str | None = None  # "stop", "length" (truncated), ... as the endpoint said
    attempts: int = 1  # 1 + the retries it took


class CompletionStream(Protocol):
    """A streamed answer: iterate for text deltas; ``completion`` is set once it is exhausted."""

    def __aiter__(self) -> AsyncIterator[str]: ...

    @property
    def completion(self) -> Completion | None: ...


@runtime_checkable
class LLMBackend(Protocol):
    """Runs on the event loop; calls may run concurrently up to the backend's own bound."""

    @property
    def name(self) -> str:
        """A short label for logs and reports, e.g. ``openai:gpt-4o-mini`` or ``sim:countries``."""
        ...

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> Completion:
        """The whole answer. Raises ``LLMError`` after the backend's retry policy is spent."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ) -> CompletionStream:
        """The answer as it is generated. Iterating raises ``LLMError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections; safe to call twice."""
        ...
