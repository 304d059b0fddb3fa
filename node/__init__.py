"""A swarmlist node: config, LLM backends, prompts and answer parsing, dedup, store, producer."""

from __future__ import annotations

from node.errors import ConfigError, LLMError, NodeError
from node.normalize import EntryId, entry_id, normal_form

__all__ = ["ConfigError", "EntryId", "LLMError", "NodeError", "entry_id", "normal_form"]
