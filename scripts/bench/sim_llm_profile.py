"""Profile of the simulated LLM, measured as a black box over HTTP through the ``openai`` client.

    .venv/bin/python scripts/bench/sim_llm_profile.py [--universe european-cities] [--seed 0]
        [--calls 1.0] [--out docs/benchmarks/sim_llm_profile.json] [--no-write]

Starts the simulated LLM's OpenAI-compatible server in this process (aiohttp on 127.0.0.1,
``time_scale`` 0 so answers come at once) with the realistic ``SimParams()`` — faults on —
and talks to it only through ``openai.AsyncOpenAI`` (``max_retries=0``), with the real
prompts (``node.prompts``) and the real answer parser (``node.parser``), as a node would.
The universe is read only afterwards, as ground truth, to classify what came back.
Measured, each beside the value the parameters imply and the published figure where one
exists (docs/simulated-llm.md):

1. distinct answers in 10 one-item samples — NoveltyBench (arXiv 2504.05228) finds 2.8–3.9
   for frontier models — on the chosen universe and on ``countries``, the universe the
   popularity exponent was calibrated on;
2. the share of one-item answers that are one of the 10 most popular items: the collapse
   onto popular answers that Verbalized Sampling (arXiv 2510.01171) shows;
3. per item: alternate names, near-misses (a typo, "St."), invented names, strays from
   outside the asked part; per call: 429, 500, hangs (a client timeout), truncation,
   garbled answers, parse success, answer formats, items per answer, tokens, latency;
4. obedience: the share of answer items already on the prompt's known list, for known lists
   of growing length, beside what ``obey_max / (1 + L / obey_half_list)`` implies;
5. long-tail recall (arXiv 2602.14080, 2405.02732): the share of the universe ever produced
   by one producer per leaf part with a growing known list, per popularity decile, beside
   the configured ceiling (``tail_recall``, ``head_quantile``; ``known_share()``).

"Implied" figures are exact expectations under the documented parameters (popularity^α
draws over the items the model knows in expectation, rejection of known items with
p_obey), computed from the ground truth; they are what a measurement should match.
Latency is the model's own figure at time_scale 1 (first_token_s + completion tokens /
tokens_per_s), not wall time; the wall request rate of this process is reported beside it.
Answers are reproducible from the seeds printed (server, knowledge and per-request seeds);
which requests draw a fault follows their arrival order at the server, so fault counts, and
the re-asks they cause, vary slightly between runs.
Writes ``--out`` and the "## Simulated LLM profile" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import openai
from aiohttp import web
from openai.types.chat import ChatCompletionMessageParam
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein
from rich.console import Console
from rich.table import Table

from node.llm.base import ChatMessage
from node.llm.sim.cli import params_table
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams, solve_popularity_alpha
from node.llm.sim.server import create_sim_app
from node.llm.sim.universe import Universe, available_universes, load_universe
from node.normalize import entry_id, normal_form
from node.parser import ParseResult, parse_answer
from node.prompts import PromptTemplates, build_enumeration_prompt, build_split_prompt
from scripts.bench.report import DOCS_PATH, machine_info, machine_summary, write_results

log = logging.getLogger(__name__)

SECTION = "Simulated LLM profile"
DEFAULT_OUT = ROOT / "docs" / "benchmarks" / "sim_llm_profile.json"
REFERENCE_UNIVERSE = "countries"  # popularity_alpha was calibrated on "a country"
TEMPLATES = PromptTemplates()
# A hang must cost a timeout, and the timeout must not be mistaken for a slow answer: the
# server answers in milliseconds (time_scale 0), hangs last 1.5 s, the client waits 1 s.
CLIENT_TIMEOUT_S = 1.0
HANG_S = 1.5
CONCURRENCY = 16
SAMPLES_PER_TRIAL = 10  # NoveltyBench's protocol: distinct answers among 10 samples
TOP_ITEMS = 10
ANSWER_COUNT = 20  # items asked for by the enumeration prompts of experiments 3-5
KNOWN_LENGTHS = (0, 50, 150, 300, 600, 1200, 2400)  # 2400 passes context_known_limit
NO_BUDGET = 10**9  # known-list token budget that never binds: the experiment picks the list
MAX_ATTEMPTS = 10  # re-asks (fresh seed) of a faulted or unparseable sample
# Request seeds: experiment k uses k * SEED_BLOCK + request number, + ATTEMPT_STRIDE per re-ask.
SEED_BLOCK = 10_000_000
ATTEMPT_STRIDE = 1_000_000_000
# Published figures (docs/simulated-llm.md).
NOVELTYBENCH = "2.8–3.9 (GPT-4o 3.88, Claude-3.5-Sonnet 2.76)"
VERBALIZED_SAMPLING = "collapse onto the most popular (US states), no comparable figure"
LONG_TAIL = "recall drops sharply in the tail (arXiv 2602.14080, 2405.02732)"
# Abbreviations a model writes for a name's first word ("St. Petersburg"), after normal_form.
_ABBREVIATIONS = {"st": ("saint", "sankt"), "ste": ("sainte",), "s": ("san",)}
# Words of a split instruction: a known entry holding one (the city of Split) once made the
# simulator read an enumeration prompt as a split task; check_instruction_names measures it.
_INSTRUCTION_WORDS = ("split", "divide", "subdivide", "subcategories")


# -- ground truth ------------------------------------------------------------------------------


class Kind(StrEnum):
    """What a generated name is, judged against the universe."""

    MAIN = "main"  # an item's main name (any spelling with the same normal form)
    ALTERNATE = "alternate"  # a real alternate name of an item (exonym, transliteration)
    NEAR_MISS = "near_miss"  # one edit from a real name, or an abbreviated "Saint": a variant
    INVENTED = "invented"  # none of the above


@dataclass(frozen=True, slots=True)
class Resolution:
    kind: Kind
    index: int | None  # the item (the most popular one among homonyms); None if invented
    candidates: tuple[int, ...] = ()  # every item the name may mean (homonyms)


class GroundTruth:
    """The universe as the measuring stick: resolves generated names to items."""

    def __init__(self, universe: Universe, params: SimParams) -> None:
        self.universe = universe
        items = universe.items
        self.main_nfs = tuple(normal_form(item.name) for item in items)
        self._index_by_id = universe.id_of_any_name()
        by_nf: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            for name in (item.name, *item.alternate_names):
                nf = normal_form(name)
                if nf and index not in by_nf.setdefault(nf, []):
                    by_nf[nf].append(index)
        self._items_by_nf = {nf: tuple(indices) for nf, indices in by_nf.items()}
        self._nf_choices = list(self._items_by_nf)
        popularities = [item.popularity for item in items]
        self.alpha = (
            params.popularity_alpha
            if params.popularity_alpha is not None
            else solve_popularity_alpha(popularities, params.target_distinct_in_10)
        )
        self.weights = tuple(max(popularity, 1.0) ** self.alpha for popularity in popularities)
        self.quantiles = _popularity_quantiles(self.weights)
        self.know_probability = tuple(_know_probability(q, params) for q in self.quantiles)
        self.by_popularity = tuple(sorted(range(len(items)), key=lambda i: (-self.weights[i], i)))
        self.resolve = lru_cache(maxsize=65536)(self._resolve)

    def _resolve(self, text: str) -> Resolution:
        nf = normal_form(text)
        index = self._index_by_id.get(entry_id(text))
        if index is not None:
            kind = Kind.MAIN if nf == self.main_nfs[index] else Kind.ALTERNATE
            return Resolution(kind, index, self._items_by_nf.get(nf, (index,)))
        words = nf.split(" ", 1)
        for expansion in _ABBREVIATIONS.get(words[0], ()) if len(words) == 2 else ():
            found = self._items_by_nf.get(f"{expansion} {words[1]}")
            if found:
                return Resolution(Kind.NEAR_MISS, found[0], found)
        if len(nf) >= 4:  # shorter names are one edit from too many others
            matches = process.extract(nf, self._nf_choices, scorer=Levenshtein.distance, score_cutoff=1, limit=None)
            if matches:
                # Several names may be one edit away ("Esen": Essen, Resen); a typo is likeliest
                # of the most popular, the way the model draws.
                found = tuple(i for match in matches for i in self._items_by_nf[match[0]])
                best = max(found, key=lambda i: (self.weights[i], -i))
                return Resolution(Kind.NEAR_MISS, best, found)
        return Resolution(Kind.INVENTED, None)

    def items_named(self, nf: str) -> tuple[int, ...]:
        """The items one of whose names has the normal form ``nf``."""
        return self._items_by_nf.get(nf, ())

    def identity(self, text: str) -> tuple[str, bool]:
        """One key per functionally distinct answer, and whether it was read inside a sentence.

        The item's main name when the text names an item; else, as a judge of functional
        equivalence would read it, the item its trailing words name ("One more is China",
        a one-item sentence the parser keeps whole); else the text itself.
        """
        resolution = self.resolve(text)
        if resolution.index is not None:
            return f"item:{self.main_nfs[resolution.index]}", False
        words = normal_form(text).split()
        for start in range(2, len(words)):
            index = self._index_by_id.get(entry_id(" ".join(words[start:])))
            if index is not None:
                return f"item:{self.main_nfs[index]}", True
        return f"new:{normal_form(text)}", False

    def in_part(self, resolution: Resolution, prefix: Sequence[str]) -> bool:
        """Whether any item the name may mean lies under ``prefix`` (True for invented names)."""
        if resolution.index is None:
            return True
        return any(self.universe.items[i].path[: len(prefix)] == tuple(prefix) for i in resolution.candidates)


def _popularity_quantiles(weights: Sequence[float]) -> list[float]:
    order = sorted(range(len(weights)), key=lambda index: (weights[index], index))
    quantiles = [0.0] * len(order)
    for rank, index in enumerate(order):
        quantiles[index] = rank / max(1, len(order) - 1)
    return quantiles


def _know_probability(quantile: float, params: SimParams) -> float:
    """The documented recall curve: 1 in the head, falling linearly to tail_recall at the bottom."""
    if quantile >= params.head_quantile:
        return 1.0
    return params.tail_recall + (1 - params.tail_recall) * quantile / max(params.head_quantile, 1e-9)


# -- what the parameters imply -----------------------------------------------------------------


def expected_distinct(draw_weights: Sequence[float], samples: int, invented_rate: float) -> float:
    """Expected distinct answers among ``samples`` one-item draws; invented ones never repeat."""
    total = sum(draw_weights)
    real = sum(1 - (1 - (1 - invented_rate) * weight / total) ** samples for weight in draw_weights)
    return real + samples * invented_rate


def expected_repeat_share(visible_known: float, hidden_known: float, unknown: float, p_obey: float, invented_rate: float) -> float:
    """Share of one-item answers that are on the known list (whole topic), from the draw weights.

    A draw rejects a visible known item with probability p_obey, so it lands on the known list
    with probability (V·(1-p) + H) / (V·(1-p) + H + U) — V, H, U the weights of the visible
    known, hidden known (past the context limit) and other items. On the whole topic a stray
    has no neighbouring part and is drawn the same way; invented names are never on the list.
    """
    on_list = visible_known * (1 - p_obey) + hidden_known
    return (1 - invented_rate) * on_list / (on_list + unknown)


def p_obey(params: SimParams, known_length: int) -> float:
    visible = min(known_length, params.context_known_limit)
    return params.obey_max / (1 + visible / params.obey_half_list)


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sound at rates near 0)."""
    if trials == 0:
        return (0.0, 1.0)
    share = successes / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(successes: int, trials: int) -> dict[str, Any]:
    low, high = wilson(successes, trials)
    return {"count": successes, "of": trials, "rate": successes / trials if trials else None, "ci95": [low, high]}


