"""Hostile HTTP against the web surface: the cases, a raw client, and the judge of every answer.

Shared by ``tests/webui/test_fuzz_routes.py`` (bounded, in the suite) and
``scripts/fuzz/web.py`` (the longer run on demand). The application runs on 127.0.0.1:0 in
a thread of its own with its own event loop (``ServedApp``), and the fuzzer writes raw bytes
over a blocking socket: no client library sits in between to normalise a path, refuse a
method or re-encode an escape, so what aiohttp's parser and the routes see is exactly what
was generated.

The promise judged (issue #14): any answer is a clear 4xx or a normal 2xx/3xx, never a 5xx
(except the documented 503 of ``/api/events`` at its client limit), never a traceback, always
within a few seconds; every answer of the application carries the hardening headers of
``webui.assets``; and the view's state is the same after the hostile requests as before.

Answers written by aiohttp's HTTP parser itself (a request it cannot parse: bad method,
line too long, bad escapes in the raw target) never reach the application, so its
``on_response_prepare`` hook, which adds the hardening headers, does not run for them
(aio-libs/aiohttp#6463). They are counted apart as ``parser_400``: a plain-text 400 whose
connection is closed, checked for everything but those headers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Generic, TypeVar
from urllib.parse import quote, unquote, urlencode

from aiohttp import web
from hypothesis import strategies as st

from node.normalize import entry_id
from node.records import EntryRecord, MatchKind, ObservationRecord, ObservedItem
from node.state import NodeState
from node.view import StateView
from tests.webui.fake_view import FakeView
from webui.app import WebUIConfig, create_app
from webui.assets import SECURITY_HEADERS, Assets
from webui.view import ConvergenceView, MemberView, PartitionView

V = TypeVar("V")
T = TypeVar("T")

# -- the surface ------------------------------------------------------------------------------

# every route of webui.app (by aiohttp's canonical form) -> a concrete path that exists;
# "{entry}" is replaced by the id of an entry of the view
ROUTE_SAMPLES: dict[str, str] = {
    "/": "/",
    "/static/{name}": "/static/app.js",
    "/api/entries": "/api/entries",
    "/api/entries/{entry_id}": "/api/entries/{entry}",
    "/api/members": "/api/members",
    "/api/metrics": "/api/metrics",
    "/api/series": "/api/series",
    "/api/discovery": "/api/discovery",
    "/api/partitions": "/api/partitions",
    "/api/convergence": "/api/convergence",
    "/api/export": "/api/export",
    "/api/events": "/api/events",
    "/metrics": "/metrics",
    "/healthz": "/healthz",
}
UNKNOWN_ROUTES = ("/nowhere", "/api", "/api/", "/api/entries/", "/gossip/ping", "/static", "/index.html", "/HEALTHZ")
# routes whose body does not depend on when it is asked (HEAD's Content-Length must match GET's)
TIMELESS_ROUTES = frozenset(ROUTE_SAMPLES) - {"/api/metrics", "/api/series", "/metrics", "/api/export", "/api/events"}

READ_METHODS = ("GET", "HEAD")
REFUSED_METHODS = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")  # HTTP's own: 405 Allow: GET,HEAD
EXTENSION_METHODS = ("PROPFIND", "MKCOL", "LOCK", "PURGE", "QUERY", "SEARCH", "M-SEARCH", "REPORT")  # also 405
# not a method llhttp knows, or not a token at all: the parser refuses them before any route
GARBAGE_METHODS = ("FOO", "get", "GeT", "G<T", "X" * 64, "GET\x00", "\xff\xfe", "GET/", "HEAD\t")

QUERY_PARAMS = {
    "/api/entries": ("limit", "cursor", "q", "partition", "status"),
    "/api/series": ("max_points",),
    "/api/discovery": ("max_points",),
    "/api/export": ("format",),
}

HOSTILE_TEXT = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "Ignore previous instructions\nevent: fake\ndata: {}\n\n",
    "\u202eRTL override\u202c",
    "zero\u200bwidth",
    "emoji 🗼",
    "tab\tand\x00nul",
)


def fake_view_with_hostile_entries() -> FakeView:
    """A view holding ordinary and hostile entries, members, partitions and a convergence matrix."""
    view = FakeView()
    for name in ("Oslo", "Bergen", "Tromsø", "Ålesund", *HOSTILE_TEXT):
        view.add(name, partition="Europe > Norway", dropped=((name.lower(), "exact", 1.0),))
    view.member_list.append(MemberView("n2", "127.0.0.1:7002", "suspect", 3, 1_700_000_000.0))
    view.partition_list = [PartitionView("Europe > Norway", 11, 11, 22, 11, "n1", "active")]
    view.convergence_view = ConvergenceView(("n1", "n2"), ((1.0, 0.5), (0.5, None)))
    return view


def fake_view_digest(view: FakeView) -> str:
    """Everything the fake view would serve, hashed (its request log is not state)."""
    page = view.entries(cursor=None, limit=1_000_000, query=None, partition=None, status=None)
    parts = [
        repr(page),
        repr([view.entry_observations(entry.id) for entry in page.entries]),
        repr(list(view.export("jsonl"))),
        json.dumps(view.metrics(), sort_keys=True, default=repr),
        repr(view.members()),
        repr(view.partitions()),
        repr(view.convergence()),
        repr(view.discovery(10_000)),
        repr(dict(view.health())),
        repr(view.listener_count),
    ]
    return hashlib.sha256("\x1e".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


# -- the server -------------------------------------------------------------------------------


class ServedApp(Generic[V]):
    """``create_app(view)`` on a real TCP site at 127.0.0.1:0, run by an event loop in its own thread.

    The view lives on that loop: read it only through ``call`` (``digest`` does).
    """

    def __init__(self, view: V, digest: Callable[[V], str], config: WebUIConfig | None = None) -> None:
        self.view = view
        self._digest = digest
        self._config = config or WebUIConfig(tick_s=0.05, flush_s=0.02)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fuzzed-webui", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def __repr__(self) -> str:
        return f"<ServedApp 127.0.0.1:{self.port} {'serving' if self._runner else 'stopped'}>"

    def __enter__(self) -> ServedApp[V]:
        self._thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving (at most 10 s, or a stream held it) and end the thread; safe to call twice."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            self._run(self._stop(runner))
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _start(self) -> None:
        runner = web.AppRunner(create_app(self.view, self._config), access_log=None)  # type: ignore[arg-type]
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    @staticmethod
    async def _stop(runner: web.AppRunner) -> None:
        await runner.cleanup()
        # connections still lingering over a request body they were sent (up to 10 s): end them
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def call(self, function: Callable[[], T]) -> T:
        """``function()`` run on the server's loop (where the view may be touched)."""

        async def run() -> T:
            return function()

        return self._run(run())

    def digest(self) -> str:
        return self.call(lambda: self._digest(self.view))

    def connections(self) -> int:
        """Connections the server holds open right now."""
        runner = self._runner
        return self.call(lambda: len(runner.server.connections) if runner and runner.server else 0)


