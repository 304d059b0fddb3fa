"""Gossip layer: transport, wire messages, membership, dissemination, anti-entropy.

Knows nothing of LLMs, topics or partitions; it moves opaque keyed records. (Built by the
membership, dissemination and anti-entropy issues.)
"""