# -- the client side ---------------------------------------------------------------------------


class Outcome(StrEnum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"  # HTTP 429
    SERVER_ERROR = "server_error"  # HTTP 5xx
    TIMEOUT = "timeout"  # no answer within the client timeout: a hang
    OTHER_ERROR = "other_error"


class Task(StrEnum):
    ONE_ITEM = "one_item"  # "List 1" prompts
    LIST = "list"  # "List 20" prompts
    SPLIT = "split"


@dataclass(frozen=True, slots=True)
class Call:
    task: Task
    outcome: Outcome
    finish_reason: str | None = None
    parsed: ParseResult | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answered_split: bool = False  # an enumeration prompt answered with sub-categories

    @property
    def usable(self) -> bool:
        return self.outcome is Outcome.OK and self.parsed is not None and not self.parsed.failed

    @property
    def entries(self) -> tuple[str, ...]:
        return self.parsed.entries if self.outcome is Outcome.OK and self.parsed is not None else ()


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}


def _reads_as_split_answer(text: str) -> bool:
    """The answer lists sub-categories (the split task's answer), not items."""
    return '"categories"' in text or "one way to divide" in text.lower()


class SimClient:
    """``openai.AsyncOpenAI`` as any client uses it, bounded in concurrency, recording every call."""

    def __init__(self, base_url: str, model_id: str) -> None:
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=CLIENT_TIMEOUT_S)
        self._model_id = model_id
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self.calls: list[Call] = []

    def __repr__(self) -> str:
        return f"<SimClient {self._model_id} calls={len(self.calls)}>"

    async def call(self, messages: Sequence[ChatMessage], seed: int, task: Task) -> Call:
        """One request, no retry; a fault is recorded and returned, never raised."""
        async with self._slots:
            try:
                response = await self._client.chat.completions.create(
                    model=self._model_id, messages=[_message_param(m) for m in messages], seed=seed
                )
            except openai.RateLimitError:
                result = Call(task, Outcome.RATE_LIMITED)
            except openai.APITimeoutError:
                result = Call(task, Outcome.TIMEOUT)
            except openai.InternalServerError:
                result = Call(task, Outcome.SERVER_ERROR)
            except openai.APIError as exc:
                log.warning("unexpected error from the simulator: %s", exc)
                result = Call(task, Outcome.OTHER_ERROR)
            else:
                choice = response.choices[0]
                text = choice.message.content or ""
                usage = response.usage
                result = Call(
                    task,
                    Outcome.OK,
                    choice.finish_reason,
                    parse_answer(text),
                    usage.prompt_tokens if usage else 0,
                    usage.completion_tokens if usage else 0,
                    task is not Task.SPLIT and _reads_as_split_answer(text),
                )
        self.calls.append(result)
        return result

    async def sample(self, messages: Sequence[ChatMessage], number: int, task: Task) -> Call:
        """A usable answer: a faulted or unparseable one is asked again with a fresh seed."""
        result = Call(task, Outcome.OTHER_ERROR)
        for attempt in range(MAX_ATTEMPTS):
            result = await self.call(messages, number + attempt * ATTEMPT_STRIDE, task)
            if result.usable:
                break
        return result

    async def aclose(self) -> None:
        await self._client.close()


