"""On-demand fuzz run of a real node's gossip endpoint (issue #14): ≥ 10,000 hostile inputs.

    .venv/bin/python scripts/fuzz/gossip.py [--examples 10000] [--seed S] [--no-write]

One ``gossip-node`` process — a cluster key, the production timeouts and bounds — spends three
instant LLM calls of the simulated model and then idles, so from then on only gossip can
change its record set. Against it, in this order:

1. **inputs**: ``--examples`` inputs drawn by hypothesis from every kind in
   ``tests/node/gossip_inputs.py`` (valid, mutated and truncated envelopes, a valid MAC over
   garbage, wrong types, huge msgpack counts, deep nesting, the wrong key, no MAC, stale and
   replayed stamps, another cluster or version, the wrong path, oversized bodies, hostile but
   well-formed records), sent one at a time. Each is judged: crashed (5xx, no answer, the
   process gone, an ERROR line), answered, rejected (4xx), unexpected (a status the input does
   not allow), state changed (the committed record set differs from the oracle's: unchanged
   for every refusal, plus exactly the valid records of answered authenticated messages).
   Meanwhile 20 clients trickle request heads and 20 trickle bodies at it, a byte every
   0.2 s: they must all be cut off (heads closed at the idle timeout, bodies refused 408 at
   the body timeout) while the inputs keep being answered.
2. **flood**: 2,000 concurrent POSTs of 256 KiB, then of 1 MiB, from one address
   (127.0.0.2), with the node's resident memory and /healthz (from 127.0.0.1, over a kept and
   a fresh connection) sampled throughout.
3. **after**: the process is up, every page answers 200, no ERROR line was logged, and the
   record set equals the oracle's.

Prints the table and writes ``docs/reliability/gossip_fuzz.json`` for docs/reliability.md.
Exits 1 if anything crashed, changed state, or answered what it should have refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gossip.http_transport import DEFAULT_BODY_TIMEOUT_S
from node.server import IDLE_TIMEOUT_S
from node.sim_report import set_digest
from scripts.bench.report import machine_info
from tests.node.fuzz_target import ProcessNode
from tests.node.gossip_fuzz import Fuzzer, assert_clean, own_records, run_many
from tests.node.gossip_inputs import KINDS
from tests.node.hostile_clients import Sampler, flood, slow_loris

JSON_PATH = ROOT / "docs" / "reliability" / "gossip_fuzz.json"
PAGES = ("/healthz", "/api/entries?limit=1000", "/api/members", "/api/metrics", "/api/partitions",
         "/api/convergence", "/api/export?format=jsonl", "/metrics")  # fmt: skip
FLOOD_REQUESTS = 2000
FLOOD_BODIES = (256 * 1024, 1024 * 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="hypothesis-drawn inputs to send")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {JSON_PATH.relative_to(ROOT)}")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"seed {seed}; {args.examples} inputs of {len(KINDS)} kinds; starting a gossip-node …", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gossip-fuzz-") as workdir:
        node = ProcessNode(Path(workdir))
        try:
            results = _run(node, examples=args.examples, seed=seed)
        finally:
            exit_code = node.stop()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["node_exit_code"] = exit_code
    _print(results)
    if not args.no_write:
        JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
        document = {"section": "Gossip endpoint fuzz", "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": machine_info(), "results": results}  # fmt: skip
        JSON_PATH.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {JSON_PATH.relative_to(ROOT)}")
    return 0 if results["clean"] else 1


def _run(node: ProcessNode, *, examples: int, seed: int) -> dict[str, Any]:
    node.wait_idle()
    keys_before = node.record_keys()
    digest_before = set_digest(sorted(keys_before))
    fuzzer = Fuzzer(node)
    host, port = node.url.removeprefix("http://").rsplit(":", 1)

    # 1. inputs, with slow-loris clients trickling at the node the whole time they last
    loris: dict[str, Any] = {}
    trickler = threading.Thread(target=lambda: loris.update(_slow_loris(host, int(port))), daemon=True)
    trickler.start()
    progress = Counter[str]()

    def report(attempt: object) -> None:
        progress["sent"] += 1
        if progress["sent"] % 1000 == 0:
            print(f"  {progress['sent']} inputs sent ({fuzzer.tally.total('crashed')} crashed, "
                  f"{fuzzer.tally.total('state_changed')} state changed)", flush=True)  # fmt: skip

    inputs_started = time.monotonic()
    tally = run_many(fuzzer, examples, own_records(node.data_dir), seed=seed, on_attempt=report)
    inputs_s = time.monotonic() - inputs_started
    trickler.join()
    fuzzer.close()

    # 2. floods from one peer address
    keys_before_flood = node.record_keys()
    floods = []
    for body_bytes in FLOOD_BODIES:
        with Sampler(node.url, node.pid) as sampler:
            time.sleep(0.3)
            flood_started = time.monotonic()
            statuses = asyncio.run(flood(node.url, requests=FLOOD_REQUESTS, body=b"\x00" * body_bytes))
            flood_s = time.monotonic() - flood_started
            time.sleep(0.3)
        floods.append({"requests": FLOOD_REQUESTS, "body_bytes": body_bytes, "seconds": round(flood_s, 2),
                       "statuses": dict(sorted(statuses.items())), **sampler.summary(),
                       "rss_after_mib": round(node.rss_bytes() / 2**20, 1)})  # fmt: skip
    flood_changed = node.record_keys() != keys_before_flood

    # 3. after
    keys_after = node.record_keys()
    pages = {path: _status(node.url + path) for path in PAGES}
    errors = [f"{line.logger}: {line.text}" for line in node.log_lines() if line.level in ("ERROR", "CRITICAL")]
    loris_ok = loris.get("ends") == {"closed": 20, "HTTP/1.1 408": 20}
    try:
        assert_clean(tally)
        inputs_clean = True
    except AssertionError:
        inputs_clean = False
    clean = (inputs_clean and loris_ok and not flood_changed and not errors and node.alive()
             and set_digest(sorted(keys_after - (fuzzer.expected - keys_before))) == digest_before
             and all(status == 200 for status in pages.values()) and keys_after == fuzzer.expected
             and all(set(f["healthz_statuses"]) == {"200"} for f in floods))  # fmt: skip
    return {
        "seed": seed,
        "inputs": {**tally.summary(), "seconds": round(inputs_s, 1), "per_second": round(tally.total("tried") / inputs_s)},
        "slow_loris": {**loris, "idle_timeout_s": IDLE_TIMEOUT_S, "body_timeout_s": DEFAULT_BODY_TIMEOUT_S},
        "flood": floods,
        "flood_changed_state": flood_changed,
        "digest_before": digest_before,
        "digest_after": set_digest(sorted(keys_after)),
        "digest_expected": set_digest(sorted(fuzzer.expected)),
        # What every refused input must leave alone: the set, less what valid records added.
        "digest_after_without_valid_records": set_digest(sorted(keys_after - (fuzzer.expected - keys_before))),
        "records_added_by_valid_messages": len(keys_after) - int(digest_before.split(":")[0]),
        "pages_after": pages,
        "error_lines": errors[:20],
        "alive_after": node.alive(),
        "clean": clean,
    }


def _slow_loris(host: str, port: int) -> dict[str, Any]:
    ends, longest_s = asyncio.run(slow_loris(host, port, heads=20, bodies=20, byte_every_s=0.2,
                                             give_up_s=max(IDLE_TIMEOUT_S, DEFAULT_BODY_TIMEOUT_S) + 15))  # fmt: skip
    return {"heads": 20, "bodies": 20, "byte_every_s": 0.2, "ends": dict(ends), "longest_s": round(longest_s, 1)}


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
        return int(response.status)


def _print(results: dict[str, Any]) -> None:
    inputs = results["inputs"]
    columns = ("tried", "answered", "rejected", "crashed", "unexpected", "state_changed", "log_lines")
    width = max(len(kind) for kind in inputs["kinds"])
    print(f"\n{'input':<{width}}  " + "  ".join(f"{name:>13}" for name in columns))
    for kind, counts in inputs["kinds"].items():
        print(f"{kind:<{width}}  " + "  ".join(f"{counts[name]:>13}" for name in columns))
    print(f"{'total':<{width}}  " + "  ".join(f"{inputs['total'][name]:>13}" for name in columns))
    print(f"\n{inputs['total']['tried']} inputs in {inputs['seconds']} s ({inputs['per_second']}/s); seed {results['seed']}")
    loris = results["slow_loris"]
    print(f"slow loris: {loris['heads']} heads + {loris['bodies']} bodies → {loris['ends']}, longest {loris['longest_s']} s "
          f"(idle timeout {loris['idle_timeout_s']:g} s, body timeout {loris['body_timeout_s']:g} s)")
    for run in results["flood"]:
        print(f"flood: {run['requests']} × {run['body_bytes'] // 1024} KiB in {run['seconds']} s → {run['statuses']}; "
              f"RSS {run['rss_before_mib']} MiB, peak +{run['rss_peak_growth_mib']} MiB, after {run['rss_after_mib']} MiB; "
              f"/healthz max {run['healthz_kept_connection_max_s']} s (kept connection), "
              f"{run['healthz_new_connection_max_s']} s (new ones) over {run['healthz_probes']} probes "
              f"{run['healthz_statuses']}")
    print(f"record set: before {results['digest_before']}, after {results['digest_after']}, "
          f"oracle {results['digest_expected']} ({results['records_added_by_valid_messages']} added by valid "
          f"authenticated records); after less those: {results['digest_after_without_valid_records']}; "
          f"flood changed state: {results['flood_changed_state']}")
    print(f"after: alive {results['alive_after']}, pages {set(results['pages_after'].values())}, "
          f"{len(results['error_lines'])} ERROR lines; clean: {results['clean']}")
    for problem in inputs["problems"][:10]:
        print("  problem:", problem)


if __name__ == "__main__":
    sys.exit(main())
