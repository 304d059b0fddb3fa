"""The simulated LLM: answers enumeration, split and verification prompts from a real closed universe.

It behaves the way published observations say real models do (parameters and sources in
``node.llm.sim.params`` and ``docs/simulated-llm.md``):

- **popularity-biased sampling** — items are drawn with weight popularity^alpha, so answers
  collapse onto the famous ones (NoveltyBench, arXiv 2504.05228; Verbalized Sampling,
  arXiv 2510.01171) and independent calls repeat each other;
- **long-tail recall** — the model does not know every item; the less popular, the likelier
  it is missing (arXiv 2602.14080, 2405.02732), so some of the universe is never produced;
- **imperfect obedience** — a drawn item that is on the prompt's known list is redrawn only
  with a probability that falls as the list grows, and entries past the model's context
  limit are not seen at all;
- **strays** from sibling partitions, **real alternate names** (exonyms, transliterations)
  and **surface variants**, **invented names** (more of them once the part is exhausted);
- **varied formats**, roughly the number of items asked for, token usage, latency, and
  **faults** (429, 500, hangs, truncated and garbled answers);
- **imperfect verification** — asked whether items are real, it confirms most items it knows
  and catches most inventions, at the rates Chain-of-Verification measured (arXiv 2309.11495);
  it is unsure of real items it cannot recall, and now and then leaves an item out.

The model reads only the chat messages (``node.llm.sim.reading``). Dedup and the rest of the
system never read the universe: it is ground truth for measuring, nothing else. All
randomness comes from the ``random.Random`` the caller passes, so a seed reproduces a run.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property, lru_cache

from node.llm.base import ChatMessage, Usage
from node.llm.sim.params import SimParams, solve_popularity_alpha
from node.llm.sim.reading import SimRequest, TaskKind, read_request
from node.llm.sim.scope import Scope, initial_of, resolve_scope
from node.llm.sim.universe import Universe
from node.normalize import normal_form

__all__ = ["Fault", "SimAnswer", "SimulatedModel"]

_MAX_REDRAWS = 12
# Rejection sampling of the obedience model: p(i) ∝ w_i·(1 - p_obey·[i is visible-known]).
# Past this many draws (the unseen items left hold a tiny share of the weight) it draws
# from those weights directly, so the answer follows them exactly either way.
_MAX_OBEDIENCE_DRAWS = 400
_TOKEN_CHARS = 4
# obey_half_list at or past this is infinite for any list a context holds: with obey_max 1
# (the ideal() preset) the model is perfectly obedient. Taken as exact because popularity
# weights span ~13 orders of magnitude: a 1e-11 chance of disobeying still lets Australia
# outweigh Pitcairn when only the tail is left.
_PERFECT_HALF_LIST = 1e9
# A one-letter typo (a letter doubled or dropped) is recognised when both the typo and the real
# name are this long or longer: in shorter names one letter more or less is too often another
# name (2% of inventions were read as real when 4-letter typos counted: "Pala", "Sara").
_MIN_TYPO_CHARS = 5
# Abbreviations read back as the full word, in normal form ("st petersburg" → "saint petersburg").
_ABBREVIATION_EXPANSIONS = (("st ", ("saint ", "sankt ")), ("ste ", ("sainte ",)), ("s ", ("san ",)))


class Fault(StrEnum):
    """What went wrong with a call, if anything (the transport decides how to show it)."""

    NONE = "none"
    RATE_LIMIT = "rate_limit"  # HTTP 429 with Retry-After
    SERVER_ERROR = "server_error"  # HTTP 500
    HANG = "hang"  # no answer at all
    TRUNCATED = "truncated"  # answer cut, finish_reason "length"
    GARBLED = "garbled"  # answer is noise


@dataclass(frozen=True, slots=True)
class SimAnswer:
    """One simulated completion."""

    text: str
    fault: Fault
    finish_reason: str
    usage: Usage
    latency_s: float  # how long a real model would take (already scaled by time_scale)
    request: SimRequest


@dataclass(frozen=True, slots=True)
class _Pool:
    """Items of a scope that the model knows, with cumulative draw weights."""

    indices: tuple[int, ...]
    cumulative: tuple[float, ...]
    members: frozenset[int]

    @property
    def total(self) -> float:
        return self.cumulative[-1] if self.cumulative else 0.0

    def draw(self, rng: random.Random) -> int:
        position = bisect.bisect_right(self.cumulative, rng.random() * self.total)
        return self.indices[min(position, len(self.indices) - 1)]


class SimulatedModel:
    """A deterministic-given-the-rng model over one universe. Pure computation, no I/O."""

    def __init__(self, universe: Universe, params: SimParams, *, knowledge_seed: int = 0) -> None:
        self._universe = universe
        self._params = params
        items = universe.items
        self._names_nf = tuple(normal_form(item.name) for item in items)
        self._all_nfs = tuple(
            frozenset({normal_form(name) for name in (item.name, *item.alternate_names)} - {""})
            for item in items
        )
        self._real_nfs = frozenset(itertools.chain.from_iterable(self._all_nfs))
        self._indices_by_nf: dict[str, list[int]] = {}
        for index, names in enumerate(self._all_nfs):
            for name_nf in names:
                self._indices_by_nf.setdefault(name_nf, []).append(index)
        popularities = [item.popularity for item in items]
        self._alpha = (
            params.popularity_alpha
            if params.popularity_alpha is not None
            else solve_popularity_alpha(popularities, params.target_distinct_in_10)
        )
        self._weights = tuple(max(popularity, 1.0) ** self._alpha for popularity in popularities)
        self._known_to_model = self._knowledge_mask(knowledge_seed)
        self._group_paths = sorted(
            {item.path[:depth] for item in items for depth in range(1, len(item.path) + 1)}
        )
        self._pool = lru_cache(maxsize=512)(self._build_pool)

    def __repr__(self) -> str:
        known = sum(self._known_to_model)
        return (
            f"<SimulatedModel {self._universe.name} items={len(self._names_nf)} known={known} "
            f"alpha={self._alpha:g} params={self._params.version}>"
        )

    @property
    def universe(self) -> Universe:
        return self._universe

    @property
    def params(self) -> SimParams:
        return self._params

    @property
    def popularity_alpha(self) -> float:
        """The popularity exponent in force (solved for this universe unless overridden)."""
        return self._alpha

    def known_share(self) -> float:
        """Share of the universe the model can ever produce (its long-tail recall ceiling)."""
        return sum(self._known_to_model) / max(1, len(self._known_to_model))

    def known_items(self) -> frozenset[int]:
        """Indices of the universe items the model can produce (ground truth for measuring)."""
        return frozenset(index for index, known in enumerate(self._known_to_model) if known)

    # -- construction helpers -------------------------------------------------------------

    def _knowledge_mask(self, seed: int) -> tuple[bool, ...]:
        params = self._params
        order = sorted(range(len(self._weights)), key=lambda index: (self._weights[index], index))
        quantile = [0.0] * len(order)
        for rank, index in enumerate(order):
            quantile[index] = rank / max(1, len(order) - 1)
        mask = []
        for index, q in enumerate(quantile):
            if q >= params.head_quantile:
                p_know = 1.0
            else:
                p_know = params.tail_recall + (1 - params.tail_recall) * q / max(params.head_quantile, 1e-9)
            digest = hashlib.blake2b(f"{seed}:{self._names_nf[index]}:{index}".encode(), digest_size=8).digest()
            mask.append(int.from_bytes(digest, "big") / 2**64 < p_know)
        return tuple(mask)

    def _build_pool(self, scope: Scope) -> _Pool:
        indices = [
            index
            for index, item in enumerate(self._universe.items)
            if self._known_to_model[index] and scope.admits(item.path, self._names_nf[index])
        ]
        cumulative = list(itertools.accumulate(self._weights[index] for index in indices))
        return _Pool(tuple(indices), tuple(cumulative), frozenset(indices))

    # -- answering --------------------------------------------------------------------------

    def respond(
        self,
        messages: Sequence[ChatMessage],
        rng: random.Random,
        *,
        fault_rng: random.Random | None = None,
    ) -> SimAnswer:
        """Answer ``messages`` as the model would, drawing every random choice from ``rng``.

        ``fault_rng``, when given, draws the call's fault instead: a client's ``seed`` fixes
        the answer, not whether the transport fails (a retry must be able to succeed).
        """
        request = read_request(messages)
        params = self._params
        fault = self._draw_fault(rng if fault_rng is None else fault_rng)
        if fault in (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.HANG):
            usage = Usage(prompt_tokens=request.prompt_chars // _TOKEN_CHARS, completion_tokens=0)
            return SimAnswer("", fault, "error", usage, 0.0, request)
        if request.kind is TaskKind.SPLIT:
            text = self._split_answer(request, rng)
        elif request.kind is TaskKind.VERIFY:
            text = _render_verdicts(self.verify_items(request, rng), rng, params)
        else:
            text = self._enumeration_answer(request, rng)
        finish_reason = "stop"
        if fault is Fault.TRUNCATED:
            text = text[: rng.randint(len(text) // 4, max(len(text) // 4, len(text) * 3 // 4))]
            finish_reason = "length"
        elif fault is Fault.GARBLED:
            text = _garble(rng)
        completion_tokens = max(1, len(text) // _TOKEN_CHARS)
        usage = Usage(prompt_tokens=request.prompt_chars // _TOKEN_CHARS, completion_tokens=completion_tokens)
        latency = (params.first_token_s + completion_tokens / params.tokens_per_s) * params.time_scale
        return SimAnswer(text, fault, finish_reason, usage, latency, request)

    def _draw_fault(self, rng: random.Random) -> Fault:
        params = self._params
        roll = rng.random()
        for fault, rate in (
            (Fault.RATE_LIMIT, params.rate_limit_rate),
            (Fault.SERVER_ERROR, params.server_error_rate),
            (Fault.HANG, params.hang_rate),
            (Fault.TRUNCATED, params.truncate_rate),
            (Fault.GARBLED, params.garble_rate),
        ):
            if roll < rate:
                return fault
            roll -= rate
        return Fault.NONE

    def scope_of(self, request: SimRequest) -> Scope:
        """The part of the universe ``request`` is about."""
        return self.scope_for(request.part)

    def scope_for(self, labels: Sequence[str]) -> Scope:
        """The part of the universe a partition path's labels name, as the model reads them."""
        return resolve_scope(labels, self._group_paths)

    def admitted(self, scope: Scope) -> list[int]:
        """Indices of the universe's items inside ``scope`` (known to the model or not)."""
        return [
            index for index, item in enumerate(self._universe.items) if scope.admits(item.path, self._names_nf[index])
        ]

    def _enumeration_answer(self, request: SimRequest, rng: random.Random) -> str:
        names = self.enumerate_items(request, rng)
        return _render_items(names, request, self._item_description, rng, self._params)

    def enumerate_items(self, request: SimRequest, rng: random.Random) -> list[str]:
        """The item names an enumeration answer contains, in order (before formatting).

        Once no item the model knows in the part is left unseen (all on the visible known
        list or already in this answer), it has run dry: it invents at
        ``invented_rate_exhausted``; otherwise a perfectly obedient model (``ideal()``) stops,
        as the prompt asks, and any other repeats a known item it has not yet given.
        """
        params = self._params
        scope = self.scope_of(request)
        pool = self._pool(scope)
        visible = request.known[: params.context_known_limit]
        visible_known = {
            index
            for entry in visible
            for index in self._indices_by_nf.get(normal_form(entry), ())
            if index in pool.members
        }
        obedient = params.obey_max >= 1.0 and params.obey_half_list >= _PERFECT_HALF_LIST
        p_obey = 1.0 if obedient else params.obey_max / (1 + len(visible) / params.obey_half_list)
        low, high = 1 - params.count_jitter, 1 + params.count_jitter
        target = max(1, round(request.count * rng.uniform(low, high)))
        unseen_left = len(pool.indices) - len(visible_known)
        chosen: set[int] = set()
        names: list[str] = []
        for _ in range(target):
            roll = rng.random()
            if roll < params.invented_rate:
                names.append(self._invent(scope, rng))
                continue
            index: int | None = None
            if roll < params.invented_rate + params.stray_rate:
                index = self._stray(scope, rng)
            if index is None and unseen_left > 0:
                index = self._draw_obeying(pool, visible_known, chosen, p_obey, rng)
            elif index is None:  # run dry
                if rng.random() < params.invented_rate_exhausted:
                    names.append(self._invent(scope, rng))
                    continue
                if obedient:
                    break
                index = self._draw_repeat(pool, chosen, rng)
                if index is None:
                    break
            if index in pool.members and index not in visible_known and index not in chosen:
                unseen_left -= 1
            chosen.add(index)
            names.append(self._surface(index, rng))
        return names

    def _draw_obeying(
        self,
        pool: _Pool,
        visible_known: set[int],
        chosen: set[int],
        p_obey: float,
        rng: random.Random,
    ) -> int:
        """Draw an item not yet given, redrawing visible-known ones with probability p_obey.

        The caller ensures an unseen item is left, so the exact fallback has weight to draw.
        """
        for _ in range(_MAX_OBEDIENCE_DRAWS):
            index = pool.draw(rng)
            if index in chosen:
                continue
            if index in visible_known and rng.random() < p_obey:
                continue
            return index
        weights = [
            0.0 if index in chosen else self._weights[index] * (1 - p_obey if index in visible_known else 1.0)
            for index in pool.indices
        ]
        return rng.choices(pool.indices, weights)[0]

    def _draw_repeat(self, pool: _Pool, chosen: set[int], rng: random.Random) -> int | None:
        """A known item by popularity, not one already in this answer; None if none is left."""
        if not pool.indices:
            return None
        for _ in range(_MAX_REDRAWS):
            index = pool.draw(rng)
            if index not in chosen:
                return index
        left = [index for index in pool.indices if index not in chosen]
        if not left:
            return None
        return rng.choices(left, [self._weights[index] for index in left])[0]

    def _stray(self, scope: Scope, rng: random.Random) -> int | None:
        """An item from outside the scope but under its parent (a neighbouring category)."""
        if not scope.prefix and scope.initials is None:
            return None
        parent = Scope(scope.prefix[:-1]) if scope.prefix else Scope()
        parent_pool = self._pool(parent)
        for _ in range(_MAX_REDRAWS):
            index = parent_pool.draw(rng) if parent_pool.total else None
            if index is None:
                return None
            if not scope.admits(self._universe.items[index].path, self._names_nf[index]):
                return index
        return None

    def _surface(self, index: int, rng: random.Random) -> str:
        """The name as the model writes it: usually the main name, sometimes a variant."""
        item = self._universe.items[index]
        roll = rng.random()
        if roll < self._params.alternate_name_rate:
            # An item without another name is written plainly: the variant rate below must
            # not absorb the alternate-name rate for it.
            return rng.choice(item.alternate_names) if item.alternate_names else item.name
        if roll < self._params.alternate_name_rate + self._params.surface_variant_rate:
            return _surface_variant(item.name, rng)
        return item.name

    def _invent(self, scope: Scope, rng: random.Random) -> str:
        """A plausible name that is not in the universe: halves of two real names joined.

        The halves come from names drawn uniformly, not by popularity, so an invention is
        rarely the same twice (hallucinations rarely repeat: the SelfCheckGPT observation).
        """
        pool = self._pool(scope) if self._pool(scope).total else self._pool(Scope())
        for _ in range(_MAX_REDRAWS):
            first = self._universe.items[rng.choice(pool.indices)].name
            second = self._universe.items[rng.choice(pool.indices)].name
            invented = _splice(first, second, rng)
            if normal_form(invented) not in self._real_nfs and len(invented) >= 3:
                return invented
        return f"{self._universe.items[pool.draw(rng)].name} {rng.choice(['Nord', 'Sud', 'Nova', 'Vechi'])}"

    def _item_description(self, name: str) -> str:
        nf = normal_form(name)
        for index, names in enumerate(self._all_nfs):
            if nf in names:
                return f"in {self._universe.items[index].path[-1]}"
        return "a lesser-known one"

    # -- verification -----------------------------------------------------------------------

    def verify_items(self, request: SimRequest, rng: random.Random) -> list[tuple[str, bool]]:
        """The verdicts (item, real?) a verification answer holds, in the asked order.

        Each item is judged by what the model makes of it (``reject_probability``), then left out
        of the answer with ``verify_skip_rate``. The part is not consulted: a real item of the
        topic outside the asked part is still real, which is what the prompt asks.
        """
        params = self._params
        verdicts: list[tuple[str, bool]] = []
        for item in request.items:
            skipped = rng.random() < params.verify_skip_rate
            real = rng.random() >= self.reject_probability(item)
            if not skipped:
                verdicts.append((item, real))
        return verdicts

    def reject_probability(self, item: str) -> float:
        """How likely the model calls ``item`` not real.

        That depends on whether the model knows the item, it is real but unknown to the model,
        or it is no real item of the universe (invented, garbled, off-topic).
        """
        indices = self.real_indices_of(item)
        if not indices:
            return self._params.p_reject_invented
        if any(self._known_to_model[index] for index in indices):
            return self._params.p_false_reject_known
        return self._params.p_reject_unknown_real

    def real_indices_of(self, name: str) -> tuple[int, ...]:
        """The universe items ``name`` denotes as the model reads it; () if none.

        By the normal form of any of an item's names (case, accents, punctuation); failing
        that, a leading "St."/"Ste."/"S." read as Saint/Sankt/Sainte/San; failing that, one
        letter dropped or doubled (typo and name both of ``_MIN_TYPO_CHARS`` letters or more).
        Those are the surface variants the model writes itself, so it recognises them.
        """
        name_nf = normal_form(name)
        if not name_nf:
            return ()
        exact = self._indices_by_nf.get(name_nf)
        if exact:
            return tuple(exact)
        for short, expansions in _ABBREVIATION_EXPANSIONS:
            if name_nf.startswith(short):
                rest = name_nf[len(short):]
                expanded = [index for full in expansions for index in self._indices_by_nf.get(full + rest, ())]
                if expanded:
                    return tuple(dict.fromkeys(expanded))
        if len(name_nf) < _MIN_TYPO_CHARS:
            return ()
        found = list(self._one_letter_dropped.get(name_nf, ()))
        if len(name_nf) > _MIN_TYPO_CHARS:  # a letter doubled (or one inserted)
            for position in range(len(name_nf)):
                found.extend(self._indices_by_nf.get(name_nf[:position] + name_nf[position + 1:], ()))
        return tuple(dict.fromkeys(found))

    @cached_property
    def _one_letter_dropped(self) -> dict[str, tuple[int, ...]]:
        """Every real name (normal form, long enough) with one letter dropped → its items.

        Built on the first verification only (~0.15 s for the 7,782 European cities).
        """
        variants: dict[str, list[int]] = {}
        for name_nf, indices in self._indices_by_nf.items():
            if len(name_nf) <= _MIN_TYPO_CHARS:  # its typo would be shorter than the minimum
                continue
            for variant in {name_nf[:position] + name_nf[position + 1:] for position in range(len(name_nf))}:
                variants.setdefault(variant, []).extend(indices)
        return {variant: tuple(dict.fromkeys(indices)) for variant, indices in variants.items()}

    # -- splitting ----------------------------------------------------------------------------

    def _split_answer(self, request: SimRequest, rng: random.Random) -> str:
        labels = self.split_labels(request, rng)
        if rng.random() < 0.8:
            return json.dumps({"categories": labels}, ensure_ascii=False)
        lines = "\n".join(f"{number}. {label}" for number, label in enumerate(labels, 1))
        return f"Here is one way to divide it:\n\n{lines}"

    def split_labels(self, request: SimRequest, rng: random.Random) -> list[str]:
        """Sub-category labels for the requested scope: the universe's real grouping, noisily."""
        scope = self.scope_of(request)
        depth = len(scope.prefix)
        levels = self._universe.levels
        children: dict[str, float] = {}
        if scope.initials is None and depth < len(levels):
            for index, item in enumerate(self._universe.items):
                if scope.admits(item.path, self._names_nf[index]):
                    label = item.path[depth]
                    children[label] = children.get(label, 0.0) + self._weights[index]
        if len(children) >= 2:
            ranked = sorted(children, key=lambda label: (-children[label], label))
            if len(ranked) > request.max_parts:
                kept = ranked[: request.max_parts - 1]
                labels = [*sorted(kept), f"Other {levels[depth]} groups"]
            else:
                labels = sorted(ranked)
            labels = [_label_variant(label, levels[depth], rng) for label in labels]
            if rng.random() < 0.05 and len(labels) < request.max_parts:
                labels.append(rng.choice(["Major ones", "Other", "Smaller ones"]))  # vague, overlapping
            return labels
        return self._letter_ranges(scope, request.max_parts)

    def _letter_ranges(self, scope: Scope, max_parts: int) -> list[str]:
        counts: dict[str, int] = {}
        for index, item in enumerate(self._universe.items):
            if scope.admits(item.path, self._names_nf[index]):
                letter = initial_of(self._names_nf[index])
                if letter != "#":
                    counts[letter] = counts.get(letter, 0) + 1
        letters = sorted(counts)
        if len(letters) < 2:
            return ["A–M", "N–Z"]
        parts = min(max_parts, len(letters))
        per_part = sum(counts.values()) / parts
        ranges: list[list[str]] = [[]]
        running = 0
        for letter in letters:
            if running >= per_part * len(ranges) and len(ranges) < parts:
                ranges.append([])
            ranges[-1].append(letter)
            running += counts[letter]
        return [f"{group[0].upper()}–{group[-1].upper()}" for group in ranges if group]


