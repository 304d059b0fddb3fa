"""Hostile command lines, config files, key files and environments (issue #14, part 4).

``gossip-node``, ``gossip-sim`` and ``sim-llm`` get bad options, broken ``--config`` TOML files
(syntax errors, wrong types, unknown keys, binary garbage, a directory, a FIFO, an endless
device, an unreadable file), missing or unusable key files, too-short keys and junk in
``SWARMLIST_*`` variables. Each must end with exit code 2 and one clear ``Error:`` line —
never a traceback, never a hang — and leave the working directory as it was (no data dir, no
report). The named table runs in-process through ``click.testing.CliRunner``; hypothesis then
throws generated argument lists and config files at ``gossip-node --print-config``, and two
real processes check what only a real process can (a FIFO opened by the OS, argv and
environment bytes that are not UTF-8).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import cli as node_cli
from node import sim_cli
from node.llm.sim import cli as sim_llm_cli

from tests import suite_report
from tests.suite_report import HOSTILE_INPUT as SECTION

COMMANDS: dict[str, click.Command] = {
    "gossip-node": node_cli.main,
    "gossip-sim": sim_cli.main,
    "sim-llm": sim_llm_cli.main,
}
GOSSIP_NODE = str(Path(sys.executable).parent / "gossip-node")
KEY = "0123456789abcdef0123"  # long enough for a cluster key
SIM_RUN = ("--nodes", "2", "--max-calls", "1", "--time-limit-s", "5")  # refused before it runs
NOT_UTF8 = "caf\udce9"  # what Python makes of the Latin-1 bytes b"caf\xe9" in argv or the environment
EXAMPLES = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Invocation:
    """One hostile invocation and the one-line error it must end with."""

    kind: str  # the table's row: "bad options", "config file", "key file", "env vars"
    command: str
    args: tuple[str, ...]
    message: str  # must appear in the Error: line
    env: Mapping[str, str | None] = field(default_factory=dict)
    exit_code: int = 2


@dataclass
class Tally:
    """Outcomes per kind of input; printed in every assertion message."""

    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)

    def add(self, kind: str, outcome: str, *, state_changed: bool, finding: str | None = None) -> None:
        row = self.rows.setdefault(kind, {"tried": 0, "accepted": 0, "rejected": 0, "crashed": 0,
                                          "wrong": 0, "state_changed": 0})  # fmt: skip
        row["tried"] += 1
        row[outcome] += 1
        row["state_changed"] += int(state_changed)
        if finding is not None:
            self.findings.append(finding)

    def total(self, column: str) -> int:
        return sum(row[column] for row in self.rows.values())

    def __str__(self) -> str:
        counts = "; ".join(f"{kind}: {row}" for kind, row in sorted(self.rows.items()))
        return f"{counts}\nfindings: {self.findings[:8]}"


def _error_line(output: str) -> str | None:
    """The last non-empty line when it is click's one-line ``Error: ...``."""
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines and lines[-1].startswith("Error: ") else None


