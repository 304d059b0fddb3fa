"""A node's partition planner: picks each call's partition, and splits or retires leaves.

The producer asks ``acquire()`` before every call and ``release()`` after it. ``acquire``:

1. reads the plan (``PartitionPlan``, recomputed only when a plan record arrived);
2. picks a live leaf by ``PartitionConfig.schedule``:

   - *owned* (the default): only the live leaves this node owns (rendezvous hashing over the
     live members, ``partitioning.assign``) — or, owning none, all live leaves — the one with
     the most expected new entries per call (``policy.expected_new_per_call``) shared out
     over this node's calls in flight on it;
   - *shared*: the network's calls dealt out as one central scheduler would spread them
     (``policy.share_calls``: every member's capacity spread over the best leaves, each call
     to the leaf's owner while it has room, the rest to the runners-up), and this node takes
     its own share. Nobody knows where a peer's calls are; every node computes the same
     shares from the same replicated call records, so no message is needed;

3. judges the leaf (``policy.judge``): a split asks the model for sub-categories
   (``build_split_prompt``, cleaned by ``partitioning.labels``); an unusable, truncated or
   failed answer is asked again at the next pick, and after ``split_attempts`` of them the
   leaf is divided into alphabetical ranges of its known entries instead (a transient fault
   must not turn a semantic plan into an alphabetical one); a split or retire is committed as
   a ``PlanRecord`` — gossiped like any record, so every node's plan follows — and the pick
   starts over.

Only the owner splits or retires a leaf — unless it has not worked on it lately (alive but out
of budget, say), when the nodes that do may — so concurrent splits of one leaf, each a model
call, are rare; the plan's first-event-wins rule settles them. A helper works on a leaf due
for a split as it is until the owner splits it. Under the shared schedule any node also
retires a dry leaf it picked: retiring costs no call, and the leaf's calls count toward it
whoever made them (a retire that races a peer's split of the same leaf is settled by the
same first-event-wins rule).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from node.errors import LLMError
from node.estimate import chao1
from node.hlc import HybridClock
from node.llm.base import LLMBackend
from node.normalize import EntryId, normal_form
from node.prompts import PromptTemplates, build_split_prompt, estimate_tokens
from node.records import PlanAction, PlanRecord, Record
from node.state import NodeState
from node.store import Store
from partitioning.ask import ask_for, window_asked
from partitioning.assign import assign, owner_of, rank_members
from partitioning.config import PartitionConfig
from partitioning.context import PartitionContext, path_letters
from partitioning.labels import NON_LATIN_INITIAL, clean_split_labels, initial_of, letter_ranges, letter_set
from partitioning.plan import PartitionPlan, PartitionStatus, labels_of
from partitioning.policy import LeafStats, Verdict, expected_new_per_call, judge, share_calls

__all__ = ["Planner", "PlannerStats"]

log = logging.getLogger(__name__)

_MAX_PLAN_STEPS = 8  # plan actions per acquire before working on what there is


@dataclass
class PlannerStats:
    """Counters of this node's plan work."""

    split_calls: int = 0  # LLM calls asking for sub-categories
    split_prompt_tokens: int = 0
    split_completion_tokens: int = 0
    split_fallbacks: int = 0  # splits made alphabetically because the answer was unusable
    splits: int = 0  # split events this node committed
    retires: int = 0  # retire events this node committed
    helping: int = 0  # calls on a leaf this node does not own


def _one_initial(leaf: str) -> bool:
    """A letter range of one initial: below it only narrower ranges make sense, and there are
    none — asking the model would spend a call on an answer that is always unusable. A function
    of the path, so every node agrees that it cannot be split."""
    letters = path_letters(labels_of(leaf))
    return letters is not None and len(letters - {NON_LATIN_INITIAL}) < 2