# -- rendering ------------------------------------------------------------------------------


def _render_items(
    names: list[str],
    request: SimRequest,
    describe: Callable[[str], str],
    rng: random.Random,
    params: SimParams,
) -> str:
    """Format the items the way a model might: usually the JSON asked for, sometimes not."""
    style = rng.choices(range(5), weights=params.format_weights)[0]
    what = request.topic or "items"
    if style == 0 or not names:  # with nothing left, the empty list the prompt asks for
        return json.dumps({"entries": names}, ensure_ascii=False)
    if style == 1:
        body = json.dumps(names, ensure_ascii=False, indent=2)
        return f"Here are {len(names)} more {what}:\n\n```json\n{body}\n```"
    if style == 2:
        lines = "\n".join(f"{number}. {name}" for number, name in enumerate(names, 1))
        return f"Sure! Here are {len(names)} more {what}:\n\n{lines}\n\nLet me know if you'd like more."
    if style == 3:
        lines = "\n".join(f"- **{name}** – {describe(name)}" for name in names)
        return f"{lines}\n"
    if len(names) == 1:
        return f"One more is {names[0]}."
    return f"Some more {what} include {', '.join(names[:-1])}, and {names[-1]}."


_YES_PHRASES = ("yes", "yes, real", "yes — it exists")
_NO_PHRASES = ("no", "no, not a real one", "no — probably invented")


