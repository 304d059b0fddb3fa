"""Fuzzing a node's gossip endpoint (issue #14): send hostile inputs, judge each, tally them.

Shared by ``tests/node/test_gossip_fuzz.py`` (bounded, run by scripts/test.sh) and
``scripts/fuzz/gossip.py`` (on demand, ≥ 10,000 inputs). ``Fuzzer.run`` sends an ``Attempt``
(``tests.node.gossip_inputs``) to a ``Target`` (``tests.node.fuzz_target``) over a plain
HTTP/1.1 connection and checks the promise of design.md ("an unauthenticated or malformed
message is rejected with a clear log line and changes nothing"):

- the answer is a 2xx, or a 4xx the input allows; a 5xx, a dropped connection, or a log line
  at ERROR or above is a crash;
- the record set equals the oracle's: unchanged by every refused input, and grown by exactly
  the valid records an answered (authenticated) message carried;
- a refusal writes at most one log line (the transport's ``RejectionLog`` throttles them).

``Tally`` counts the outcomes per kind of input; ``run_many`` draws inputs with hypothesis.
"""

from __future__ import annotations

import http.client
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from node.store import DB_FILENAME
from tests.node.fuzz_target import Target
from tests.node.gossip_inputs import Attempt, attempts

# ---------------------------------------------------------------------------- the tally


@dataclass
class KindCounts:
    tried: int = 0
    answered: int = 0
    rejected: int = 0
    crashed: int = 0
    unexpected: int = 0  # a status the input does not allow (e.g. answered where refusal is due)
    state_changed: int = 0  # the record set differs from the oracle's
    log_lines: int = 0  # refusal lines written
    statuses: Counter[str] = field(default_factory=Counter)


