"""Which known entries belong in a leaf partition's prompt: routing entries through the plan.

The shared-state lever only works if the model sees the entries of the part it is asked
about. An entry belongs to a leaf when it was accepted *or generated* in that leaf (a call for
"Germany" that repeats "Berlin" puts Berlin in Germany's context, wherever Berlin was first
found). Entries found before a split, under the parent, must reach the right child too:

- below an **alphabetical** split ("A–F", "G–M", …) the rule is exact and free: an entry goes to
  the child whose letters hold the first letter of its normal form;
- below a **semantic** split ("Northern Europe", "Southern Europe", …) a rule cannot know that
  Bergen is in Norway without the model, so the entry waits at the parent until a call for a
  child generates it again — one repeated item, once, per parent entry. The split prompt could
  classify them instead, at the price of a far longer answer; ``scripts/bench/partitioning.py``
  measures what the cheap rule costs in duplicates.

``PartitionConfig.parent_entries`` selects this rule ("route"), or the alternatives the
benchmark compares it with: "inherit" (what cannot be routed goes into every child's prompt)
and "none" (children start empty).

Records generated under a path that is not in the plan (the child of a superseded concurrent
split) count for the deepest plan partition above it (``PartitionPlan.home_of``), then route
down like the parent's entries.
"""

from __future__ import annotations

from collections.abc import Callable

from node.normalize import EntryId, normal_form
from node.prompts import PARTITION_SEPARATOR
from node.state import NodeState
from partitioning.labels import initial_of, letter_set
from partitioning.plan import PartitionPlan, labels_of

__all__ = ["PartitionContext", "path_letters"]


def path_letters(labels: tuple[str, ...]) -> frozenset[str] | None:
    """The initials a path's letter-range labels admit together (None: no letter label)."""
    letters: frozenset[str] | None = None
    for label in labels:
        found = letter_set(label)
        if found is not None:
            letters = found if letters is None else letters & found
    return letters


class PartitionContext:
    """Routes entries to leaves for one plan; rebuild it when the plan changes."""

    def __init__(
        self,
        state: NodeState,
        plan: PartitionPlan,
        initials: dict[EntryId, str] | None = None,
        *,
        parent_entries: str = "route",
    ) -> None:
        self._state = state
        self._plan = plan
        self._parent_entries = parent_entries  # see PartitionConfig.parent_entries
        # entry -> initial of its normal form; an entry's text never changes, so a planner
        # passes one cache to every context it builds
        self._initials = initials if initials is not None else {}
        self._routes: dict[tuple[str, EntryId], str] = {}  # (home, entry) -> where it settles

    def __repr__(self) -> str:
        return f"<PartitionContext {self._plan!r} routed={len(self._routes)}>"

    def _initial(self, entry: EntryId) -> str | None:
        initial = self._initials.get(entry)
        if initial is None:
            text = self._state.display_text(entry)
            if text is None:
                return None
            initial = self._initials[entry] = initial_of(normal_form(text))
        return initial

    def settle(self, home: str, entry: EntryId) -> str:
        """The partition an entry found at ``home`` settles in: down alphabetical splits only."""
        key = (home, entry)
        found = self._routes.get(key)
        if found is not None:
            return found
        initial = self._initial(entry)
        if initial is None:  # its entry record has not arrived yet: ask again later, don't cache
            return home
        at = home
        while True:
            node = self._plan.get(at)
            if node is None or node.is_leaf:
                break
            letter_children = [(child, letter_set(labels_of(child)[-1])) for child in node.children]
            if any(letters is None for _, letters in letter_children):
                break  # a semantic split: only a call for the child can place it
            target = next((child for child, letters in letter_children if letters and initial in letters), None)
            if target is None:
                break
            at = target
        self._routes[key] = at
        return at

    def known_ids(self, leaf: str, *, inherited: bool = True) -> list[EntryId]:
        """The entries of ``leaf``'s context, in arrival order (duplicates removed).

        ``inherited=False`` leaves out what the "inherit" rule copies down from above: the
        entries that belong to the leaf itself (which is what decides when it splits).
        """
        plan = self._plan
        found: dict[EntryId, None] = {}
        for partition, entries in self._state.seen_in().items():
            home = plan.home_of(partition)
            if home == leaf:
                found.update(entries)
            elif self._parent_entries == "none" or not _is_above(home, leaf):
                continue
            elif self._parent_entries == "inherit" and inherited:  # routed here, or stuck above: both go in
                found.update((entry, None) for entry in entries if _is_at_or_above(self.settle(home, entry), leaf))
            else:
                found.update((entry, None) for entry in entries if self.settle(home, entry) == leaf)
        return list(found)

    def known_texts(self, leaf: str, *, by_frequency: bool = True, inherited: bool = True) -> list[str]:
        """Display texts of ``leaf``'s context, the most useful to show the model first.

        By frequency: the entries generated most often first (the ones the model would
        repeat), then the newest; else newest first. An alias shows as its own text: a name the
        model wrote, which it should see as known too.
        """
        ids = self.known_ids(leaf, inherited=inherited)
        order = list(range(len(ids)))
        generated: Callable[[EntryId], int] = self._state.generated_count
        if by_frequency:
            order.sort(key=lambda position: (-generated(ids[position]), -position))
        else:
            order.reverse()
        texts: dict[str, None] = {}
        for position in order:
            text = self._state.display_text(ids[position])
            if text is not None:
                texts.setdefault(text)
        return list(texts)


def _is_at_or_above(ancestor: str, path: str) -> bool:
    return ancestor == path or _is_above(ancestor, path)


def _is_above(ancestor: str, path: str) -> bool:
    if not ancestor:
        return bool(path)
    return path.startswith(ancestor + PARTITION_SEPARATOR)