def _render_verdicts(verdicts: list[tuple[str, bool]], rng: random.Random, params: SimParams) -> str:
    """Format verdicts the way a model might: usually the JSON asked for, sometimes numbered lines."""
    style = rng.choices(range(3), weights=params.verify_format_weights)[0]
    rows = [{"item": item, "real": real} for item, real in verdicts]
    if style == 0 or not verdicts:
        return json.dumps({"verdicts": rows}, ensure_ascii=False)
    if style == 1:
        body = json.dumps({"verdicts": rows}, ensure_ascii=False, indent=2)
        return f"Here is my check of each item:\n\n```json\n{body}\n```"
    lines = "\n".join(
        f"{number}. {item} — {rng.choice(_YES_PHRASES if real else _NO_PHRASES)}"
        for number, (item, real) in enumerate(verdicts, 1)
    )
    return f"Checking each item:\n\n{lines}"


_ABBREVIATIONS = (("Saint ", "St. "), ("Sankt ", "St. "), ("Sainte ", "Ste. "), ("San ", "S. "))


def _surface_variant(name: str, rng: random.Random) -> str:
    """A spelling a model might produce: abbreviation, lost accents, changed case, a typo."""
    for full, short in _ABBREVIATIONS:
        if name.startswith(full) and rng.random() < 0.7:
            return short + name[len(full):]
    choice = rng.random()
    if choice < 0.4:
        stripped = normal_form(name)
        return stripped.title() if stripped else name
    if choice < 0.6:
        return name.upper() if len(name) <= 4 else name.lower()
    if len(name) >= 5:  # one-letter typo: a doubled or dropped letter
        position = rng.randrange(1, len(name) - 1)
        if rng.random() < 0.5:
            return name[:position] + name[position] + name[position:]
        return name[:position] + name[position + 1:]
    return name


def _split_point(name: str, rng: random.Random) -> int:
    """A syllable-ish cut: after a vowel, before a consonant."""
    vowels = set("aeiouyàáâäåèéêëìíîïòóôöùúûü")
    points = [i for i in range(2, len(name) - 1) if name[i - 1].lower() in vowels and name[i].lower() not in vowels]
    if not points:
        return len(name) // 2
    return rng.choice(points)


def _splice(first: str, second: str, rng: random.Random) -> str:
    head = first[: _split_point(first, rng)]
    tail = second[_split_point(second, rng):]
    return (head + tail.lower()).strip().title() if head and tail else first + "ovo"


def _label_variant(label: str, level: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.1:
        return f"{label} ({level})"
    if roll < 0.15:
        return label.upper() if len(label) <= 3 else f"The {label}" if " " in label else label
    return label


_GARBAGE = (
    "I'm sorry, but I can't help with that request.",
    "\x00\x07{\"entr",
    "As an AI language model, I don't have access to a complete list.",
    "]]]]}}}}:::: ,,,, ---",
)


def _garble(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_GARBAGE)
    return "".join(chr(rng.randrange(33, 0x2FF)) for _ in range(rng.randrange(20, 200)))