class Planner:
    """Runs on the event loop; one per node. Implements the producer's ``PartitionSource``."""

    def __init__(
        self,
        *,
        config: PartitionConfig,
        state: NodeState,
        store: Store,
        clock: HybridClock,
        backend: LLMBackend,
        topic: str,
        members: Callable[[], Mapping[str, float]],
        items_per_call: int,
        by_frequency: bool = True,
        templates: PromptTemplates | None = None,
        on_committed: Callable[[Sequence[Record]], None] = lambda records: None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._config = config
        self._state = state
        self._store = store
        self._clock = clock
        self._backend = backend
        self._topic = topic
        self._members = members
        self._items_per_call = items_per_call
        self._by_frequency = by_frequency
        self._templates = templates or PromptTemplates()
        self._on_committed = on_committed
        self._on_change = on_change
        self._node = store.identity.name
        self._plan_at = -1
        self._plan = PartitionPlan(())
        self._initials: dict[EntryId, str] = {}
        self._context = PartitionContext(state, self._plan, self._initials, parent_entries=config.parent_entries)
        self._owners: dict[str, str] = {}
        self._owners_for: tuple[int, frozenset[tuple[str, float]]] | None = None
        self._texts_memo: tuple[tuple[int, str, bool], list[str]] | None = None
        self._shares_memo: tuple[object, dict[str, float], dict[str, Counter[str]]] | None = None
        self._in_flight: Counter[str] = Counter()
        self._acting: set[str] = set()  # leaves being split or retired by this node right now
        self._unsplittable: set[str] = set()
        self._split_failures: Counter[str] = Counter()  # leaf -> split answers that were unusable
        self.stats = PlannerStats()

    def __repr__(self) -> str:
        return f"<Planner {self._node} {self.plan!r} in_flight={sum(self._in_flight.values())}>"

    # -- what the rest of the node reads ------------------------------------------------------

    @property
    def plan(self) -> PartitionPlan:
        """The current plan (rebuilt only after a plan record arrived)."""
        if self._plan_at != self._state.plan_count:
            self._plan_at = self._state.plan_count
            self._plan = PartitionPlan(self._state.plan_records())
            self._context = PartitionContext(
                self._state, self._plan, self._initials, parent_entries=self._config.parent_entries
            )
        return self._plan

    @property
    def context(self) -> PartitionContext:
        _ = self.plan
        return self._context

    def known_for(self, partition: str) -> list[str]:
        """The known entries to put in a prompt for ``partition``, most useful first."""
        return self._known_texts(partition, inherited=True)

    def _known_texts(self, leaf: str, *, inherited: bool) -> list[str]:
        """A leaf's context texts, computed once per state: ``acquire`` judges the leaf and the
        producer then prompts with it, with no record applied in between."""
        inherited = inherited and self._config.parent_entries == "inherit"  # otherwise the same list
        key = (self._state.version, leaf, inherited)
        if self._texts_memo is None or self._texts_memo[0] != key:
            texts = self.context.known_texts(leaf, by_frequency=self._by_frequency, inherited=inherited)
            self._texts_memo = (key, texts)
        return list(self._texts_memo[1])

    def reason_to_stop(self) -> str | None:
        """Why production is over (every partition retired), or None."""
        plan = self.plan
        if plan.exhausted:
            return f"topic exhausted: all {len(plan.retired())} partitions retired"
        return None

    def snapshot(self) -> dict[str, tuple[str, str | None]]:
        """Every partition of the plan: path -> (state, owner) — "active" leaves have an owner."""
        owners = self.owners()
        states = {PartitionStatus.LIVE: "active", PartitionStatus.SPLIT: "split", PartitionStatus.RETIRED: "retired"}
        return {p.path: (states[p.status], owners.get(p.path)) for p in self.plan.partitions()}

    def metrics(self) -> dict[str, object]:
        """The plan's shape and this node's plan work, for the metrics page."""
        plan = self.plan
        return {
            "partitions": len(plan.partitions()),
            "live_leaves": len(plan.live_leaves()),
            "retired_leaves": len(plan.retired()),
            "depth": plan.depth,
            "owned": sum(1 for owner in self.owners().values() if owner == self._node),
            "superseded_events": len(plan.superseded()),
            **vars(self.stats),
        }

    def owners(self) -> dict[str, str]:
        """The owner of every live leaf (recomputed when the plan or the live members change)."""
        members = self._members()
        key = (self._state.plan_count, frozenset(members.items()))  # weights too: capacity records may arrive
        if key != self._owners_for:
            self._owners_for = key
            self._owners = assign(self.plan.live_leaves(), members)
        return self._owners

    def owner(self, leaf: str) -> str | None:
        owners = self.owners()
        return owners[leaf] if leaf in owners else owner_of(leaf, self._members())

    def leaf_stats(self, leaf: str, *, with_context: bool = True) -> LeafStats:
        calls = self._state.calls_in(leaf)
        recent = calls[-self._config.window_calls :] if calls else ()
        known_tokens = known = 0
        remaining = 0.0
        if with_context:
            # its own entries: what "inherit" copies into the prompt from above must not
            # make every child look too big to fit, or splits would cascade
            texts = self._known_texts(leaf, inherited=False)
            known = len(texts)
            known_tokens = sum(estimate_tokens(text) + 2 for text in texts)
            estimate = chao1(self._state.sample_counts().get(leaf, {}).values())
            remaining = max(0.0, estimate.estimate - estimate.observed)
        return LeafStats(
            path=leaf,
            depth=len(labels_of(leaf)),
            calls=len(calls),
            recent_calls=len(recent),
            recent_new=sum(call.fresh for call in recent),
            known=known,
            known_tokens=known_tokens,
            remaining=remaining,
            can_split=leaf not in self._unsplittable and not _one_initial(leaf),
            # per item really asked: with the adaptive ask the window's calls asked fewer
            recent_asked=window_asked([call.fresh for call in calls[-2 * self._config.window_calls :]],
                                      self._config, self._items_per_call)
            if recent and self._config.adaptive_ask else None,
        )  # fmt: skip

    def items_to_ask(self, partition: str) -> int:
        """Items the next call on ``partition`` asks for: fewer as its recent yield falls (``partitioning.ask``)."""
        recent = self._state.calls_in(partition)[-self._config.window_calls :]
        return ask_for([call.fresh for call in recent], self._config, self._items_per_call)

    def expected_new(self, leaf: str) -> float:
        stats = self.leaf_stats(leaf, with_context=False)
        return expected_new_per_call(stats, self._config, self._items_per_call)

    # -- the producer's side -------------------------------------------------------------------

    async def acquire(self) -> str | None:
        """The partition for the next call; None when every partition is retired."""
        for _ in range(_MAX_PLAN_STEPS):
            leaf = self._pick()
            if leaf is None:
                return None
            if leaf in self._acting:
                break
            judges = self._judges(leaf)
            if not judges and self._config.schedule == "owned":
                break  # its owner's to judge: work on it as it is
            decision = judge(self.leaf_stats(leaf), self._config, self._items_per_call)
            if decision.verdict is Verdict.KEEP:
                break
            if not judges and decision.verdict is Verdict.SPLIT:
                break  # a split is the owner's (a model call): work on it as it is meanwhile
            self._acting.add(leaf)
            try:
                if decision.verdict is Verdict.SPLIT:
                    await self._split(leaf, decision.reason)
                else:
                    await self._commit(PlanRecord(PlanAction.RETIRE, leaf, (), self._node, self._clock.now(), decision.reason))
                    self.stats.retires += 1
                    log.info("retired partition %r: %s", leaf or "(whole topic)", decision.reason)
            finally:
                self._acting.discard(leaf)
        else:
            leaf = self._pick()
            if leaf is None:
                return None
        if self.owner(leaf) != self._node:
            self.stats.helping += 1
        self._in_flight[leaf] += 1
        return leaf

    def _judges(self, leaf: str) -> bool:
        """Whether this node splits and retires ``leaf``: its owner does, and a helper does when
        the owner has not worked on it lately (``acquire`` lets any node retire one under the
        shared schedule).

        The owner may be alive but not producing (out of budget, its producer stopped): then
        the nodes still working on the leaf must be able to split or retire it.
        """
        owner = self.owner(leaf)
        if owner == self._node:
            return True
        recent = self._state.calls_in(leaf)[-self._config.window_calls :]
        return len(recent) >= self._config.window_calls and all(call.node != owner for call in recent)

    def release(self, partition: str) -> None:
        """A call on ``partition`` ended."""
        self._in_flight[partition] -= 1
        if self._in_flight[partition] <= 0:
            del self._in_flight[partition]

    def _pick(self) -> str | None:
        """The live leaf for the next call (module docstring, step 2); of equals, the smaller
        path (as ``policy.spread_calls``)."""
        live = self.plan.live_leaves()
        if not live:
            return None
        if self._config.schedule == "shared":
            return self._my_share()
        owners = self.owners()
        candidates = [leaf for leaf in live if owners.get(leaf) == self._node] or live
        return min(candidates, key=lambda leaf: (-self.expected_new(leaf) / (1 + self._in_flight[leaf]), leaf))

    def _my_share(self) -> str:
        """The shared schedule: the network's calls dealt out (``policy.share_calls``); the best
        of this node's calls not yet in flight — or, its share taken (more calls than its
        capacity record says, or the plan moved on since its calls started), the leaf left
        best once every other member's share is counted."""
        expected, shares = self._shares()
        mine = shares.get(self._node, Counter())
        open_share = [leaf for leaf in mine if mine[leaf] > self._in_flight[leaf]]
        if open_share:
            return min(open_share, key=lambda leaf: (-expected[leaf] / (1 + self._in_flight[leaf]), leaf))
        others: Counter[str] = Counter()
        for member, share in shares.items():
            if member != self._node:
                others.update(share)
        return min(expected, key=lambda leaf: (-expected[leaf] / (1 + others[leaf] + self._in_flight[leaf]), leaf))

    def _shares(self) -> tuple[dict[str, float], dict[str, Counter[str]]]:
        """Every live leaf's expected new entries per call, and the network's calls dealt out;
        computed once per state, plan and membership (every pick of an acquire reads them)."""
        weights = self._members()
        key = (self._state.version, self._state.plan_count, frozenset(weights.items()))
        if self._shares_memo is None or self._shares_memo[0] != key:
            owners = self.owners()
            expected = {leaf: self.expected_new(leaf) for leaf in self.plan.live_leaves()}
            shares = share_calls(
                expected,
                # a weight is a concurrency; every live member makes at least one call
                {member: max(1, round(weight)) for member, weight in weights.items()},
                owner=lambda leaf: owners.get(leaf) or owner_of(leaf, weights),
                ranked=lambda leaf: rank_members(leaf, weights),
            )
            self._shares_memo = (key, expected, shares)
        return self._shares_memo[1], self._shares_memo[2]

    # -- plan actions ---------------------------------------------------------------------------

    async def _split(self, leaf: str, reason: str) -> None:
        labels = labels_of(leaf)
        if _one_initial(leaf):
            self._unsplittable.add(leaf)
            return
        children = await self._ask_for_children(leaf)
        if children is None:
            self._split_failures[leaf] += 1
            if self._split_failures[leaf] < self._config.split_attempts:
                return  # the leaf stays as it is; the next pick asks the model again
            self.stats.split_fallbacks += 1
            children = self._alphabetical_children(leaf)
            if not children:
                self._unsplittable.add(leaf)
                log.info("partition %r cannot be divided further; it stays whole", leaf or "(whole topic)")
                return
            reason += " (alphabetical: the split answer was unusable)"
        await self._commit(PlanRecord(PlanAction.SPLIT, leaf, tuple(children), self._node, self._clock.now(), reason))
        self.stats.splits += 1
        log.info("split partition %r into %d: %s; %s", " > ".join(labels) or "(whole topic)", len(children),
                 ", ".join(children), reason)  # fmt: skip

    async def _ask_for_children(self, leaf: str) -> list[str] | None:
        """Sub-category labels from the model, or None if the answer is unusable."""
        labels = labels_of(leaf)
        messages = build_split_prompt(
            self._templates, topic=self._topic, partition=list(labels), max_parts=self._config.max_split_parts
        )
        self.stats.split_calls += 1
        try:
            completion = await self._backend.complete(messages, json_mode=True)
        except LLMError as exc:
            log.warning("split call for %r failed: %s", leaf or "(whole topic)", exc)
            return None
        self.stats.split_prompt_tokens += completion.usage.prompt_tokens
        self.stats.split_completion_tokens += completion.usage.completion_tokens
        if completion.finish_reason == "length":  # cut short: the categories it lists are not all
            log.warning("split answer for %r was truncated", leaf or "(whole topic)")
            return None
        cleaned = clean_split_labels(completion.text, max_parts=self._config.max_split_parts, parent_labels=labels)
        # Non-overlapping: a remainder bucket ("Other … groups") divided again lists its
        # siblings too; they have their own partitions already.
        taken = {normal_form(labels_of(sibling)[-1]) for sibling in self.plan.siblings(leaf)}
        children = [label for label in cleaned.labels if normal_form(label) not in taken]
        letters = path_letters(labels)
        if letters is not None:  # below a letter range, only ranges inside it make sense
            children = [c for c in children if (found := letter_set(c)) is not None and found & letters]
        return children if len(children) >= 2 else None

    def _alphabetical_children(self, leaf: str) -> list[str]:
        within = path_letters(labels_of(leaf))
        counts: Counter[str] = Counter()
        for text in self.known_for(leaf):
            counts[initial_of(normal_form(text))] += 1
        parts = max(2, min(self._config.max_split_parts, 4))
        return letter_ranges(counts, parts, within=within)

    async def _commit(self, record: PlanRecord) -> None:
        added = await self._store.add([record])
        for new in added:
            self._state.apply(new)
        self._on_committed(added)
        self._on_change()

