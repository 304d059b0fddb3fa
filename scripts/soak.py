"""On-demand soak (issue #13): real ``gossip-node`` processes for minutes under message loss and churn, nothing lost.

    scripts/soak.sh [--minutes 10] [--nodes 5] [--loss 0.05] [--churn-every-s 45] [--seed S] [--no-write]

N nodes on loopback (a cluster key, the ``local`` gossip profile, the simulated LLM on the
7,782 European cities, paced so the cluster keeps producing for the whole soak) run with
``SWARMLIST_FAULTS``: every gossip request may be lost (``--loss``), delayed, duplicated or
reordered. Every ``--churn-every-s`` a random node (seeded) is killed, alternately with
SIGKILL and SIGTERM, and restarted on its data dir after ``--restart-after-s`` (the next kill
waits until it is back: one node is away at a time); just before
each kill, what every node lists (its API) and what the victim committed (its SQLite file,
read-only) are recorded, and again what the victim holds once dead.

Every ``--sample-every-s`` each node is sampled: RSS from ``/proc/PID/status``, records,
entries, its membership view (a live node another sees "dead", when it had not just
restarted, is a false death). At the end: production is stopped cluster-wide (one node is
restarted with ``--budget-calls 1``, a cluster setting the others adopt through gossip), the
faults are switched off (``faults.json`` = ``{}`` in every data dir), the cluster must converge
(every node's anti-entropy finds every peer's digest equal to its own) within
``--converge-timeout-s``, and all nodes stop with SIGTERM. Then, from the data dirs: every record
any node acknowledged at any time must be on every node, the digests and ``list.jsonl`` files
identical. Prints a table, writes ``docs/reliability/soak.json`` (machine, seeds, parameters,
figures) and exits 1 if a record was lost, the cluster did not converge, or a node died
unbidden. Every node process is killed on any exit (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench.report import machine_info  # noqa: E402
from scripts.soak_nodes import SoakNode, free_ports  # noqa: E402
from scripts.soak_report import Kill, LiveTable, summarize, print_summary, verify_stores  # noqa: E402

DEFAULT_OUT = ROOT / "docs" / "reliability" / "soak.json"
MAX_MINUTES = 15.0
MAX_LOSS = 0.3
READY_TIMEOUT_S = 90.0  # a node imports numpy and scipy on start: seconds on a loaded machine
QUIESCE_TIMEOUT_S = 90.0  # for the budget to reach every node and its calls in flight to end
SOURCE_PACKAGES = ("gossip", "node", "partitioning", "webui")
RESTARTED_GRACE_S = 15.0  # peers may still hold a restarted node's old "dead" for a few probe rounds


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """What one soak runs."""

    minutes: float
    nodes: int
    loss: float  # probability each gossip request (and, separately, its reply) is dropped
    churn_every_s: float  # 0: no churn
    restart_after_s: float  # a victim stays down this long
    sample_every_s: float
    warm_up_s: float  # a process's RSS growth is measured from its first sample after this
    seed: int
    sim_time_scale: float  # the simulated LLM's latency multiplier
    calls_per_minute: float  # each node's LLM start rate: keeps production going for the whole soak
    converge_timeout_s: float

    def faults(self, index: int) -> dict[str, float | int]:
        """The ``SWARMLIST_FAULTS`` of node ``index``: the loss, plus a little delay, duplication and reordering."""
        return {"drop": self.loss, "delay_s": 0.002, "jitter_s": 0.01, "duplicate": 0.02, "reorder": 0.02,
                "reorder_delay_s": 0.02, "seed": self.seed * 100 + index}  # fmt: skip


class Soak:
    """The run: the nodes, the churn, the samples, and what was acknowledged along the way."""

    def __init__(self, config: SoakConfig, root: Path, live: LiveTable) -> None:
        self.config = config
        self.began = time.monotonic()
        self.rng = random.Random(config.seed)
        self.live = live
        key_file = root / "cluster.key"
        key_file.write_text(secrets.token_urlsafe(32) + "\n", encoding="ascii")
        key_file.chmod(0o600)
        ports = free_ports(config.nodes)
        self.nodes = [SoakNode(index, root=root, port=ports[index], key_file=key_file, faults=config.faults(index),
                               sim_time_scale=config.sim_time_scale, calls_per_minute=config.calls_per_minute,
                               began=self.began) for index in range(config.nodes)]  # fmt: skip
        self.kills: list[Kill] = []
        self.acknowledged: set[str] = set()  # every record key a node had committed when it was killed
        self.listed: set[str] = set()  # every entry any node listed just before a kill
        self.vanished: set[str] = set()  # committed before a kill, gone from the victim's store after it
        self.false_deaths: dict[tuple[str, str, int], float] = {}  # (observer, member, member's run) -> first seen
        self.unbidden_exits: list[str] = []
        self.isolated: dict[tuple[str, int], float] = {}  # (node, run) -> when it was seen alone, long after starting
        self.soak_end_s = 0.0
        self.timeline: dict[str, float | None] = {}

    def now(self) -> float:
        return time.monotonic() - self.began

    def run(self) -> None:
        first = self.nodes[0]
        first.start([])
        self._wait_ready([first])
        for node in self.nodes[1:]:
            node.start([first.address])
        self._wait_ready(self.nodes)
        self.timeline["cluster_up_s"] = round(self.now(), 1)
        self.soak_end_s = self.now() + self.config.minutes * 60
        next_churn = self.now() + (self.config.churn_every_s or float("inf"))
        next_sample = self.now()
        restarts: dict[str, float] = {}  # node name -> when to restart it
        kill_signals = (signal.SIGKILL, signal.SIGTERM)
        while self.now() < self.soak_end_s:
            if self.now() >= next_churn:
                victim = self._pick_victim(restarts)
                if victim is not None:
                    next_churn = self.now() + self.config.churn_every_s  # from the kill, not from its end
                    self._kill(victim, kill_signals[len(self.kills) % 2], "churn")
                    restarts[victim.name] = self.now() + self.config.restart_after_s
                else:  # the last victim is not back yet: one node away at a time
                    next_churn = self.now() + 0.5
            for node in self.nodes:
                if node.name in restarts and self.now() >= restarts[node.name]:
                    del restarts[node.name]
                    node.start(self._seeds_for(node))
                elif node.name not in restarts and not node.running and node.run is not None:
                    self._unbidden(node, restarts)
            if self.now() >= next_sample:
                self._sample()
                next_sample += self.config.sample_every_s
            time.sleep(0.2)
        self._finish(restarts)

    def _finish(self, restarts: dict[str, float]) -> None:
        """Everyone back up; production stopped; faults off; converge; stop all with SIGTERM."""
        for node in self.nodes:
            if not node.running:
                restarts.pop(node.name, None)
                node.start(self._seeds_for(node))
        self._wait_ready(self.nodes)
        self._sample()
        if any(run.samples and run.samples[-1].producing for run in (n.run for n in self.nodes) if run):
            quiescer = self.rng.choice(self.nodes)
            self._kill(quiescer, signal.SIGTERM, "quiesce")
            quiescer.start(self._seeds_for(quiescer), "--budget-calls", "1")
            self._wait_ready([quiescer])
        quiesced = self._poll_until(QUIESCE_TIMEOUT_S, lambda: all(not _producing(node) for node in self.nodes))
        self.timeline["production_stopped_s"] = round(self.now(), 1) if quiesced else None
        for node in self.nodes:
            node.set_faults({})
        faults_off_at = self.now()
        self.timeline["faults_off_s"] = round(faults_off_at, 1)
        # Production still running (the budget did not reach a node): digests keep moving, so
        # convergence cannot be observed; fail now rather than wait out the bound.
        converged = quiesced and self._poll_until(self.config.converge_timeout_s, self._converged)
        self.timeline["reconverge_s"] = round(self.now() - faults_off_at, 1) if converged else None
        self._sample()
        for node in self.nodes:  # all at once: each takes up to ~2 s to leave and flush its list
            node.send(signal.SIGTERM)
        for node in self.nodes:
            node.stop(signal.SIGTERM)

    def _pick_victim(self, restarts: dict[str, float]) -> SoakNode | None:
        """A random node, once every node is up (a victim's restart takes seconds: kills never overlap)."""
        if restarts or not all(node.running and node.ready() for node in self.nodes):
            return None
        return self.rng.choice(self.nodes)

    def _kill(self, victim: SoakNode, sig: signal.Signals, purpose: str) -> None:
        """Record what every node lists and what the victim committed, kill it, and read what it holds dead."""
        at_s = self.now()
        listed_count = 0
        for node in self.nodes:
            if node.running and node.ready():
                try:
                    shown = node.listed()
                except (OSError, ValueError):
                    continue  # a slow node's list is covered by the final check of every store
                self.listed |= shown
                listed_count = len(shown) if node is victim else listed_count
        before = victim.committed()
        code = victim.stop(sig)
        after = victim.committed()
        self.vanished |= before - after
        self.acknowledged |= before | after
        self.kills.append(Kill(at_s=round(at_s, 1), node=victim.name, signal=sig.name, purpose=purpose,
                               listed_before=listed_count, committed_before=len(before),
                               committed_at_death=len(after), exit_code=code))  # fmt: skip
        self.live.note(f"{at_s:6.0f} s  {purpose}: {sig.name} {victim.name} ({len(after)} records committed)")

    def _unbidden(self, node: SoakNode, restarts: dict[str, float]) -> None:
        """A node exited without being killed: a failure of the soak; note it and bring the node back."""
        run = node.run
        assert run is not None
        if run.ended_s is None:
            node.stop(signal.SIGKILL)
            self.unbidden_exits.append(f"{node.name} pid {run.pid} exited {run.exit_code} at {run.ended_s} s "
                                       f"(log: {node.log_path})")  # fmt: skip
            self.live.note(f"{self.now():6.0f} s  {node.name} EXITED by itself with {run.exit_code}")
            restarts[node.name] = self.now() + self.config.restart_after_s

    def _seeds_for(self, node: SoakNode) -> list[str]:
        return [other.address for other in self.nodes if other is not node and other.running]

    def _sample(self) -> None:
        for node in self.nodes:
            node.sample()
        self._note_false_deaths()
        self.live.update(self.nodes, self.now(), self.soak_end_s, len(self.kills))

    def _note_false_deaths(self) -> None:
        by_name = {node.name: node for node in self.nodes}
        now = self.now()
        for observer in self.nodes:
            run = observer.run
            if run is None or not run.samples or run.samples[-1].at_s < now - 1:
                continue
            alone = list(run.samples[-1].members.values()).count("alive") == 1
            if alone and run.ready_s is not None and now - run.ready_s > RESTARTED_GRACE_S:
                if (observer.name, len(observer.runs)) not in self.isolated:  # its join failed: see its log
                    self.isolated[(observer.name, len(observer.runs))] = round(now, 1)
                    self.live.note(f"{now:6.0f} s  ISOLATED: {observer.name} sees no live peer ({observer.log_path})")
            for name, state in run.samples[-1].members.items():
                member = by_name.get(name)
                member_run = member.run if member is not None else None
                if state != "dead" or member is None or member_run is None or not member.running:
                    continue
                if member_run.ready_s is None or now - member_run.ready_s < RESTARTED_GRACE_S:
                    continue  # just restarted: peers learn of its new incarnation within a few rounds
                key = (observer.name, name, len(member.runs))
                if key not in self.false_deaths:
                    self.false_deaths[key] = round(now, 1)
                    self.live.note(f"{now:6.0f} s  FALSE DEATH: {observer.name} sees live {name} dead")

    def _converged(self) -> bool:
        """Every node finds every peer's last digest equal to its own, faults off and production over."""
        self._maybe_sample()
        for node in self.nodes:
            metrics = node.get("/api/metrics")
            if metrics.get("stopped") is None or metrics.get("faults", {}).get("drop", 0) != 0:
                return False
            convergence = node.get("/api/convergence")
            if not convergence.get("available") or len(convergence["nodes"]) != len(self.nodes):
                return False
            if any(difference != 0 for difference in convergence.get("difference", [[None]])[0]):
                return False
        return True

    def _maybe_sample(self) -> None:
        last = max((run.samples[-1].at_s for run in (n.run for n in self.nodes) if run and run.samples), default=0.0)
        if self.now() - last >= self.config.sample_every_s:
            self._sample()

    def _poll_until(self, timeout_s: float, condition: Any) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if condition():
                    return True
            except (OSError, ValueError, KeyError):
                pass  # a node restarting or slow to answer: ask again
            time.sleep(0.5)
        return False

    def _wait_ready(self, nodes: list[SoakNode]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for node in nodes:
            while not node.ready():
                if not node.running:
                    raise RuntimeError(f"{node.name} exited while starting; see {node.log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name} did not serve within {READY_TIMEOUT_S:g} s; see {node.log_path}")
                time.sleep(0.1)


def _sources_changed_since(wall_s: float) -> list[str]:
    """The node's source files modified during the run: in a shared checkout, a node restarted after
    such an edit runs other code than its peers (a protocol version bump splits the cluster)."""
    return sorted(str(path.relative_to(ROOT)) for package in SOURCE_PACKAGES for path in (ROOT / package).rglob("*.py")
                  if path.stat().st_mtime > wall_s)  # fmt: skip


def _producing(node: SoakNode) -> bool:
    return node.get("/api/metrics").get("stopped") is None


def _parse_args(argv: list[str] | None) -> tuple[SoakConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help=f"soak length (at most {MAX_MINUTES:g})")
    parser.add_argument("--nodes", type=int, default=5, help="gossip-node processes (2..9)")
    parser.add_argument("--loss", type=float, default=0.05, help=f"gossip message loss, 0..{MAX_LOSS:g}")
    parser.add_argument("--churn-every-s", type=float, default=45.0, help="kill a random node this often (0 = never)")
    parser.add_argument("--restart-after-s", type=float, default=5.0, help="how long a victim stays down")
    parser.add_argument("--sample-every-s", type=float, default=5.0, help="sample every node this often")
    parser.add_argument("--warm-up-s", type=float, default=None, help="RSS growth from the first sample after "
                        "this long in a process (default: 60, or a fifth of a shorter soak)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="churn and fault seed (default: random, printed)")
    parser.add_argument("--sim-time-scale", type=float, default=0.05, help="simulated LLM latency multiplier")
    parser.add_argument("--calls-per-minute", type=float, default=20.0, help="each node's LLM calls per minute")
    parser.add_argument("--converge-timeout-s", type=float, default=180.0, help="bound on the final convergence")
    parser.add_argument("--work-dir", type=Path, default=None, help="data dirs and logs here (kept); default: "
                        "a temp dir, removed unless the soak fails")  # fmt: skip
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON report goes")
    parser.add_argument("--no-write", action="store_true", help="print only; write no JSON")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES:g}]")
    if not 2 <= args.nodes <= 9:
        parser.error("--nodes must be in 2..9")
    if not 0 <= args.loss <= MAX_LOSS:
        parser.error(f"--loss must be in [0, {MAX_LOSS:g}]")
    if args.churn_every_s < 0 or args.restart_after_s < 0 or args.sample_every_s <= 0:
        parser.error("--churn-every-s and --restart-after-s must be >= 0, --sample-every-s > 0")
    warm_up_s = args.warm_up_s if args.warm_up_s is not None else min(60.0, args.minutes * 60 / 5)
    config = SoakConfig(
        minutes=args.minutes, nodes=args.nodes, loss=args.loss, churn_every_s=args.churn_every_s,
        restart_after_s=args.restart_after_s, sample_every_s=args.sample_every_s, warm_up_s=warm_up_s,
        seed=args.seed if args.seed is not None else random.randrange(2**31), sim_time_scale=args.sim_time_scale,
        calls_per_minute=args.calls_per_minute, converge_timeout_s=args.converge_timeout_s,
    )  # fmt: skip
    return config, args


def main(argv: list[str] | None = None) -> int:
    config, args = _parse_args(argv)
    # Both end in the finally below, which kills every node; SIGINT explicitly, since a shell
    # starting a background job hands it SIGINT ignored.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    root = args.work_dir or Path(tempfile.mkdtemp(prefix="swarmlist-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    live = LiveTable()
    print(f"soak: {config.nodes} nodes, {config.minutes:g} min, loss {config.loss:g}, churn every "
          f"{config.churn_every_s:g} s, seed {config.seed}; data and logs in {root}", flush=True)  # fmt: skip
    soak = Soak(config, root, live)
    started_wall = time.time()
    ok = False
    try:
        with live:
            soak.run()
        stores = verify_stores(soak.nodes, acknowledged=soak.acknowledged, listed=soak.listed, vanished=soak.vanished)
        results = summarize(soak.nodes, stores, kills=soak.kills, false_deaths=soak.false_deaths,
                            unbidden_exits=soak.unbidden_exits, timeline=soak.timeline, soak_end_s=soak.soak_end_s,
                            warm_up_s=config.warm_up_s)  # fmt: skip
        results["isolated"] = [{"node": name, "run": run, "at_s": at} for (name, run), at in soak.isolated.items()]
        results["sources_changed_during_run"] = _sources_changed_since(started_wall)
        print_summary(results)
        ok = bool(results["ok"])
        if not args.no_write:
            document = {"section": "Soak", "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "machine": machine_info(), "parameters": asdict(config),
                        "seeds": {"soak": config.seed, "faults": [config.faults(i)["seed"] for i in range(config.nodes)],
                                  "llm": [i + 1 for i in range(config.nodes)]},
                        "results": results}  # fmt: skip
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"wrote {args.out}")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every node", file=sys.stderr)
        return 130
    except RuntimeError as exc:  # a node that would not start: nothing to audit
        print(f"soak FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        for node in soak.nodes:
            node.close()
        if ok and args.work_dir is None:
            shutil.rmtree(root, ignore_errors=True)
        elif not ok:
            print(f"data dirs and logs kept in {root}", file=sys.stderr)
    return 0 if ok else 1


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
