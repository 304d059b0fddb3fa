"""Command-line options that ``gossip-node`` and ``gossip-sim`` share: how the work is divided and checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from node.evidence import VerificationPolicy
from partitioning.config import PartitionConfig

__all__ = ["work_options", "partition_config", "verification_policy"]

F = TypeVar("F", bound=Callable[..., Any])


def work_options(command: F) -> F:
    """Add --partitioning/--no-partitioning, --max-split-parts and --verify-share to a click command."""
    options = (
        click.option("--partitioning/--no-partitioning", default=True, show_default=True,
                     help="Divide the topic into parts (an LLM-made plan, split and retired as it goes); "
                          "off = every call is about the whole topic."),
        click.option("--max-split-parts", type=click.IntRange(2, 32), default=PartitionConfig().max_split_parts,
                     show_default=True, help="Sub-categories asked for when a part is split."),
        click.option("--verify-share", type=click.FloatRange(0.0, 1.0), default=VerificationPolicy().call_share,
                     show_default=True, help="Largest share of LLM calls spent verifying entries generated only "
                                             "once (0 = no verification calls)."),
    )  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def partition_config(options: dict[str, Any]) -> PartitionConfig:
    return PartitionConfig(enabled=options["partitioning"], max_split_parts=options["max_split_parts"])


def verification_policy(options: dict[str, Any]) -> VerificationPolicy:
    return VerificationPolicy(call_share=options["verify_share"])
