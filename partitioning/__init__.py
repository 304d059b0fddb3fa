"""Partitioning: the partition plan, split and retire, ownership, scheduling.

(Built by the partitioning issue.)
"""