@dataclass
class Tally:
    """Outcomes per kind of input; ``problems`` keeps the first few failures, to say what broke."""

    kinds: dict[str, KindCounts] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def of(self, kind: str) -> KindCounts:
        return self.kinds.setdefault(kind, KindCounts())

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)

    def total(self, name: str) -> int:
        return sum(getattr(counts, name) for counts in self.kinds.values())

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: totals, then each kind."""
        columns = ("tried", "answered", "rejected", "crashed", "unexpected", "state_changed", "log_lines")
        return {
            "total": {name: self.total(name) for name in columns},
            "kinds": {kind: {**{name: getattr(counts, name) for name in columns},
                             "statuses": dict(sorted(counts.statuses.items()))}
                      for kind, counts in sorted(self.kinds.items())},
            "problems": list(self.problems),
        }  # fmt: skip

    def table(self) -> str:
        """The counts as a text table (one row per kind, totals last)."""
        columns = ("tried", "answered", "rejected", "crashed", "unexpected", "state_changed", "log_lines")
        width = max([len(kind) for kind in self.kinds] + [5])
        lines = [f"{'input':<{width}}  " + "  ".join(f"{name:>13}" for name in columns)]
        for kind, counts in sorted(self.kinds.items()):
            lines.append(f"{kind:<{width}}  " + "  ".join(f"{getattr(counts, name):>13}" for name in columns))
        lines.append(f"{'total':<{width}}  " + "  ".join(f"{self.total(name):>13}" for name in columns))
        return "\n".join(lines)


def assert_clean(tally: Tally) -> None:
    """The promise: nothing crashed, nothing answered what it should refuse, no state changed."""
    bad = {name: tally.total(name) for name in ("crashed", "unexpected", "state_changed")}
    assert not any(bad.values()) and tally.total("tried") > 0, f"{bad}\n{tally.table()}\n" + "\n".join(tally.problems)


# ---------------------------------------------------------------------------- the fuzzer

REFUSAL_LOGGER = "gossip.http_transport"


class Fuzzer:
    """Sends attempts to a target over one keep-alive HTTP/1.1 connection and judges each."""

    def __init__(self, target: Target, tally: Tally | None = None, *, timeout_s: float = 30.0) -> None:
        self.target = target
        self.tally = tally or Tally()
        self._timeout_s = timeout_s
        host, port = target.url.removeprefix("http://").rsplit(":", 1)
        self._host, self._port = host, int(port)
        self._connection: http.client.HTTPConnection | None = None
        self.expected = target.record_keys()  # the oracle's record set
        self._log_seen = len(target.log_lines())

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def run(self, attempt: Attempt) -> None:
        """Send ``attempt`` (twice if it is a replay) and record how the target took it."""
        self._judge(attempt, attempt.allowed, self.post(attempt.path, attempt.body))
        if attempt.replay:
            self._judge(attempt, frozenset({401}), self.post(attempt.path, attempt.body))

    def post(self, path: str, body: bytes) -> int | str:
        """The status, or the name of the error when no HTTP answer came back."""
        for fresh in (False, True):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
                fresh = True
            try:
                self._connection.request("POST", path, body, {"Content-Type": "application/msgpack"})
                response = self._connection.getresponse()
                response.read()
                if response.will_close:
                    self.close()
                return response.status
            except (http.client.HTTPException, OSError) as exc:
                self.close()
                if fresh:  # a reused connection may have been closed by the server in between: retry once
                    return type(exc).__name__
        return "unreachable"

    def _judge(self, attempt: Attempt, allowed: frozenset[int], status: int | str) -> None:
        counts = self.tally.of(attempt.kind)
        counts.tried += 1
        counts.statuses[str(status)] += 1
        what = f"{attempt.kind} → {status} ({len(attempt.body)} bytes: {attempt.body[:48].hex()}…)"
        code = status if isinstance(status, int) else 599  # no HTTP answer at all: as bad as a 5xx
        crashed = code >= 500 or not self.target.alive()
        if crashed:
            counts.crashed += 1
            self.tally.problem(f"crash: {what}")
        elif code < 300:
            counts.answered += 1
            self.expected = self.expected | attempt.adds
        else:
            counts.rejected += 1
        if not crashed and code not in allowed:
            counts.unexpected += 1
            self.tally.problem(f"unexpected status: {what}, allowed {sorted(allowed)}")
        keys = self.target.record_keys()
        if keys != self.expected:
            counts.state_changed += 1
            self.tally.problem(f"state changed: {what}: +{len(keys - self.expected)} -{len(self.expected - keys)}")
            self.expected = keys  # judge the next input on its own
        lines = self.target.log_lines()
        new, self._log_seen = lines[self._log_seen :], len(lines)
        errors = [line for line in new if line.level in ("ERROR", "CRITICAL")]
        if errors and not crashed:
            counts.crashed += 1
            self.tally.problem(f"error logged: {what}: {errors[0].logger}: {errors[0].text[:300]}")
        refusals = sum(1 for line in new if line.logger == REFUSAL_LOGGER)
        counts.log_lines += refusals
        if refusals > (0 if code < 300 else 1):
            counts.unexpected += 1
            self.tally.problem(f"{refusals} log lines for one input: {what}")


def own_records(data_dir: Path) -> list[bytes]:
    """The target's committed record bodies: the real records its peers would receive."""
    connection = sqlite3.connect(f"file:{data_dir / DB_FILENAME}?mode=ro", uri=True)
    try:
        return [bytes(body) for (body,) in connection.execute("SELECT body FROM records ORDER BY key LIMIT 64")]
    finally:
        connection.close()


def run_many(fuzzer: Fuzzer, examples: int, own: Sequence[bytes], *, seed: int | None = None,
             on_attempt: Callable[[Attempt], None] = lambda attempt: None) -> Tally:  # fmt: skip
    """Draw ``examples`` attempts with hypothesis and run each; returns the tally (never raises on a finding)."""

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(attempts(own))
    def fuzz(attempt: Attempt) -> None:
        on_attempt(attempt)
        fuzzer.run(attempt)

    if seed is not None:
        fuzz = hypothesis_seed(seed)(fuzz)
    fuzz()
    return fuzzer.tally