# -- the raw client ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer as read off the socket (header names in lower case)."""

    version: str
    status: int
    headers: dict[str, str]
    body: bytes
    head: bool = False  # the answer to a HEAD request (no body)

    @property
    def from_parser(self) -> bool:
        """Written by aiohttp's parser, not the application (aiohttp answers those as HTTP/1.0)."""
        return self.status == 400 and self.version == "HTTP/1.0"


class NoAnswer(Exception):
    """The server closed the connection, or kept silent past the timeout, instead of answering."""


def request_bytes(
    method: str | bytes, target: str | bytes, *, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
) -> bytes:
    """A request as wire bytes; ``method`` and ``target`` go out exactly as given (latin-1 for str)."""
    head = [_raw(method) + b" " + _raw(target) + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    head += [_raw(name) + b": " + _raw(value) for name, value in headers]
    if body:
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _raw(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1", "replace")


MAX_BODY_BYTES = 8 * 1024 * 1024


def exchange(port: int, wire: bytes, *, timeout_s: float = 5.0) -> Reply:
    """Send ``wire`` on a new connection and read one answer (1xx skipped; an event stream's first bytes)."""
    head_request = wire.startswith(b"HEAD ")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(wire)
        except OSError:
            pass  # the server may answer and close before it has read everything
        stream: BinaryIO = sock.makefile("rb")
        try:
            while True:
                version, status, headers = _read_head(stream)
                if not 100 <= status < 200:
                    break
            body = _read_body(stream, status, headers, head_request)
        except (OSError, ValueError) as exc:  # socket.timeout is an OSError
            raise NoAnswer(f"{type(exc).__name__}: {exc}") from exc
    return Reply(version, status, headers, body, head_request)


def _read_head(stream: BinaryIO) -> tuple[str, int, dict[str, str]]:
    status_line = stream.readline(65_536)
    if not status_line:
        raise ValueError("connection closed without an answer")
    version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
    status = int(rest.split(" ", 1)[0])
    headers: dict[str, str] = {}
    while True:
        line = stream.readline(65_536).decode("latin-1").rstrip("\r\n")
        if not line:
            return version, status, headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()


def _read_body(stream: BinaryIO, status: int, headers: dict[str, str], head_request: bool) -> bytes:
    read, readline = stream.read, stream.readline
    if head_request or status in (204, 304):
        return b""
    if headers.get("content-type", "").startswith("text/event-stream"):
        size = int(readline(100).strip() or b"0", 16)  # the first chunk: "retry:" and the greeting
        return bytes(read(size))
    if "content-length" in headers:
        return bytes(read(min(int(headers["content-length"]), MAX_BODY_BYTES)))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while len(body) < MAX_BODY_BYTES:
            size = int(readline(100).strip() or b"0", 16)
            if size == 0:
                break
            body += read(size)
            readline(10)
        return bytes(body)
    return bytes(read(MAX_BODY_BYTES))


# -- the judge --------------------------------------------------------------------------------

OUTCOMES = ("answered", "rejected", "parser_400", "busy", "crashed")
_TRACEBACK_MARKS = (b"Traceback (most recent call last)", b'.py", line ')


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one answer went: its outcome and, if any, what is wrong with it."""

    outcome: str  # one of OUTCOMES
    problems: tuple[str, ...] = ()  # empty: the answer keeps the promise

    @property
    def unsafe(self) -> bool:
        return bool(self.problems) and self.outcome != "crashed"


def judge(reply: Reply | NoAnswer, *, events_route: bool = False) -> Verdict:
    """The outcome of one answer and what breaks the promise in it (see the module docstring)."""
    if isinstance(reply, NoAnswer):
        return Verdict("crashed", (f"no answer: {reply}",))
    if any(mark in reply.body for mark in _TRACEBACK_MARKS):
        return Verdict("crashed", ("a traceback in the body",))
    if reply.status >= 500:
        if reply.status == 503 and events_route and reply.headers.get("retry-after"):
            return Verdict("busy", _missing_headers(reply))
        return Verdict("crashed", (f"status {reply.status}",))
    if reply.from_parser:  # an HTTP/1.0 answer without keep-alive: aiohttp closes the connection after it
        return Verdict("parser_400", () if reply.body or reply.head else ("an empty error body",))
    problems = list(_missing_headers(reply))
    if reply.status >= 400:
        problems += _unclear_error(reply)
        return Verdict("rejected", tuple(problems))
    return Verdict("answered", tuple(problems))


def _missing_headers(reply: Reply) -> tuple[str, ...]:
    return tuple(
        f"missing or wrong {name}"
        for name, value in SECURITY_HEADERS.items()
        if reply.headers.get(name.lower()) != value
    )


def _unclear_error(reply: Reply) -> list[str]:
    """A 4xx must say what is wrong: a JSON ``{"error": ...}`` or a non-empty text."""
    content_type = reply.headers.get("content-type", "")
    if reply.head:
        clear = content_type.startswith(("application/json", "text/plain"))
        return [] if clear else [f"a HEAD error as {content_type}"]
    if not reply.body and reply.headers.get("content-length") in (None, "0"):
        return [] if reply.status == 405 and "allow" in reply.headers else ["an empty error body"]
    if content_type.startswith("application/json"):
        try:
            error = json.loads(reply.body)
        except ValueError:
            return ["a JSON error that does not parse"]
        return [] if isinstance(error, dict) and isinstance(error.get("error"), str) else ["a JSON error without error"]
    if content_type.startswith("text/plain"):
        return []
    return [f"an error answered as {content_type or 'no content type'}"]


# -- counting ---------------------------------------------------------------------------------


@dataclass
class KindTally:
    """Outcomes of the inputs of one kind."""

    tried: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    unsafe: int = 0  # answered or refused, but without the hardening headers or a clear error
    unexpected: int = 0  # a status other than the one the case expects
    state_checks: int = 0
    state_changed: int = 0


class Tally:
    """Counts per kind of input; ``failures`` keeps the first few bad cases to show."""

    def __init__(self) -> None:
        self.kinds: dict[str, KindTally] = {}
        self.failures: list[str] = []

    def __repr__(self) -> str:
        totals = self.totals()
        return f"<Tally tried={totals['tried']} crashed={totals['crashed']} state_changed={totals['state_changed']}>"

    def kind(self, name: str) -> KindTally:
        return self.kinds.setdefault(name, KindTally())

    def record(
        self, kind: str, case: str, reply: Reply | NoAnswer, verdict: Verdict, *, expected: Iterable[int] = ()
    ) -> None:
        tally = self.kind(kind)
        tally.tried += 1
        tally.outcomes[verdict.outcome] += 1
        if isinstance(reply, Reply):
            tally.statuses[reply.status] += 1
        problems = list(verdict.problems)
        allowed = set(expected)
        if allowed and isinstance(reply, Reply) and reply.status not in allowed:
            tally.unexpected += 1
            problems.append(f"status {reply.status}, expected {sorted(allowed)}")
        if verdict.unsafe:
            tally.unsafe += 1
        if problems:
            self._fail(f"{kind}: {case[:160]!r} -> {'; '.join(problems)}")

    def record_state(self, kind: str, before: str, after: str) -> None:
        tally = self.kind(kind)
        tally.state_checks += 1
        if before != after:
            tally.state_changed += 1
            self._fail(f"{kind}: the view's state changed")

    def _fail(self, message: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(message)

    def totals(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for tally in self.kinds.values():
            totals.update(tried=tally.tried, unsafe=tally.unsafe, unexpected=tally.unexpected,
                          state_checks=tally.state_checks, state_changed=tally.state_changed)  # fmt: skip
            totals.update({outcome: tally.outcomes[outcome] for outcome in OUTCOMES})
        return {name: totals[name] for name in ("tried", *OUTCOMES, "unsafe", "unexpected", "state_checks",
                                                "state_changed")}  # fmt: skip

    def clean(self) -> bool:
        totals = self.totals()
        failing = ("crashed", "unsafe", "unexpected", "state_changed")
        return not self.failures and all(totals[name] == 0 for name in failing)

    def as_json(self) -> dict[str, object]:
        return {
            "totals": self.totals(),
            "kinds": {
                name: {
                    "tried": tally.tried,
                    **{outcome: tally.outcomes[outcome] for outcome in OUTCOMES},
                    "unsafe": tally.unsafe,
                    "unexpected": tally.unexpected,
                    "state_checks": tally.state_checks,
                    "state_changed": tally.state_changed,
                    "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
                }
                for name, tally in self.kinds.items()
            },
            "failures": self.failures,
        }

    def summary(self) -> str:
        """One line per kind, then the first failures: the message of a failing assertion."""
        lines = [f"{'kind':<22} tried answered rejected parser_400 busy crashed unsafe unexpected state_changed"]
        for name, tally in self.kinds.items():
            o = tally.outcomes
            lines.append(
                f"{name:<22} {tally.tried:5} {o['answered']:8} {o['rejected']:8} {o['parser_400']:10} {o['busy']:4} "
                f"{o['crashed']:7} {tally.unsafe:6} {tally.unexpected:10} {tally.state_changed:13}"
            )
        return "\n".join(lines + self.failures)


def fire(
    app: ServedApp[V],
    tally: Tally,
    kind: str,
    cases: Iterable[tuple[bytes, Iterable[int]]],
    *,
    assets: Assets | None = None,
) -> None:
    """Send each ``(wire, expected statuses)`` case, judge and count it; then check the state is unchanged.

    An empty ``expected`` accepts any status the judge accepts. A 200 under ``/static/`` must be
    one of ``assets`` byte for byte (nothing from outside the static directory).
    """
    asset_bodies = {asset.body for asset in map(assets.get, assets.names()) if asset} if assets else set()
    before = app.digest()
    for wire, expected in cases:
        target = wire.split(b" ", 2)[1] if wire.count(b" ") >= 2 else b""
        try:
            reply: Reply | NoAnswer = exchange(app.port, wire)
        except NoAnswer as exc:
            reply = exc
        verdict = judge(reply, events_route=target.startswith(b"/api/events"))
        if assets is not None and target.startswith(b"/static") and _not_an_asset(reply, asset_bodies):
            verdict = Verdict("crashed", ("served a file that is not a static asset",))
        tally.record(kind, wire[:200].decode("latin-1"), reply, verdict, expected=expected)
    tally.record_state(kind, before, app.digest())


def _not_an_asset(reply: Reply | NoAnswer, asset_bodies: set[bytes]) -> bool:
    """A 200 whose body is none of the static files (HEAD answers have no body to compare)."""
    return isinstance(reply, Reply) and reply.status == 200 and bool(reply.body) and reply.body not in asset_bodies


# -- the cases --------------------------------------------------------------------------------


def route_paths(entry: str) -> dict[str, str]:
    """Each route's concrete path, with ``entry`` as the id of the entry route."""
    return {route: path.replace("{entry}", entry) for route, path in ROUTE_SAMPLES.items()}


def method_matrix(entry: str) -> Iterator[tuple[bytes, tuple[int, ...]]]:
    """Every method on every route and on unknown routes, with the statuses each must get."""
    for path in route_paths(entry).values():
        for method in READ_METHODS:
            yield request_bytes(method, path), (200,)
        for method in REFUSED_METHODS + EXTENSION_METHODS:
            yield request_bytes(method, path, body=b'{"x": 1}' if method in ("POST", "PUT", "PATCH") else b""), (405,)
        yield request_bytes("CONNECT", path), (404, 405)  # a CONNECT target is an authority, not a path
        for method in GARBAGE_METHODS:
            yield request_bytes(method, path), (400,)
    for path in UNKNOWN_ROUTES:
        for method in READ_METHODS + REFUSED_METHODS:
            yield request_bytes(method, path), (404,)
        for method in GARBAGE_METHODS[:3]:
            yield request_bytes(method, path), (400,)


MAX_TARGET = 8190 - len(" HTTP/1.1\r\n") - 4  # aiohttp's line limit: longer request lines are a parser 400


def odd_paths() -> list[tuple[str, tuple[int, ...]]]:
    """Paths that are not quite routes; each with the statuses it may get (no status: the judge alone)."""
    not_found = (404,)
    return [
        ("//", not_found), ("///api/entries", not_found), ("/./", not_found), ("/.", not_found),
        ("/..", not_found), ("/../", not_found), ("/../api/entries", not_found), ("/api/./entries", (200, 404)),
        ("/api/../api/entries", (200, 404)), ("/%2e%2e/", not_found), ("/%2e%2e%2f", not_found),
        ("/api/entries/%2e%2e", not_found), ("/%00", not_found), ("/api/entries%00", not_found),
        ("/api/entries/%00", not_found), ("/static/app.js%00", not_found), ("/static/app.js%00.png", not_found),
        ("/%ff%fe", not_found), ("/api/entries/%ff%fe", not_found), ("/static/%ff%fe", not_found),
        ("/%c0%ae%c0%ae/", not_found), ("/%e2%80%ae", not_found), ("/%2561pi/entries", not_found),
        ("/" + "a" * (MAX_TARGET - 1), not_found), ("/" + "a" * 9000, (400,)), ("/" + "%41" * 2000, not_found),
        ("/api/entries/" + "a" * 5000, not_found), ("/api/entries/" + "0" * 64, not_found),
        ("/api/entries/" + "0" * 65, not_found), ("/api/entries/ABCDEF", not_found),
        ("/;", not_found), ("/api/entries;x", not_found), ("/api/entries?", (200,)), ("/api/entries??", (200,)),
        ("/api/entries#frag", (200,)), ("/api\\entries", not_found), ("/healthz/", not_found),
        ("/api/entries//", not_found), ("/metrics/", not_found), ("/static/", not_found),
        ("/static//app.js", not_found), ("/static/./app.js", (200, 404)), ("/%61pi/entries", (200,)),
        ("/api%2Fentries", not_found), ("*", (400,)), ("api/entries", (400,)), ("http://evil.example/healthz", (200,)),
        ("/a b", (400,)), ("/\x7f", (400,)), ("/\xff", (400,)), ("/\t", (400,)),
    ]  # fmt: skip


TRAVERSALS = (
    "/static/../app.py", "/static/../../pyproject.toml", "/static/%2e%2e/app.py", "/static/%2E%2E/%2E%2E/README.md",
    "/static/..%2fapp.py", "/static/..%2F..%2Fpyproject.toml", "/static/%2e%2e%2f%2e%2e%2fapp.py",
    "/static/..%5capp.py", "/static/..\\app.py", "/static/vendor/../../view.py", "/static/vendor/../../../node/view.py",
    "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", "/static/.%2e/.%2e/pyproject.toml", "/static/%252e%252e/app.py",
    "/static/%c0%ae%c0%ae/app.py", "/static/%c0%af..%c0%afapp.py", "/static/..;/app.py", "/static/app.js/../../app.py",
    "/static/" + "../" * 200 + "etc/passwd", "/static/" + "%2e%2e%2f" * 200 + "etc/passwd", "/static/%00../app.py",
    "/static/file:///etc/passwd", "/static/\\\\server\\share", "/static/C:%5cWindows%5cwin.ini", "/static/~root",
    "/static/.git/config", "/static/../.git/HEAD", "/static/__pycache__/app.cpython-311.pyc", "/static/index.html/",
)  # fmt: skip


INT_VALUES = (
    "", "1", "2", "1000", "2000", "0", "-1", "-0", "1001", "2001", "+5", "%205", "5%20", "1e3", "1e400", "NaN", "nan",
    "inf", "-inf", "Infinity", "9" * 50, "-" + "9" * 50, "9" * 5000, "0x10", "1_000", "%D9%A5", "%F0%9D%9F%93", "1.5",
    "true", "%5B%5D", "%00", "5%00", "%ff", "%ff%fe", "%E2%80%8B5",
)  # fmt: skip
# (route, parameter, lowest, highest) of every integer parameter of webui.api
INT_PARAMS = (("/api/entries", "limit", 1, 1000), ("/api/series", "max_points", 2, 2000),
              ("/api/discovery", "max_points", 2, 2000))  # fmt: skip


def expected_for_int(value: str, low: int, high: int) -> tuple[int, ...]:
    """200 for a value that reads as an integer within ``low..high`` (or is empty, the default), else 400."""
    text = unquote(value, errors="replace")
    if text == "":
        return (200,)
    try:
        number = int(text)
    except ValueError:
        return (400,)
    return (200,) if low <= number <= high else (400,)


def query_cases(entry: str) -> list[tuple[str, tuple[int, ...]]]:
    """Query strings on the routes that read them, each with the statuses it must get."""
    ok, bad = (200,), (400,)
    cases: list[tuple[str, tuple[int, ...]]] = []
    for route, name, low, high in INT_PARAMS:
        cases += [(f"{route}?{name}={value}", expected_for_int(value, low, high)) for value in INT_VALUES]
        cases.append((f"{route}?{name}=\xff\xfe", bad))  # raw bytes: the parser's 400
    forged = ("bogus", "%00", "%ff%fe", "a" * 200, "../../etc/passwd", "%2e%2e", "====", "YQ", "W10", "WyJhIl0",
              "WzEsMl0", "eyJhIjoxfQ", "InMi", "W1siYSJdLCJiIl0", "WyJcdWQ4MDAiLCJ4Il0", "0" * 32)  # fmt: skip
    for cursor in forged:  # garbage, and base64 of JSON that is not a list of two strings
        cases.append((f"/api/entries?cursor={cursor}", bad))
    cases.append(("/api/entries?cursor=" + "a" * 201, bad))
    for q in ("%25", "%25%25", "*", ".*", "(", "%5C", "%00", "%ff%fe", "%3Cscript%3E", "a" * 200,
              quote("\ufdfa" * 200), quote("\u0301" * 200), quote("\u202e") * 10, quote("🗼" * 50)):  # fmt: skip
        cases.append((f"/api/entries?q={q}", ok))
    cases += [("/api/entries?q=" + "a" * 201, bad), ("/api/entries?partition=" + "p" * 201, bad)]
    for partition in ("%00", "%ff%fe", "Europe%20%3E%20Norway", "%3E", quote("' OR 1=1 --"), "../"):
        cases.append((f"/api/entries?partition={partition}", ok))
    for status, expected in [("confirmed", ok), ("unconfirmed", ok), ("rejected", ok), ("", ok), ("CONFIRMED", bad),
                             ("%00", bad), ("x" * 1000, bad), ("confirmed%00", bad), ("%ff", bad)]:  # fmt: skip
        cases.append((f"/api/entries?status={status}", expected))
    for fmt, expected in [("jsonl", ok), ("csv", ok), ("txt", ok), ("", bad), ("xml", bad), ("JSONL", bad),
                          ("../etc", bad), ("%00", bad), ("jsonl%00", bad), ("%ff", bad)]:  # fmt: skip
        cases.append((f"/api/export?format={fmt}", expected))
    cases += [
        ("/api/entries?limit=1&limit=ten", ok),  # the first of a repeated parameter counts
        ("/api/entries?limit=ten&limit=1", bad),
        ("/api/export?format=jsonl&format=xml", ok),
        ("/api/entries?" + "&".join(f"junk{n}=%ff" for n in range(500)), ok),  # 7 KB: under the line limit
        ("/api/entries?%ff=1&=&&&a=b=c&;&limit;=1", ok),
        ("/api/entries?q=" + "a" * 100_000, bad),  # 100 KB: beyond the request-line limit, the parser's 400
        ("/api/entries?x=" + "%ff" * 2000, ok),
        ("/healthz?limit=-1&cursor=%ff&format=xml", ok),  # routes without parameters ignore them
        ("/static/app.js?../../app.py", ok),
        (f"/api/entries/{entry}?limit=0", ok),
    ]
    return cases


PROTOCOL_GARBAGE = (
    b"GET\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\nHost: x\n\n",  # bare LF
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",  # no Host
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /api/entries HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(200)) + b"\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: " + b"c=" + b"v" * 20_000 + b"\r\n\r\n",
    b"GET /api/entries?q=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /" + b"%2e" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)),  # a TLS ClientHello
    b"\x00\x01\x02\x03\r\n\r\n",
    b"GET /api/entries?q=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /\xc0\xae\xc0\xae/ HTTP/1.1\r\nHost: x\r\n\r\n",
)


