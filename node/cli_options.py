"""Command-line options that ``gossip-node`` and ``gossip-sim`` share: how the work is divided, checked and paid for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from node.budget import BudgetConfig
from node.codec import MAX_BUDGET
from node.evidence import VerificationPolicy
from partitioning.config import PartitionConfig

__all__ = ["budget_config", "budget_options", "work_options", "partition_config", "verification_policy"]

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
                     show_default=True, help="Largest share of LLM calls spent verifying entries that repeated "
                                             "generation has not settled (0 = no verification calls)."),
    )  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def partition_config(options: dict[str, Any]) -> PartitionConfig:
    return PartitionConfig(enabled=options["partitioning"], max_split_parts=options["max_split_parts"])


def verification_policy(options: dict[str, Any]) -> VerificationPolicy:
    return VerificationPolicy(call_share=options["verify_share"])


def budget_options(command: F) -> F:
    """Add --budget-calls, --budget-tokens and --max-calls-per-minute to a click command."""
    options = (
        click.option("--budget-calls", type=click.IntRange(0, MAX_BUDGET), default=0, show_default=True,
                     help="LLM calls the whole network may make (0 = no limit). A cluster setting: the strictest "
                          "of the nodes' values holds on every node; overshoot is bounded by the calls in flight "
                          "elsewhere and the spend not yet gossiped (docs/spending.md)."),
        click.option("--budget-tokens", type=click.IntRange(0, MAX_BUDGET), default=0, show_default=True,
                     help="Prompt + completion tokens the whole network may spend (0 = no limit); as --budget-calls."),
        click.option("--max-calls-per-minute", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
                     help="This node's LLM calls started per minute at most, evenly spaced (0 = no limit); "
                          "after a 429 the node halves its rate and climbs back slowly (AIMD)."),
    )  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def budget_config(options: dict[str, Any]) -> BudgetConfig:
    return BudgetConfig(
        calls=options["budget_calls"],
        tokens=options["budget_tokens"],
        max_calls_per_minute=options["max_calls_per_minute"],
    )