def _snapshot(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def _invoke(command: str, args: list[str], env: Mapping[str, str | None], cwd: Path) -> tuple[Result, bool]:
    """Run ``command`` in-process in ``cwd``; the result and whether ``cwd`` changed."""
    before = _snapshot(cwd)
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        # OPENAI_API_KEY unset: "no key" must be what the node sees, whatever the CI has.
        result = CliRunner().invoke(COMMANDS[command], args, env={"OPENAI_API_KEY": None, **env})
    finally:
        os.chdir(previous)
    return result, _snapshot(cwd) != before


def _crash(result: Result) -> str | None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"{type(result.exception).__name__}: {result.exception}"
    if "Traceback" in result.output:
        return "a traceback in the output"
    return None


# --- the files the invocations point at ---------------------------------------------------------


@pytest.fixture
def hostile_files(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Broken config and key files, a directory, a FIFO; paths by name."""
    root = tmp_path / "files"
    root.mkdir()
    texts = {
        "syntax.toml": 'topic = "x\nport = = 3\n',
        "unknown.toml": 'topic = "x"\ncolour = "blue"\n',
        "nested.toml": 'topic = "x"\nconfig = "other.toml"\n',
        "port-text.toml": 'topic = "x"\nport = "abc"\n',
        "port-bool.toml": 'topic = "x"\nport = true\n',
        "concurrency-list.toml": 'topic = "x"\nconcurrency = [1, 2]\n',
        "concurrency-float.toml": 'topic = "x"\nconcurrency = 3.7\n',
        "topic-table.toml": "topic = {a = 1}\n",
        "llm-table.toml": 'topic = "x"\n[llm]\nmodel = "y"\n',
        "flag-text.toml": 'topic = "x"\nexit-when-done = "maybe"\n',
        "time-scale-nan.toml": 'topic = "x"\nsim-time-scale = nan\n',
        "seed-number.toml": 'topic = "x"\nseed = 5\n',
        "seed-url.toml": 'topic = "x"\nseed = ["http://a/b:80"]\n',
        "base-url.toml": 'topic = "x"\nllm = "openai"\nllm-base-url = "ftp://x"\n',
        "date.toml": 'topic = "x"\nport = 1979-05-27\n',
        "topic-escape.toml": 'topic = "a\\u001b[2Jb"\n',
        "nul-path.toml": 'topic = "x"\ndata-dir = "a\\u0000b"\n',
        "short.key": "short\n",
        "blank.key": "   \n\n",
        "latin1-api.key": "sk-clé\n",
    }
    for name, text in texts.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "binary.toml").write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    (root / "binary.key").write_bytes(os.urandom(32) + b"\xff")
    (root / "empty.key").write_bytes(b"")
    (root / "a-directory").mkdir()
    (root / "a-file").write_text("x", encoding="utf-8")
    os.mkfifo(root / "fifo")
    paths = {name: str(root / name) for name in [*texts, "binary.toml", "binary.key", "empty.key", "a-directory", "fifo"]}
    paths["missing"] = str(root / "missing.toml")
    paths["under-a-file"] = str(root / "a-file" / "x.toml")
    locked = root / "locked.toml"
    locked.write_text('topic = "x"\n', encoding="utf-8")
    locked.chmod(0)
    if not os.access(locked, os.R_OK):  # root reads anything: then the FIFO and directory cases stand in
        paths["locked"] = str(locked)
    yield paths
    locked.chmod(0o600)


def _table(files: dict[str, str]) -> list[Invocation]:
    node = "gossip-node"

    def config(name: str, message: str, *extra: str) -> Invocation:
        return Invocation("config file", node, ("--config", files[name], *extra, "--print-config"), message)

    def key(option: str, name: str, message: str) -> Invocation:
        return Invocation("key file", node, ("--topic", "x", option, files[name], "--print-config"), message)

    cases = [
        # bad options, gossip-node
        Invocation("bad options", node, ("--bogus",), "No such option"),
        Invocation("bad options", node, ("--print-config",), "Missing option '--topic'"),
        Invocation("bad options", node, ("--topic",), "requires an argument"),
        Invocation("bad options", node, ("--topic", "x", "--port", "99999"), "--port"),
        Invocation("bad options", node, ("--topic", "x", "--concurrency", "0"), "--concurrency"),
        Invocation("bad options", node, ("--topic", "x", "--llm", "gpt"), "--llm"),
        Invocation("bad options", node, ("--topic", "x", "--log-level", "loud"), "--log-level"),
        Invocation("bad options", node, ("--topic", "x", "--sim-time-scale", "nan"), "finite"),
        Invocation("bad options", node, ("--topic", "x", "--sim-time-scale", "inf"), "finite"),
        Invocation("bad options", node, ("--topic", "   ",), "--topic must be non-empty"),
        Invocation("bad options", node, ("--topic", "x" * 600), "at most 500"),
        Invocation("bad options", node, ("--topic", "a\x1b[2Jb"), "control characters"),
        Invocation("bad options", node, ("--topic", NOT_UTF8), "not valid UTF-8"),
        Invocation("bad options", node, ("--topic", "x", "--seed", "nonsense"), "--seed must be host:port"),
        Invocation("bad options", node, ("--topic", "x", "--seed", "a/b:80"), "--seed must be host:port"),
        Invocation("bad options", node, ("--topic", "x", "--seed", "h:0"), "--seed must be host:port"),
        Invocation("bad options", node, ("--topic", "x", "--advertise", "nonsense"), "--advertise must be host:port"),
        Invocation("bad options", node, ("--topic", "x", "--name", "n" * 300), "--name must be 1..128"),
        Invocation("bad options", node, ("--topic", "x", "--name", "a\tb"), "control characters"),
        Invocation("bad options", node, ("--topic", "x", "--host", "0.0.0.0"), "without a cluster key"),
        Invocation("bad options", node, ("--topic", "x", "--cluster-key", KEY, "--host", "a" * 300),
                   "not a host name"),
        Invocation("bad options", node, ("--topic", "x", "--llm", "openai"), "needs a key"),
        Invocation("bad options", node, ("--topic", "x", "--llm", "openai", "--llm-base-url", "ftp://x"),
                   "http(s) URL"),
        Invocation("bad options", node, ("--topic", "x", "--llm", "openai", "--llm-base-url",
                                         "http://127.0.0.1:9/v1", "--llm-model", " "), "--llm-model"),
        Invocation("bad options", node, ("--topic", "x", "--llm", "openai", "--llm-base-url",
                                         "http://127.0.0.1:9/v1", "--llm-api-key", "sk-clé"), "printable ASCII"),
        Invocation("bad options", node, ("--topic", "x", "--cluster-key", "short"), "at least 16 bytes"),
        # bad options, gossip-sim and sim-llm
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--nodes", "0"), "--nodes"),
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--loss", "nan"), "--loss"),
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--latency-ms", "nan"), "--latency-ms must be a finite"),
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--sample-interval-s", "nan"), "--sample-interval-s"),
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--llm-time-scale", "inf"), "--llm-time-scale"),
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--time-limit-s", "nan"), "--time-limit-s"),
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--kill", "node1@inf"), "NODE@SECONDS"),
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--topic", "a\x1bb"), "control characters"),
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--data-dir", files["fifo"]), "not a directory"),
        Invocation("bad options", "gossip-sim", (*SIM_RUN, "--report", files["under-a-file"]), "does not exist"),
        Invocation("bad options", "sim-llm", ("--port", "-1"), "--port"),
        Invocation("bad options", "sim-llm", ("--time-scale", "nan"), "finite"),
        Invocation("bad options", "sim-llm", ("--universe", "atlantis"), "atlantis"),
        Invocation("bad options", "sim-llm", ("--port", "0", "--host", "a" * 300), "cannot listen", exit_code=3),
        # config files
        config("syntax.toml", "is not valid TOML"),
        config("binary.toml", "is not UTF-8 text"),
        config("unknown.toml", "unknown option(s) colour"),
        config("nested.toml", "unknown option(s) config"),
        config("port-text.toml", "'abc' is not a valid integer"),
        config("port-bool.toml", "'true' is not a valid integer"),
        config("concurrency-list.toml", "concurrency takes one value"),
        config("concurrency-float.toml", "'3.7' is not a valid integer"),
        config("topic-table.toml", "must be a string, number or boolean"),
        config("llm-table.toml", "must be a string, number or boolean"),
        config("flag-text.toml", "'maybe' is not a valid boolean"),
        config("time-scale-nan.toml", "finite"),
        config("seed-number.toml", "--seed must be host:port"),
        config("seed-url.toml", "--seed must be host:port"),
        config("base-url.toml", "http(s) URL"),
        config("date.toml", "--port"),
        config("topic-escape.toml", "control characters"),
        config("nul-path.toml", "holds a NUL character"),
        config("a-directory", "is a directory"),
        config("fifo", "nothing to read"),
        config("missing", "No such file or directory"),
        config("under-a-file", "Not a directory"),
        Invocation("config file", node, ("--config", "/dev/zero", "--print-config"), "larger than"),
        # key files
        key("--cluster-key-file", "missing", "No such file or directory"),
        key("--cluster-key-file", "a-directory", "is a directory"),
        key("--cluster-key-file", "fifo", "nothing to read"),
        key("--cluster-key-file", "empty.key", "is empty"),
        key("--cluster-key-file", "blank.key", "is empty"),
        key("--cluster-key-file", "short.key", "at least 16 bytes"),
        key("--cluster-key-file", "binary.key", "not UTF-8 text"),
        key("--cluster-key-file", "under-a-file", "Not a directory"),
        Invocation("key file", node, ("--topic", "x", "--cluster-key-file", "/dev/urandom", "--print-config"),
                   "larger than"),
        key("--llm-api-key-file", "missing", "No such file or directory"),
        key("--llm-api-key-file", "fifo", "nothing to read"),
        key("--llm-api-key-file", "binary.key", "not UTF-8 text"),
        Invocation("key file", node, ("--topic", "x", "--llm", "openai", "--llm-api-key-file",
                                      files["latin1-api.key"], "--print-config"), "printable ASCII"),
        # environment variables
        *(Invocation("env vars", node, ("--topic", "x", "--print-config"), message, env={name: value})
          for name, value, message in [
              ("SWARMLIST_PORT", "abc", "--port"),
              ("SWARMLIST_CONCURRENCY", "1e99", "--concurrency"),
              ("SWARMLIST_EXIT_WHEN_DONE", "maybe", "--exit-when-done"),
              ("SWARMLIST_CLUSTER_KEY", "short", "at least 16 bytes"),
              ("SWARMLIST_CLUSTER_KEY", KEY + NOT_UTF8, "not valid UTF-8"),
              ("SWARMLIST_LLM", "gpt", "--llm"),
              ("SWARMLIST_SEEDS", "a b c", "--seed must be host:port"),
              ("SWARMLIST_SIM_TIME_SCALE", "nan", "finite"),
              ("SWARMLIST_HOST", "0.0.0.0", "without a cluster key"),
              ("SWARMLIST_HOST", NOT_UTF8, "not valid UTF-8"),
              ("SWARMLIST_NODE_NAME", "a\x07b", "control characters"),
              ("SWARMLIST_CONFIG_FILE", files["fifo"], "nothing to read"),
              ("SWARMLIST_CLUSTER_KEY_FILE", files["binary.key"], "not UTF-8 text"),
          ]),
        Invocation("env vars", node, ("--print-config",), "not valid UTF-8", env={"SWARMLIST_TOPIC": NOT_UTF8}),
        Invocation("env vars", node, ("--topic", "x", "--llm", "openai", "--llm-base-url", "http://127.0.0.1:9/v1",
                                      "--print-config"), "printable ASCII", env={"OPENAI_API_KEY": "sk-clé"}),
        Invocation("env vars", "gossip-sim", SIM_RUN, "--loss", env={"SWARMLIST_SIM_LOSS": "lots"}),
        Invocation("env vars", "gossip-sim", SIM_RUN, "--kill", env={"SWARMLIST_SIM_KILLS": "node1"}),
        Invocation("env vars", "gossip-sim", SIM_RUN, "not valid UTF-8", env={"SWARMLIST_SIM_TOPIC": NOT_UTF8}),
        Invocation("env vars", "gossip-sim", SIM_RUN, "--latency-ms", env={"SWARMLIST_SIM_LATENCY_MS": "nan"}),
        Invocation("env vars", "sim-llm", (), "--port", env={"SWARMLIST_SIM_PORT": "http"}),
        Invocation("env vars", "sim-llm", (), "finite", env={"SWARMLIST_SIM_TIME_SCALE": "inf"}),
    ]  # fmt: skip
    if "locked" in files:
        cases += [config("locked", "Permission denied"), key("--cluster-key-file", "locked", "Permission denied")]
    return cases


def test_every_hostile_invocation_ends_with_exit_2_and_one_clear_line(
    hostile_files: dict[str, str], tmp_path: Path
) -> None:
    """Bad options, config files, key files and env vars: the documented exit code, one Error: line."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    tally = Tally()
    for invocation in _table(hostile_files):
        result, changed = _invoke(invocation.command, list(invocation.args), invocation.env, cwd)
        label = f"{invocation.command} {' '.join(invocation.args)[:80]!r} env={dict(invocation.env)}"
        line = _error_line(result.output)
        if (crash := _crash(result)) is not None:
            tally.add(invocation.kind, "crashed", state_changed=changed, finding=f"{label}: {crash}")
        elif result.exit_code != invocation.exit_code or line is None or invocation.message not in line:
            finding = f"{label}: exit {result.exit_code}, last line {result.output.strip().splitlines()[-1:]}"
            tally.add(invocation.kind, "wrong", state_changed=changed, finding=finding)
        else:
            tally.add(invocation.kind, "rejected", state_changed=changed,
                      finding=f"{label}: changed the working directory" if changed else None)  # fmt: skip
    _record(tally)
    assert tally.total("rejected") == tally.total("tried") >= 90, str(tally)
    assert tally.total("crashed") == 0 and tally.total("state_changed") == 0, str(tally)


# --- generated input ------------------------------------------------------------------------------

_JUNK = ("", " ", "0", "-1", "1e309", "nan", "-inf", "99999999999999999999", "true", "maybe", "\x1b[2J",
         NOT_UTF8, "a/b:80", "[::1]:7946", "127.0.0.1:7946", "x" * 600, "../../etc/passwd", "sim", "openai",
         "http://127.0.0.1:9/v1", KEY, "café", "<script>alert(1)</script>")  # fmt: skip
_VALUE_OPTIONS = ("--topic", "--data-dir", "--host", "--port", "--advertise", "--seed", "--cluster-key",
                  "--gossip-profile", "--name", "--llm", "--universe", "--rng-seed", "--sim-time-scale",
                  "--llm-base-url", "--llm-model", "--llm-api-key", "--concurrency", "--items-per-call",
                  "--max-split-parts", "--verify-share", "--max-calls", "--log-level", "--log-format")  # fmt: skip
_FLAGS = ("--exit-when-done", "--partitioning", "--no-partitioning")
_FILE_OPTIONS = ("--config", "--cluster-key-file", "--llm-api-key-file")


def _argv(files: dict[str, str]) -> st.SearchStrategy[list[str]]:
    # No NUL (argv cannot carry one) and no "/" (a random path could name a device that blocks).
    text = st.text(max_size=12).filter(lambda value: "/" not in value and "\x00" not in value)
    values = st.one_of(st.sampled_from(_JUNK), text,
                       st.integers(-(2**70), 2**70).map(str), st.floats().map(str))  # fmt: skip
    pair = st.one_of(
        st.tuples(st.sampled_from(_VALUE_OPTIONS), values).map(list),
        st.sampled_from(_FLAGS).map(lambda flag: [flag]),
        st.tuples(st.sampled_from(_FILE_OPTIONS), st.sampled_from(sorted(files.values()))).map(list),
    )
    return st.lists(pair, max_size=6).map(lambda pairs: [token for pair in pairs for token in pair])


def test_generated_command_lines_are_accepted_or_refused_never_crash(
    hostile_files: dict[str, str], tmp_path: Path
) -> None:
    """Random options and junk values (print-config): exit 0 or a one-line exit 2, nothing written."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    tally = Tally()

    @EXAMPLES
    @given(argv=_argv(hostile_files), with_topic=st.booleans())
    def check(argv: list[str], with_topic: bool) -> None:
        args = [*(["--topic", "x"] if with_topic else []), *argv, "--print-config"]
        result, changed = _invoke("gossip-node", args, {}, cwd)
        _judge_generated(tally, "generated argv", args, result, changed)

    check()
    _record(tally)
    assert tally.total("crashed") == 0 and tally.total("wrong") == 0 and tally.total("state_changed") == 0, str(tally)
    assert tally.total("accepted") > 0 and tally.total("rejected") > 0, str(tally)


def _toml(value: Any) -> str:
    """``value`` as a TOML value (JSON's string escapes are TOML basic-string escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return "{" + ", ".join(f"{json.dumps(key)} = {_toml(item)}" for key, item in value.items()) + "}"


_toml_scalars = st.one_of(st.sampled_from(_JUNK).filter(lambda text: text != NOT_UTF8), st.text(max_size=12),
                          st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans())  # fmt: skip
_toml_values = st.one_of(_toml_scalars, st.lists(_toml_scalars, max_size=3),
                         st.dictionaries(st.text(max_size=5), _toml_scalars, max_size=2))  # fmt: skip
_config_keys = st.one_of(
    st.sampled_from([option[2:] for option in (*_VALUE_OPTIONS, *_FLAGS)] + ["seeds", "node_name", "config"]),
    st.text(max_size=10),
)


def test_generated_config_files_are_accepted_or_refused_never_crash(tmp_path: Path) -> None:
    """Random TOML documents of real and junk keys, any value type: exit 0 or a one-line exit 2."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    config = tmp_path / "generated.toml"
    tally = Tally()

    @EXAMPLES
    @given(document=st.dictionaries(_config_keys, _toml_values, max_size=6),
           raw_tail=st.one_of(st.just(b""), st.binary(max_size=8)), with_topic=st.booleans())  # fmt: skip
    def check(document: dict[str, Any], raw_tail: bytes, with_topic: bool) -> None:
        text = "".join(f"{json.dumps(key)} = {_toml(value)}\n" for key, value in document.items())
        config.write_bytes(text.encode("utf-8", "surrogatepass") + raw_tail)
        args = ["--config", str(config), *(["--topic", "x"] if with_topic else []), "--print-config"]
        result, changed = _invoke("gossip-node", args, {}, cwd)
        _judge_generated(tally, "generated config", [text[:200], repr(raw_tail)], result, changed)

    check()
    _record(tally)
    assert tally.total("crashed") == 0 and tally.total("wrong") == 0 and tally.total("state_changed") == 0, str(tally)
    assert tally.total("accepted") > 0 and tally.total("rejected") > 0, str(tally)


def _record(tally: Tally) -> None:
    """Add the counts to the suite's printed figures (a refusal with the wrong exit counts as crashed)."""
    suite_report.record(SECTION, "CLI and config", tried=tally.total("tried"), answered=tally.total("accepted"),
                        rejected=tally.total("rejected"), crashed=tally.total("crashed") + tally.total("wrong"),
                        state_changed=tally.total("state_changed"))  # fmt: skip


def _judge_generated(tally: Tally, kind: str, args: list[str], result: Result, changed: bool) -> None:
    label = f"{args!r}"[:300]
    if (crash := _crash(result)) is not None:
        tally.add(kind, "crashed", state_changed=changed, finding=f"{label}: {crash}")
    elif result.exit_code == 0:
        tally.add(kind, "accepted", state_changed=changed, finding=f"{label}: wrote files" if changed else None)
    elif result.exit_code == 2 and _error_line(result.output) is not None:
        tally.add(kind, "rejected", state_changed=changed, finding=f"{label}: wrote files" if changed else None)
    else:
        tally.add(kind, "wrong", state_changed=changed, finding=f"{label}: exit {result.exit_code} {result.output[-200:]!r}")


# --- real processes -----------------------------------------------------------------------------------


def _run_node(args: list[str], cwd: Path, env_bytes: Mapping[bytes, bytes] | None = None) -> subprocess.CompletedProcess[bytes]:
    env: dict[bytes, bytes] = {key.encode(): value.encode() for key, value in os.environ.items()
                               if not key.startswith("SWARMLIST_")}  # fmt: skip
    env.update(env_bytes or {})
    return subprocess.run([GOSSIP_NODE, *args], check=False, cwd=cwd, env=env, capture_output=True, timeout=60)


@pytest.mark.slow
def test_a_real_node_refuses_a_fifo_config_and_non_utf8_environment_without_running(tmp_path: Path) -> None:
    """A FIFO --config used to block forever; a non-UTF-8 SWARMLIST_TOPIC crashed after creating the data dir."""
    fifo = tmp_path / "node.toml"
    os.mkfifo(fifo)
    data_dir = tmp_path / "data"
    runs = [
        (_run_node(["--config", str(fifo), "--port", "0", "--data-dir", str(data_dir)], tmp_path), "nothing to read"),
        (_run_node(["--port", "0", "--data-dir", str(data_dir)], tmp_path, {b"SWARMLIST_TOPIC": b"caf\xe9"}),
         "not valid UTF-8"),
    ]  # fmt: skip
    for run, message in runs:
        stderr = run.stderr.decode("utf-8", "replace")
        assert run.returncode == 2 and "Traceback" not in stderr, stderr
        assert message in stderr.strip().splitlines()[-1], stderr
    assert not data_dir.exists()