# -- the real node's view --------------------------------------------------------------------


def state_view() -> tuple[StateView, NodeState]:
    """The real node's view over a state holding ordinary and hostile entries, each with its call."""
    state = NodeState()
    for hlc, name in enumerate(("Oslo", "Bergen", "Tromsø", *HOSTILE_TEXT)):
        record = EntryRecord(id=entry_id(name), text=name, partition="Norway", origin="n1", hlc=hlc)
        state.apply(record)
        item = ObservedItem(entry_id=record.id, match=MatchKind.NEW)
        state.apply(ObservationRecord(node="n1", call=hlc + 1, partition="Norway", hlc=hlc, items=(item,)))
    view = StateView(state, node_name="n1", topic="t", members=list, metrics=lambda: {"entries": len(state.entries)})
    return view, state


def state_view_digest(view: StateView) -> str:
    """What the node's view serves (the list, its export, the discovery curve, the partitions), hashed."""
    page = view.entries(cursor=None, limit=1000, query=None, partition=None, status=None)
    text = repr(page) + "".join(view.export("jsonl")) + repr(view.discovery(1000)) + repr(view.partitions())
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def cursor_is_a_sort_key(cursor: str) -> bool:
    """Whether a node would accept ``cursor``: URL-safe base64 of a JSON list of two strings."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=6,
)
forged_cursors = st.one_of(
    st.text(max_size=60),
    _JSON_VALUES.map(lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")),
    st.tuples(st.text(max_size=20), st.text(max_size=20)).map(
        lambda key: base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")
    ),
    st.binary(max_size=40).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
)


# -- hypothesis strategies --------------------------------------------------------------------

_SEGMENTS = (
    "api", "entries", "static", "vendor", "app.js", "style.css", "index.html", "metrics", "healthz", "events",
    "export", "..", ".", "", "%2e%2e", "%2E", "%2f", "%2F", "%5c", "%00", "%ff", "%fe", "%c0%ae", "%25", "~",
    "{entry_id}", "gossip", ";", "%20", "%0d%0a", "a" * 300,
)  # fmt: skip


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    """A request target built from route words, dot segments, escapes and arbitrary text."""
    segment = st.one_of(
        st.sampled_from(_SEGMENTS),
        st.text(max_size=20).map(lambda text: quote(text, safe="")),
        st.binary(max_size=12).map(lambda raw: quote(raw, safe="")),
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%"), max_size=12),
    )
    return "/" + "/".join(draw(st.lists(segment, min_size=0, max_size=8)))


@st.composite
def hostile_queries(draw: st.DrawFn) -> str:
    """A route that reads parameters, plus a query string of known and junk keys with hostile values."""
    route = draw(st.sampled_from(sorted(QUERY_PARAMS)))
    key = st.one_of(st.sampled_from(QUERY_PARAMS[route]), st.sampled_from(("", "%ff", "limit%00", "a[]", "__proto__")))
    value = st.one_of(
        st.sampled_from(("", "0", "-1", "1e400", "NaN", "inf", "9" * 40, "%ff%fe", "%00", "jsonl", "confirmed")),
        st.integers().map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.text(max_size=250).map(lambda text: quote(text, safe="")),
        st.binary(max_size=40).map(lambda raw: quote(raw, safe="")),
    )
    pairs = draw(st.lists(st.tuples(key, value), max_size=6))
    return route + "?" + "&".join(f"{k}={v}" for k, v in pairs)


@st.composite
def static_traversals(draw: st.DrawFn) -> str:
    """``/static/`` followed by climbing segments in every spelling, then a target outside."""
    climb = st.sampled_from(("..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "..%2f", "..%5c", "..\\", "%252e%252e",
                             "%c0%ae%c0%ae", "....", ".", "", "vendor"))  # fmt: skip
    target = st.sampled_from(("app.py", "view.py", "pyproject.toml", "etc/passwd", "%2fetc%2fpasswd", "README.md",
                              "app.js", "vendor/uPlot.LICENSE", ".git/config"))  # fmt: skip
    separator = st.sampled_from(("/", "%2f", "%2F", "\\", "%5c", "//"))
    parts = draw(st.lists(climb, min_size=1, max_size=12))
    sep = draw(separator)
    return "/static/" + sep.join(parts) + sep + draw(target)


def forged_cursor_case(cursor: str, query: str, status: str) -> tuple[bytes, tuple[int, ...]]:
    """A list request with a forged cursor and filters, and the status the node must answer."""
    target = "/api/entries?" + urlencode({"cursor": cursor, "q": query, "status": status, "limit": "2"})
    accepted = (not cursor or cursor_is_a_sort_key(cursor)) and status in ("", "confirmed", "unconfirmed", "rejected")
    if len(cursor) > 200 or len(query) > 200:  # MAX_QUERY_CHARS
        accepted = False
    return request_bytes("GET", target), (200,) if accepted else (400,)