@asynccontextmanager
async def serving(model: SimulatedModel, seed: int) -> AsyncIterator[SimClient]:
    """The simulator on a free loopback port, and a client pointed at it."""
    runner = web.AppRunner(create_sim_app(model, seed=seed, hang_s=HANG_S), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = SimClient(f"http://127.0.0.1:{port}/v1", f"sim-{model.universe.name}")
    try:
        yield client
    finally:
        await client.aclose()
        await runner.cleanup()


# -- the experiments ---------------------------------------------------------------------------


def _enumeration(truth: GroundTruth, part: Sequence[str], known: Sequence[str], count: int) -> tuple[ChatMessage, ...]:
    prompt = build_enumeration_prompt(
        TEMPLATES, topic=truth.universe.topic, partition=part, known=known, count=count, known_budget_tokens=NO_BUDGET
    )
    return prompt.messages


def _draw_weights(truth: GroundTruth) -> list[float]:
    """Each item's draw weight times the probability that the model knows it."""
    return [weight * known for weight, known in zip(truth.weights, truth.know_probability, strict=True)]


async def measure_diversity(
    client: SimClient, truth: GroundTruth, params: SimParams, *, trials: int, block: int
) -> dict[str, Any]:
    """1 and 2: ten one-item samples of the whole topic per trial, each with its own seed."""
    messages = _enumeration(truth, (), (), 1)
    answers = await asyncio.gather(*(
        client.sample(messages, block + number, Task.ONE_ITEM) for number in range(trials * SAMPLES_PER_TRIAL)
    ))  # fmt: skip
    identities = [truth.identity(call.entries[0]) if call.usable else None for call in answers]
    distinct = []
    for trial in range(trials):
        chunk = identities[trial * SAMPLES_PER_TRIAL : (trial + 1) * SAMPLES_PER_TRIAL]
        distinct.append(len({identity[0] for identity in chunk if identity}))
    keys = [identity[0] for identity in identities if identity]
    top = {f"item:{truth.main_nfs[index]}" for index in truth.by_popularity[:TOP_ITEMS]}
    draw_weights = _draw_weights(truth)
    implied_top = (1 - params.invented_rate) * sum(draw_weights[i] for i in truth.by_popularity[:TOP_ITEMS]) / sum(draw_weights)
    mean = statistics.fmean(distinct)
    half = 1.96 * statistics.stdev(distinct) / math.sqrt(len(distinct)) if len(distinct) > 1 else 0.0
    return {
        "universe": truth.universe.name,
        "trials": trials,
        "distinct_in_10": {"mean": mean, "ci95": [mean - half, mean + half], "min": min(distinct), "max": max(distinct)},
        "distinct_in_10_implied": expected_distinct(draw_weights, SAMPLES_PER_TRIAL, params.invented_rate),
        "top10_share": rate(sum(1 for key in keys if key in top), len(keys)),
        "top10_share_implied": implied_top,
        "top10_items": [truth.universe.items[i].name for i in truth.by_popularity[:TOP_ITEMS]],
        "most_common_answers": [{"answer": key.split(":", 1)[1], "count": n} for key, n in Counter(keys).most_common(5)],
        "answers_read_inside_a_sentence": rate(sum(1 for identity in identities if identity and identity[1]), len(keys)),
        "samples_unanswered": identities.count(None),
    }


def _latency_summary(latencies: Sequence[float]) -> dict[str, float] | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return {"mean": statistics.fmean(ordered), "p50": ordered[len(ordered) // 2], "p95": ordered[int(len(ordered) * 0.95)]}


def _content_part(universe: Universe) -> tuple[str, ...]:
    """The leaf part with the most items: strays and variants have room to show."""
    counts = Counter(item.path for item in universe.items)
    return max(counts, key=lambda path: (counts[path], path))


async def measure_content(
    client: SimClient, truth: GroundTruth, params: SimParams, *, part: tuple[str, ...], calls: int, block: int
) -> dict[str, Any]:
    """3: what "List 20" answers about one part contain, item by item (single attempts)."""
    messages = _enumeration(truth, part, (), ANSWER_COUNT)
    started = time.perf_counter()
    results = await asyncio.gather(*(client.call(messages, block + n, Task.LIST) for n in range(calls)))
    wall_s = time.perf_counter() - started
    kinds: Counter[Kind] = Counter()
    strays = real = with_alternates = 0
    for call in results:
        for text in call.entries:
            resolution = truth.resolve(text)
            kinds[resolution.kind] += 1
            if resolution.index is not None:
                real += 1
                with_alternates += bool(truth.universe.items[resolution.index].alternate_names)
            # Only exact names decide a stray: a near-miss may be one edit from a name elsewhere.
            if resolution.kind in (Kind.MAIN, Kind.ALTERNATE):
                strays += not truth.in_part(resolution, part)
    items = sum(kinds.values())
    complete = [call for call in results if call.usable and call.finish_reason == "stop"]
    sizes = [len(call.entries) for call in complete]
    formats = Counter(call.parsed.format.value for call in complete if call.parsed is not None)
    ok = [call for call in results if call.outcome is Outcome.OK]
    latencies = [params.first_token_s + call.completion_tokens / params.tokens_per_s for call in ok]
    alternate_share = with_alternates / real if real else 0.0
    return {
        "part": list(part),
        "calls": calls,
        "items": items,
        "alternate_name": rate(kinds[Kind.ALTERNATE], items),
        "alternate_name_implied": params.alternate_name_rate * alternate_share,
        "share_of_items_with_alternate_names": alternate_share,
        "near_miss": rate(kinds[Kind.NEAR_MISS], items),
        "invented": rate(kinds[Kind.INVENTED], items),
        "stray": rate(strays, items),
        "items_per_answer": {"mean": statistics.fmean(sizes), "min": min(sizes), "max": max(sizes)} if sizes else None,
        "formats": {name: count / len(complete) for name, count in formats.most_common()},
        "latency_s": _latency_summary(latencies),
        "prompt_tokens_mean": statistics.fmean(call.prompt_tokens for call in ok) if ok else None,
        "completion_tokens_mean": statistics.fmean(call.completion_tokens for call in ok) if ok else None,
        "wall_requests_per_s": calls / wall_s,
    }


async def measure_obedience(
    client: SimClient, truth: GroundTruth, params: SimParams, *, one_item_calls: int, list_calls: int, block: int
) -> list[dict[str, Any]]:
    """4: the whole topic with the L most popular items as the known list, for growing L.

    One-item answers measure the per-draw rule the formula describes; List 20 answers are
    what a producer sees (an answer never repeats itself, which lowers their repeat share).
    """
    draw_weights = _draw_weights(truth)
    rows = []
    for step, length in enumerate(length for length in KNOWN_LENGTHS if length < len(truth.universe.items) // 2):
        known_indices = truth.by_popularity[:length]
        known_keys = {f"item:{truth.main_nfs[i]}" for i in known_indices}
        messages_one = _enumeration(truth, (), [truth.universe.items[i].name for i in known_indices], 1)
        messages_list = _enumeration(truth, (), [truth.universe.items[i].name for i in known_indices], ANSWER_COUNT)
        base = block + step * 1_000_000
        one_item, listed = await asyncio.gather(
            asyncio.gather(*(client.sample(messages_one, base + n, Task.ONE_ITEM) for n in range(one_item_calls))),
            asyncio.gather(*(client.sample(messages_list, base + 500_000 + n, Task.LIST) for n in range(list_calls))),
        )
        visible_count = min(length, params.context_known_limit)
        visible = sum(draw_weights[i] for i in known_indices[:visible_count])
        hidden = sum(draw_weights[i] for i in known_indices[visible_count:])
        unknown = sum(draw_weights) - visible - hidden
        obey = p_obey(params, length)

        rows.append({
            "known": length,
            "visible": visible_count,
            "p_obey": obey,
            "repeat_share_if_ignored": (visible + hidden) / sum(draw_weights),
            "repeat_share_implied": expected_repeat_share(visible, hidden, unknown, obey, params.invented_rate),
            "repeat_share_one_item": _repeat_share(truth, known_keys, [call.entries[:1] for call in one_item]),
            "repeat_share_list": _repeat_share(truth, known_keys, [call.entries for call in listed]),
            "answered_split": sum(call.answered_split for call in (*one_item, *listed)),
            "prompt_tokens": one_item[0].prompt_tokens if one_item else 0,
        })  # fmt: skip
    return rows


def _repeat_share(truth: GroundTruth, known_keys: set[str], answers: Sequence[Sequence[str]]) -> dict[str, Any]:
    texts = [text for answer in answers for text in answer]
    return rate(sum(1 for text in texts if truth.identity(text)[0] in known_keys), len(texts))


def _reads_as_instruction(name: str) -> bool:
    """A name holding a word of a split instruction (the city of Split)."""
    return any(word in normal_form(name).split() for word in _INSTRUCTION_WORDS)


async def check_instruction_names(client: SimClient, truth: GroundTruth, *, calls: int, block: int) -> dict[str, Any] | None:
    """Does a known entry that happens to be an instruction word make the model switch task?

    The city of Split on the known list of an enumeration prompt: a model should still list
    items. None when the universe holds no such name.
    """
    names = [truth.universe.items[i].name for i in truth.by_popularity if _reads_as_instruction(truth.universe.items[i].name)]
    if not names:
        return None
    messages = _enumeration(truth, (), names[:1], ANSWER_COUNT)
    results = await asyncio.gather(*(client.call(messages, block + n, Task.LIST) for n in range(calls)))
    answered = [call for call in results if call.outcome is Outcome.OK]
    return {"known_entry": names[0], "answered_split": rate(sum(call.answered_split for call in answered), len(answered))}


class _Producer:
    """One part's producer in the recall run: what it generated, shown most-generated first."""

    def __init__(self, part: tuple[str, ...], knowable: frozenset[int]) -> None:
        self.part = part
        self.knowable = knowable  # the part's items the model can produce (ground truth)
        self.counts: Counter[str] = Counter()  # normal form -> times generated
        self.shown: dict[str, str] = {}  # normal form -> text as first generated

    def known_list(self) -> list[str]:
        return [self.shown[nf] for nf, _ in self.counts.most_common()]

    def unseen(self, truth: GroundTruth, context_limit: int) -> int:
        """Items the model could still give that the visible known list does not name."""
        named = {i for nf, _ in self.counts.most_common(context_limit) for i in truth.items_named(nf)}
        return len(self.knowable - named)

    def add(self, text: str) -> None:
        nf = normal_form(text)
        if nf:
            self.shown.setdefault(nf, text)
            self.counts[nf] += 1


class _Room(StrEnum):
    ROOM = "room"  # at least a full answer of unseen items left
    RUNNING_DRY = "running_dry"  # some left, fewer than an answer
    DRY = "dry"  # every item the model knows in the part is on the known list


async def measure_recall(
    client: SimClient, truth: GroundTruth, params: SimParams, *, rounds: int, block: int, knowable: frozenset[int]
) -> dict[str, Any]:
    """5: one producer per leaf part, each call showing what that part produced so far."""
    universe = truth.universe
    producers = [
        _Producer(part, frozenset(i for i in knowable if universe.items[i].path == part))
        for part in universe.groups(universe.levels[-1])
    ]
    produced: set[str] = set()  # main normal forms of the items produced, in any spelling
    invented: Counter[_Room] = Counter()
    items: Counter[_Room] = Counter()
    answered_split = 0
    full_answer = round(ANSWER_COUNT * (1 + params.count_jitter))
    curve = []
    for round_number in range(rounds):
        rooms = []
        for producer in producers:
            unseen = producer.unseen(truth, params.context_known_limit)
            rooms.append(_Room.DRY if unseen == 0 else _Room.ROOM if unseen >= full_answer else _Room.RUNNING_DRY)
        results = await asyncio.gather(*(
            client.sample(_enumeration(truth, producer.part, producer.known_list(), ANSWER_COUNT),
                          block + round_number * 10_000 + p, Task.LIST)
            for p, producer in enumerate(producers)
        ))  # fmt: skip
        for producer, room, call in zip(producers, rooms, results, strict=True):
            answered_split += call.answered_split
            for text in call.entries:
                producer.add(text)
                index = truth.resolve(text).index
                items[room] += 1
                if index is None:
                    invented[room] += 1
                else:
                    produced.add(truth.main_nfs[index])
        curve.append({"calls_per_part": round_number + 1, "share_of_universe": len(produced) / universe.truth_size})
    deciles = []
    for decile in range(9, -1, -1):
        members = [i for i, q in enumerate(truth.quantiles) if min(9, int(q * 10)) == decile]
        deciles.append({
            "popularity_percentiles": f"{decile * 10}–{decile * 10 + 10}",
            "items": len(members),
            "ceiling_formula": statistics.fmean(truth.know_probability[i] for i in members),
            "ceiling_model": sum(1 for i in members if i in knowable) / len(members),
            "produced": sum(1 for i in members if truth.main_nfs[i] in produced) / len(members),
        })  # fmt: skip
    return {
        "parts": len(producers),
        "calls_per_part": rounds,
        "share_of_universe": len(produced) / universe.truth_size,
        "known_share": len(knowable) / len(universe.items),
        "ceiling_implied": statistics.fmean(truth.know_probability),
        "curve": curve,
        "deciles": deciles,
        "invented": {room.value: rate(invented[room], items[room]) for room in _Room},
        # Once dry, every slot not invented outright (or drawn as a stray) invents at the
        # exhausted rate; strays are assumed found, as they are in a country's subregion.
        "invented_dry_implied": params.invented_rate
        + (1 - params.invented_rate - params.stray_rate) * params.invented_rate_exhausted,
        "answered_split": answered_split,
    }


async def measure_split(client: SimClient, truth: GroundTruth, *, calls: int, block: int) -> dict[str, Any]:
    """Split answers: do they parse, and do their labels name the universe's real groups?"""
    messages = build_split_prompt(TEMPLATES, topic=truth.universe.topic, partition=(), max_parts=8)
    results = await asyncio.gather(*(client.sample(messages, block + n, Task.SPLIT) for n in range(calls)))
    groups = {normal_form(item.path[0]) for item in truth.universe.items}
    labels = [label for call in results for label in call.entries]
    return {
        "calls": calls,
        "parsed": rate(sum(call.usable for call in results), calls),
        "labels_per_answer": len(labels) / calls,
        "labels_naming_a_real_group": rate(sum(1 for label in labels if normal_form(label) in groups), len(labels)),
    }


def summarise_faults(calls: Sequence[Call], params: SimParams) -> dict[str, Any]:
    """Fault rates per call over every call of the run, beside their configured rates.

    Garbled = a complete List 20 answer that does not parse: one-item answers are left out,
    because the parser also fails on some of the model's one-sentence answers.
    """
    total = len(calls)
    outcomes = Counter(call.outcome for call in calls)
    ok = [call for call in calls if call.outcome is Outcome.OK]
    truncated = sum(1 for call in ok if call.finish_reason == "length")
    complete_lists = [call for call in ok if call.task is Task.LIST and call.finish_reason != "length"]
    complete_one_item = [call for call in ok if call.task is Task.ONE_ITEM and call.finish_reason != "length"]

    def failed(group: Sequence[Call]) -> int:
        return sum(1 for call in group if call.parsed is not None and call.parsed.failed)

    return {
        "calls": total,
        "rate_limited": {**rate(outcomes[Outcome.RATE_LIMITED], total), "configured": params.rate_limit_rate},
        "server_error": {**rate(outcomes[Outcome.SERVER_ERROR], total), "configured": params.server_error_rate},
        "hang": {**rate(outcomes[Outcome.TIMEOUT], total), "configured": params.hang_rate},
        "truncated": {**rate(truncated, total), "configured": params.truncate_rate},
        "garbled": {**rate(failed(complete_lists), len(complete_lists)), "configured": params.garble_rate},
        "one_item_unparsed": rate(failed(complete_one_item), len(complete_one_item)),
        "other_error": outcomes[Outcome.OTHER_ERROR],
        "parse_success": rate(len(ok) - failed(ok), len(ok)),
    }


# -- running and reporting ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProfileConfig:
    universe: str  # the universe profiled (experiment 1 also runs on the reference universe)
    seed: int  # server seed and knowledge seed; request seeds are fixed per experiment
    scale: float  # multiplies every experiment's number of calls
    out: Path  # the JSON results file
    docs: Path  # the benchmarks page whose section this writes
    write: bool  # False: print only


@dataclass(frozen=True, slots=True)
class _Plan:
    """How many calls each experiment makes (at scale 1, ~7,000 in all)."""

    trials: int  # diversity trials of 10 one-item samples, per universe
    content_calls: int  # List 20 calls of one part, single attempts
    obedience_one_item_calls: int  # per known-list length
    obedience_list_calls: int  # per known-list length
    recall_rounds: int  # calls per leaf part
    split_calls: int
    check_calls: int

    @classmethod
    def scaled(cls, scale: float) -> _Plan:
        def count(base: int, floor: int) -> int:
            return max(floor, round(base * scale))

        return cls(count(150, 5), count(300, 10), count(300, 10), count(40, 3), count(40, 3), count(20, 2), count(20, 2))


async def run_profile(config: ProfileConfig, params: SimParams) -> dict[str, Any]:
    """Every measurement, as one JSON-ready dict."""
    plan = _Plan.scaled(config.scale)
    universe = load_universe(config.universe)
    model = SimulatedModel(universe, params, knowledge_seed=config.seed)
    truth = GroundTruth(universe, params)
    started, cpu_started = time.perf_counter(), time.process_time()
    results: dict[str, Any] = {}
    calls: list[Call] = []
    timings: dict[str, float] = {}

    async def timed(name: str, measurement: Awaitable[Any]) -> None:
        begun = time.perf_counter()
        results[name] = await measurement
        timings[name] = time.perf_counter() - begun

    if config.universe != REFERENCE_UNIVERSE:
        reference = load_universe(REFERENCE_UNIVERSE)
        async with serving(SimulatedModel(reference, params, knowledge_seed=config.seed), config.seed) as client:
            await timed("diversity_reference", measure_diversity(
                client, GroundTruth(reference, params), params, trials=plan.trials, block=0))  # fmt: skip
            calls += client.calls
    async with serving(model, config.seed) as client:
        await timed("diversity", measure_diversity(client, truth, params, trials=plan.trials, block=1 * SEED_BLOCK))
        await timed("content", measure_content(
            client, truth, params, part=_content_part(universe), calls=plan.content_calls, block=2 * SEED_BLOCK))  # fmt: skip
        await timed("obedience", measure_obedience(
            client, truth, params, one_item_calls=plan.obedience_one_item_calls,
            list_calls=plan.obedience_list_calls, block=3 * SEED_BLOCK))  # fmt: skip
        await timed("recall", measure_recall(
            client, truth, params, rounds=plan.recall_rounds, block=4 * SEED_BLOCK, knowable=model.known_items()))  # fmt: skip
        await timed("split", measure_split(client, truth, calls=plan.split_calls, block=5 * SEED_BLOCK))
        await timed("instruction_names", check_instruction_names(
            client, truth, calls=plan.check_calls, block=6 * SEED_BLOCK))  # fmt: skip
        calls += client.calls
    wall_s = time.perf_counter() - started
    results["faults"] = summarise_faults(calls, params)
    results["run"] = {
        "universe": config.universe,
        "reference_universe": REFERENCE_UNIVERSE,
        "server_seed": config.seed,
        "knowledge_seed": config.seed,
        "request_seeds": f"experiment k uses k*{SEED_BLOCK:,} + request number, +{ATTEMPT_STRIDE:,} per re-ask",
        "scale": config.scale,
        "calls": len(calls),
        "wall_s": wall_s,
        "cpu_s": time.process_time() - cpu_started,  # below wall_s: waits (hangs) or other load
        "wall_requests_per_s": len(calls) / wall_s,
        "wall_s_per_experiment": timings,
        "concurrency": CONCURRENCY,
        "client_timeout_s": CLIENT_TIMEOUT_S,
        "server_hang_s": HANG_S,
        "model": repr(model),
    }
    results["params"] = params.describe()
    return results


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _rate_cell(measured: dict[str, Any], digits: int = 1) -> str:
    low, high = measured["ci95"]
    return f"{_pct(measured['rate'], digits)} [{_pct(low, digits)}–{_pct(high, digits)}] (n={measured['of']})"


Row = tuple[str, str, str, str]


def summary_rows(results: dict[str, Any]) -> list[Row]:
    """(measure, configured → implied, measured, published): the profile's main table."""
    params = results["params"]
    rows: list[Row] = []

    def add(measure: str, configured: str, measured: str, published: str = "—") -> None:
        rows.append((measure, configured, measured, published))

    alpha = (
        f"α={params['popularity_alpha']:g}"
        if params.get("popularity_alpha") is not None
        else f"α solved for {params['target_distinct_in_10']:g} distinct in 10"
    )
    for key in ("diversity_reference", "diversity"):
        if key in results:
            d = results[key]
            low, high = d["distinct_in_10"]["ci95"]
            add(f"distinct answers in 10 one-item samples ({d['universe']})",
                f"{alpha} → {d['distinct_in_10_implied']:.2f}",
                f"{d['distinct_in_10']['mean']:.2f} [{low:.2f}–{high:.2f}] ({d['trials']} trials)", NOVELTYBENCH)  # fmt: skip
    d = results["diversity"]
    add(f"one-item answers that are a top-{TOP_ITEMS} item ({d['universe']})",
        f"{alpha} → {_pct(d['top10_share_implied'])}", _rate_cell(d["top10_share"]), VERBALIZED_SAMPLING)  # fmt: skip

    c = results["content"]
    part = " > ".join(c["part"])
    with_alternates = _pct(c["share_of_items_with_alternate_names"], 0)
    add(f"alternate names (List {ANSWER_COUNT} of {part})",
        f"{params['alternate_name_rate']:g} × {with_alternates} of items have one → {_pct(c['alternate_name_implied'], 2)}",
        _rate_cell(c["alternate_name"], 2))  # fmt: skip
    add("near-misses: a typo or an abbreviated Saint (case and accent variants share the normal form)",
        f"surface_variant_rate {params['surface_variant_rate']:g}, the identity-changing part of it",
        _rate_cell(c["near_miss"], 2))  # fmt: skip
    add("invented names (some splices land one edit from a real name: counted as near-misses)",
        f"{params['invented_rate']:g}", _rate_cell(c["invented"], 2))  # fmt: skip
    add(f"strays (exact names found only outside {part})", f"{params['stray_rate']:g}", _rate_cell(c["stray"], 2))
    if c["items_per_answer"]:
        size, jitter = c["items_per_answer"], params["count_jitter"]
        add(f"items per answer (asked {ANSWER_COUNT})", f"{ANSWER_COUNT} × U({1 - jitter:g}, {1 + jitter:g})",
            f"mean {size['mean']:.1f}, {size['min']}–{size['max']}")  # fmt: skip
    weights = params["format_weights"]
    add("answer formats (complete List 20 answers, as the parser classed them)",
        f"json {weights[0] + weights[1]:.2f}, list {weights[2] + weights[3]:.2f}, prose {weights[4]:.2f}",
        ", ".join(f"{name} {share:.2f}" for name, share in c["formats"].items()))  # fmt: skip

    f = results["faults"]
    for key, label in (
        ("rate_limited", "429 rate limited, per call"),
        ("server_error", "500 server error, per call"),
        ("hang", f"hang (client timeout {CLIENT_TIMEOUT_S:g} s), per call"),
        ("truncated", 'truncated (finish_reason "length"), per call'),
        ("garbled", "garbled: complete List 20 answers that do not parse"),
    ):
        add(label, f"{f[key]['configured']:g}", _rate_cell(f[key], 2))
    add("answers that parse (all 200 answers)", "—", _rate_cell(f["parse_success"], 2))
    add("complete one-item answers that do not parse", "—", _rate_cell(f["one_item_unparsed"], 2))
    add("one-item answers the parser keeps as a sentence ('One more is China')", "—",
        _rate_cell(d["answers_read_inside_a_sentence"], 2))  # fmt: skip
    if c["latency_s"]:
        lat = c["latency_s"]
        tokens = f"{c['prompt_tokens_mean']:.0f} prompt + {c['completion_tokens_mean']:.0f} completion tokens"
        add(f"latency of a List {ANSWER_COUNT} call (the model's figure at time_scale 1)",
            f"{params['first_token_s']:g} s + tokens / {params['tokens_per_s']:g} tok/s",
            f"mean {lat['mean']:.2f} s, p50 {lat['p50']:.2f}, p95 {lat['p95']:.2f}; {tokens}")  # fmt: skip

    r = results["recall"]
    add(f"universe ever produced ({r['parts']} parts × {r['calls_per_part']} calls, growing known list)",
        f"ceiling: the model knows {_pct(r['known_share'])} (formula {_pct(r['ceiling_implied'])})",
        _pct(r["share_of_universe"]), LONG_TAIL)  # fmt: skip
    base, exhausted = params["invented_rate"], params["invented_rate_exhausted"]
    add("invented names in the recall run: calls with room / running dry / on a dry part",
        f"{base:g} / — / {base:g} + {exhausted:g} of the other slots → {_pct(r['invented_dry_implied'])}",
        " / ".join(_rate_cell(r["invented"][room.value]) for room in _Room))  # fmt: skip
    split = results["split"]
    add("split answers: parsed / labels naming a real group", "—",
        f"{_rate_cell(split['parsed'])} / {_rate_cell(split['labels_naming_a_real_group'])}; "
        f"{split['labels_per_answer']:.1f} labels per answer")  # fmt: skip
    check = results.get("instruction_names")
    if check:
        add(f"enumeration prompt with {check['known_entry']!r} on its known list answered as a split",
            "never (not a parameter)", _rate_cell(check["answered_split"]))  # fmt: skip
    if r["answered_split"]:
        add("recall-run answers that were sub-categories instead of items", "—", str(r["answered_split"]))
    run = results["run"]
    add("wall request rate (in-process server + openai client, one process)", "—",
        f"{run['wall_requests_per_s']:.0f} req/s over the run ({run['cpu_s']:.0f} s CPU in "
        f"{run['wall_s']:.0f} s); {c['wall_requests_per_s']:.0f} req/s List {ANSWER_COUNT} "
        f"at concurrency {run['concurrency']}")  # fmt: skip
    return rows


OBEDIENCE_HEADER = ("known L", "visible", "p_obey", "repeats if ignored", "implied per draw",
                    "measured, List 1", "measured, List 20", "prompt tokens")  # fmt: skip
DECILE_HEADER = ("popularity percentile", "items", "ceiling (formula)", "ceiling (model knows)", "produced")


def obedience_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (str(row["known"]), str(row["visible"]), f"{row['p_obey']:.3f}", _pct(row["repeat_share_if_ignored"]),
         _pct(row["repeat_share_implied"]), _rate_cell(row["repeat_share_one_item"]),
         _rate_cell(row["repeat_share_list"]), str(row["prompt_tokens"]))
        for row in results["obedience"]
    ]  # fmt: skip


def decile_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    return [(row["popularity_percentiles"], str(row["items"]), _pct(row["ceiling_formula"]),
             _pct(row["ceiling_model"]), _pct(row["produced"])) for row in results["recall"]["deciles"]]  # fmt: skip


def _curve_text(results: dict[str, Any]) -> str:
    curve = results["recall"]["curve"]
    picks = sorted({max(0, round(len(curve) * share) - 1) for share in (0.125, 0.25, 0.5, 1.0)})
    return ", ".join(f"{curve[i]['calls_per_part']} calls → {_pct(curve[i]['share_of_universe'])}" for i in picks)


def _rich_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *, lines: bool = False) -> Table:
    table = Table(title=title, show_lines=lines)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def print_report(results: dict[str, Any], params: SimParams, console: Console) -> None:
    run = results["run"]
    console.print(_rich_table(f"Simulated LLM profile — {run['universe']}, measured over HTTP",
                              ("measure", "configured → implied", "measured [95% CI]", "published"),
                              summary_rows(results), lines=True))  # fmt: skip
    console.print(_rich_table("Obedience: answer items already on the known list (whole topic)",
                              OBEDIENCE_HEADER, obedience_rows(results)))  # fmt: skip
    console.print(_rich_table("Long-tail recall: share of each popularity decile ever produced",
                              DECILE_HEADER, decile_rows(results)))  # fmt: skip
    console.print(f"coverage: {_curve_text(results)}")
    console.print(params_table(params, "SimParams (realistic, faults on; time_scale 0 for this run)"))
    console.print(f"seeds: server {run['server_seed']}, knowledge {run['knowledge_seed']}; {run['request_seeds']}. "
                  f"{run['calls']} calls in {run['wall_s']:.1f} s. {run['model']}")  # fmt: skip


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(row) for row in rows)])


