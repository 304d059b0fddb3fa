"""LLM backends: the Protocol the producer uses, the OpenAI-client backend, the simulated LLM."""

from __future__ import annotations

from node.llm.base import ChatMessage, Completion, CompletionStream, LLMBackend, Usage

__all__ = ["ChatMessage", "Completion", "CompletionStream", "LLMBackend", "Usage"]
