"""Fuzz what an LLM endpoint can send a node, at length (issue #14, part 3): the on-demand run
behind tests/node/llm/test_hostile_llm.py.

    .venv/bin/python scripts/fuzz/llm.py [--examples 2000] [--answers 500] [--seed 14] [--no-write]

Everything goes through the real ``OpenAIBackend`` (the ``openai`` client on a loopback socket)
against ``tests/node/llm/openai_test_server.py``, with the bounds of
``tests/node/llm/hostile_llm.HOSTILE_CONFIG`` (stream idle 0.3 s, total 0.6 s, the default
16 MiB per response):

1. **corpus**: every named hostile answer of ``hostile_llm.CORPUS`` — 10 MB answers (in 64 KB
   deltas, in one event, one endless line), a 20 MB error body, endless streams, controls and
   NULs, bidi/zero-width/tag characters, HTML/JS, prompt injection, wrong-shape JSON in the
   text and on the wire, invalid UTF-8, SSE framing garbage — each as one call of a producer on
   a fresh store, allocations traced;
2. **generated whole bodies** and **generated event streams**: ``--examples`` each, drawn by
   hypothesis (mutated completions and chunks, arbitrary JSON, bytes, cut JSON, odd framing),
   straight through the backend: an answer or an ``LLMError``, nothing else, within 3 s;
3. **generated answer texts**: ``--answers`` hostile texts (markup, injection, controls, JSON
   fragments, noise) in random deltas through the producer into fresh stores.

Counted per kind: tried, answered, rejected (a failed call, recorded with a backoff), crashed
(anything else escaped, or a bound was overrun), state changed (a committed record a peer would
refuse — not plain bounded text, or not surviving the gossip codec — or a failed call that
produced nothing yet committed something). Prints the table, writes
``docs/reliability/llm_fuzz.json`` unless ``--no-write``, exits 1 on any crash or state change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from scripts.bench.report import machine_info  # noqa: E402
from tests.node.llm.hostile_llm import (  # noqa: E402
    CORPUS,
    HOSTILE_CONFIG,
    CaseResult,
    Tally,
    fuzz_answer_texts,
    fuzz_backend,
    run_case,
)

JSON_PATH = ROOT / "docs" / "reliability" / "llm_fuzz.json"
COLUMNS = ("tried", "answered", "rejected", "crashed", "state_changed")


async def run_corpus(root: Path) -> list[CaseResult]:
    results = []
    for number, case in enumerate(CORPUS):
        results.append(await run_case(case, data_dir=root / f"case{number}", measure_memory=True))
    return results


def corpus_findings(results: list[CaseResult]) -> list[str]:
    findings = []
    for case, result in zip(CORPUS, results, strict=True):
        findings += [f"{case.name}: {problem}" for problem in result.problems]
        if result.outcome != case.expect or (case.error is not None and result.error != case.error):
            findings.append(f"{case.name}: {result.outcome} ({result.error}), expected {case.expect} ({case.error})")
    return findings


def table(rows: dict[str, dict[str, Any]]) -> Table:
    out = Table(title="LLM output fuzz: the real OpenAI backend and producer against a hostile local server")
    for column in ("kind", *COLUMNS, "slowest s", "peak MiB"):
        out.add_column(column, justify="left" if column == "kind" else "right")
    for kind, row in rows.items():
        peak = row.get("peak_bytes")
        out.add_row(kind, *(f"{row[column]:,}" for column in COLUMNS), f"{row['slowest_s']:.2f}",
                    "—" if peak is None else f"{peak / 2**20:.1f}")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000, help="generated bodies per kind (whole, stream)")
    parser.add_argument("--answers", type=int, default=500, help="generated answer texts through the producer")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {JSON_PATH.relative_to(ROOT)}")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    logging.basicConfig(level=logging.ERROR)  # the expected refusals log warnings; errors would be findings
    console = Console() if sys.stdout.isatty() else Console(width=150)  # a pipe: do not squeeze the table
    started = time.monotonic()
    rows: dict[str, dict[str, Any]] = {}
    findings: list[str] = []

    with tempfile.TemporaryDirectory(prefix="llm-fuzz-") as scratch:
        root = Path(scratch)
        console.print(f"corpus: {len(CORPUS)} named hostile answers through the producer (seed {seed})")
        results = asyncio.run(run_corpus(root / "corpus"))
        findings += corpus_findings(results)
        corpus_tally = Tally()
        for result in results:
            corpus_tally.add(result.kind, result.outcome, state_changed=result.state_changed)
        for kind, row in corpus_tally.rows.items():
            of_kind = [result for result in results if result.kind == kind]
            rows[f"corpus: {kind}"] = {
                **row,
                "slowest_s": max(result.seconds for result in of_kind),
                "peak_bytes": max(result.peak_bytes or 0 for result in of_kind),
            }

        for streaming, label in ((False, "whole bodies"), (True, "event streams")):
            console.print(f"generated {label}: {args.examples:,} through the backend")
            tally, found, slowest = fuzz_backend(streaming=streaming, examples=args.examples, seed=seed)
            findings += found
            for kind, row in tally.rows.items():
                rows[kind] = {**row, "slowest_s": slowest, "peak_bytes": None}

        console.print(f"generated answer texts: {args.answers:,} through the producer")
        tally, found, slowest = fuzz_answer_texts(root / "answers", examples=args.answers, seed=seed)
        findings += found
        for kind, row in tally.rows.items():
            rows[kind] = {**row, "slowest_s": slowest, "peak_bytes": None}

    total = {column: sum(row[column] for row in rows.values()) for column in COLUMNS}
    console.print(table(rows))
    console.print(f"total: {total}; {time.monotonic() - started:.0f} s")
    for finding in findings[:20]:
        console.print(f"[red]finding:[/red] {finding}", soft_wrap=True)

    results_json = {
        "seed": seed,
        "command": f"scripts/fuzz/llm.py --examples {args.examples} --answers {args.answers} --seed {seed}",
        "bounds": {
            "stream_idle_timeout_s": HOSTILE_CONFIG.stream_idle_timeout_s,
            "stream_total_timeout_s": HOSTILE_CONFIG.stream_total_timeout_s,
            "max_response_bytes": HOSTILE_CONFIG.max_response_bytes,
            "request_timeout_s": HOSTILE_CONFIG.request_timeout_s,
        },
        "total": total,
        "kinds": rows,
        "corpus": [
            {"name": result.name, "kind": result.kind, "outcome": result.outcome, "error": result.error,
             "entries": result.entries, "records": result.records, "seconds": round(result.seconds, 3),
             "peak_bytes": result.peak_bytes, "problems": list(result.problems)}
            for result in results
        ],  # fmt: skip
        "findings": findings,
        "seconds": round(time.monotonic() - started, 1),
    }
    if not args.no_write:
        document = {"section": "LLM output fuzz", "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": machine_info(), "results": results_json}  # fmt: skip
        JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
        JSON_PATH.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"wrote {JSON_PATH.relative_to(ROOT)}")
    sys.exit(1 if findings or total["crashed"] or total["state_changed"] else 0)


if __name__ == "__main__":
    main()