def render_markdown(results: dict[str, Any], machine: dict[str, Any], command: str) -> str:
    run = results["run"]
    params = ", ".join(f"`{name}`={value}" for name, value in results["params"].items())
    return "\n\n".join([
        (f"`{command}` — the simulated LLM ({run['universe']}) as a black box over HTTP through the "
         "`openai` client, with the real prompts and parser. *Implied* values are exact expectations "
         "under the documented parameters; rates carry 95% Wilson intervals."),
        _markdown_table(("measure", "configured → implied", "measured [95% CI]", "published"), summary_rows(results)),
        "**Obedience** — whole topic, the L most popular items as the known list:",
        _markdown_table(OBEDIENCE_HEADER, obedience_rows(results)),
        (f"**Long-tail recall** — one producer per leaf part ({results['recall']['parts']} parts), growing "
         f"known list; coverage: {_curve_text(results)}."),
        _markdown_table(DECILE_HEADER, decile_rows(results)),
        f"Parameters: {params}.",
        (f"Seeds: server {run['server_seed']}, knowledge {run['knowledge_seed']}; {run['request_seeds']}. "
         f"{run['calls']} calls in {run['wall_s']:.1f} s. {machine_summary(machine)}"),
    ])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile the simulated LLM over HTTP (see the module docstring).")
    parser.add_argument("--universe", default="european-cities", choices=available_universes(), help="universe profiled")
    parser.add_argument("--seed", type=int, default=0, help="server and knowledge seed")
    parser.add_argument("--calls", type=float, default=1.0, help="scale of every experiment's number of calls")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--docs", type=Path, default=DOCS_PATH, help="benchmarks page whose section is written")
    parser.add_argument("--no-write", action="store_true", help="print only; write neither the JSON nor the docs")
    args = parser.parse_args(argv)
    if args.calls <= 0:
        parser.error("--calls must be > 0")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = ProfileConfig(universe=args.universe, seed=args.seed, scale=args.calls, out=args.out,
                           docs=args.docs, write=not args.no_write)  # fmt: skip
    params = SimParams().replace(time_scale=0.0)  # the realistic model, answering at once
    results = asyncio.run(run_profile(config, params))
    print_report(results, params, Console())
    if config.write:
        machine = machine_info()
        command = f"scripts/bench/sim_llm_profile.py --universe {config.universe} --seed {config.seed} --calls {config.scale:g}"
        write_results(SECTION, results, render_markdown(results, machine, command), config.out,
                      docs_path=config.docs, machine=machine)  # fmt: skip
        print(f"wrote {config.out} and the {SECTION!r} section of {config.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
