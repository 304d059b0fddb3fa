"""Partitioning: the partition plan, split and retire, ownership, scheduling.

The topic is divided as it is explored: one partition at first, split (by the LLM, or
alphabetically when its answer is unusable) when a part's known entries outgrow the prompt or
its yield drops, retired when dry. The plan is a pure function of ``plan`` records in the
replicated set (``plan``); entries reach the prompt of the leaf they belong to (``context``);
live leaves are owned by rendezvous hashing over the live members (``assign``); ``policy``
decides splits, retires and expected yields; the ``Planner`` picks each call's partition.
"""

from partitioning.assign import assign, churn, owned_by, owner_of, rank_members, rendezvous_score
from partitioning.config import PartitionConfig
from partitioning.context import PartitionContext, path_letters
from partitioning.labels import SplitLabels, clean_split_labels, initial_of, label_admits, letter_ranges, letter_set
from partitioning.plan import ROOT, Partition, PartitionPlan, PartitionStatus, child_path, labels_of, split_is_valid
from partitioning.planner import Planner, PlannerStats
from partitioning.policy import Decision, LeafStats, Verdict, expected_new_per_call, judge

__all__ = [
    "ROOT", "Decision", "LeafStats", "Partition", "PartitionConfig", "PartitionContext", "PartitionPlan",
    "PartitionStatus", "Planner", "PlannerStats", "SplitLabels", "Verdict", "assign", "child_path", "churn",
    "clean_split_labels", "expected_new_per_call", "initial_of", "judge", "label_admits", "labels_of",
    "letter_ranges", "letter_set", "owned_by", "owner_of", "path_letters", "rank_members", "rendezvous_score",
    "split_is_valid",
]  # fmt: skip
