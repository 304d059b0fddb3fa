"""``gossip-node``: run one swarmlist node. Parses options, builds a ``NodeConfig``, runs it.

Options come from the command line, ``SWARMLIST_*`` environment variables and
``--config FILE.toml``, in that order of precedence, then the defaults.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from node.config import LLMSettings, NodeConfig
from node.cli_options import budget_config, budget_options, partition_config, verification_policy, work_options
from node.errors import ConfigError, NodeError
from node.fault_injection import FaultInjector
from node.llm.openai_config import resolve_api_key
from node.log_format import configure_logging
from node.llm.sim.universe import available_universes
from node.producer import ProducerConfig
from node.runtime import CannotListen, Progress, run_node
from node.status_cli import WithStatusSubcommand

__all__ = ["main", "EXIT_OK", "EXIT_CONFIG", "EXIT_DATA_DIR", "EXIT_CANNOT_LISTEN"]

EXIT_OK = 0
EXIT_CONFIG = 2  # bad options or config file (click's own usage errors use 2 too)
EXIT_DATA_DIR = 3  # the data dir is locked, of another topic, corrupt or newer
EXIT_CANNOT_LISTEN = 4  # the node's port is taken or not bindable

_MAX_CONFIG_BYTES = 1 << 20  # a --config file; far more than every option takes
_MAX_SECRET_BYTES = 64 << 10  # a key file


def _load_config_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Read --config FILE.toml into click's default_map, so CLI and env still override it.

    Keys are option names (``seed``, ``items-per-call``; ``_`` for ``-`` works too). Every
    value goes to click as the text it would have on the command line, so a value of the
    wrong type gets click's own clear message, never a traceback.
    """
    if value is None:
        return None
    try:
        data = tomllib.loads(_read_bounded(value, _MAX_CONFIG_BYTES).decode("utf-8-sig"))  # a BOM is harmless
    except OSError as exc:
        raise click.BadParameter(f"cannot read {value}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise click.BadParameter(f"{value} is not UTF-8 text (TOML must be): byte {exc.start}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise click.BadParameter(f"{value} is not valid TOML: {exc}") from exc
    options: dict[str, Any] = {}
    unknown = []
    by_name = _options_by_name(ctx.command)
    for key, item in data.items():
        option = by_name.get(key.replace("-", "_"))
        if option is None:
            unknown.append(key)
        else:
            options[option.name or key] = _as_command_line(value, key, item, option)
    if unknown:  # keys are shown as typed, unless that would break the one-line message
        shown = (key if key.isprintable() else repr(key) for key in sorted(unknown))
        raise click.BadParameter(f"{value}: unknown option(s) {', '.join(shown)}")
    ctx.default_map = {**(ctx.default_map or {}), **options}
    return value


def _options_by_name(command: click.Command) -> dict[str, click.Option]:
    """The options a config file may set, by their long names and parameter names."""
    found: dict[str, click.Option] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in (None, "config_file"):
            continue
        for name in [param.name, *(opt.lstrip("-") for opt in param.opts if opt.startswith("--"))]:
            found[(name or "").replace("-", "_")] = param
    return found


def _as_command_line(path: str, key: str, item: object, option: click.Option) -> object:
    """A TOML value as click would get it from the command line (a list for repeatable options)."""
    items = item if isinstance(item, list) else [item]
    if isinstance(item, list) and not option.multiple:
        raise click.BadParameter(f"{path}: {key} takes one value, got a list")
    if any(isinstance(one, (dict, list)) for one in items):
        raise click.BadParameter(f"{path}: {key} must be a string, number or boolean, not a table or list")
    texts = [str(one).lower() if isinstance(one, bool) else str(one) for one in items]
    if any("\x00" in text for text in texts):  # argv and env cannot carry one; paths and C APIs choke on it
        raise click.BadParameter(f"{path}: {key} holds a NUL character")
    return texts if option.multiple else texts[0]


def _read_bounded(path: str, max_bytes: int) -> bytes:
    """The bytes of ``path``; ``OSError`` (with a ``strerror`` to show) if it cannot be one of our files.

    Opening a FIFO waits for a writer — forever if none comes — so it is opened non-blocking,
    then read as usual: a pipe with a writer (``--config <(...)``) still works, one without
    reads as nothing, which is refused. A device such as /dev/zero is cut off at ``max_bytes``.
    """
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, "it is a directory")
        os.set_blocking(handle.fileno(), True)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(errno.EFBIG, f"it is larger than {max_bytes:,} bytes")
    if not data and stat.S_ISFIFO(mode):
        raise OSError(errno.ENODATA, "it is a FIFO or pipe with nothing to read (no writer)")
    return data


def _read_secret_file(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        secret = _read_bounded(path, _MAX_SECRET_BYTES).decode("utf-8").strip()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {what} file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise click.BadParameter(f"{what} file {path} is not UTF-8 text (use a text secret, e.g. hex)") from exc
    if not secret:
        raise click.BadParameter(f"{what} file {path} is empty")
    return secret


def _progress_table(progress: Progress) -> Table:
    table = Table(title=f"swarmlist node {progress.node}", show_header=False)
    estimate = progress.estimate
    rows = [
        ("entries", f"{progress.entries:,}"),
        ("LLM calls", f"{progress.calls:,} ({progress.calls_failed} failed)"),
        ("new per call", f"{progress.new_per_call:.1f}"),
        ("duplicate share", f"{progress.duplicate_share:.0%}"),
        ("estimated total", f"{estimate.estimate:,.0f} ({estimate.low:,.0f}–{estimate.high:,.0f})"),
        ("estimated remaining", f"{estimate.remaining:,.0f}"),
        ("tokens", f"{progress.tokens:,}"),
    ]
    if progress.done_reason:
        rows.append(("stopped", progress.done_reason))
    elif progress.paused:
        rows.append(("production paused", progress.paused))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _progress_line(progress: Progress) -> str:
    estimate = progress.estimate
    return (
        f"entries={progress.entries} calls={progress.calls} failed={progress.calls_failed} "
        f"new_per_call={progress.new_per_call:.1f} dup_share={progress.duplicate_share:.2f} "
        f"est_total={estimate.estimate:.0f} est_remaining={estimate.remaining:.0f} tokens={progress.tokens}"
        + (f" paused={progress.paused!r}" if progress.paused else "")
    )


@click.command(cls=WithStatusSubcommand, context_settings={"auto_envvar_prefix": "SWARMLIST", "show_default": True},
               epilog="gossip-node status --peer HOST:PORT prints a cluster summary from any node (--help there).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), callback=_load_config_file,
              is_eager=True, expose_value=True, help="TOML file of options (CLI and env override it).")  # fmt: skip
@click.option("--topic", required=True, help="What to enumerate, e.g. 'cities of Europe'.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"),
              help="State (SQLite) and list.jsonl.")  # fmt: skip
@click.option("--host", default="127.0.0.1", help="Address to bind the node's port (gossip, API, page).")
@click.option("--port", type=click.IntRange(0, 65535), default=7070, help="The node's one port (0 = any free port).")
@click.option("--advertise", default=None, help="host:port peers should use to reach this node (default: the bound address).")
@click.option("--web-port", type=click.IntRange(0, 65535), default=None,
              help="Serve the page and API on their own port (0 = any free one) instead of the gossip port.")
@click.option("--web-host", default="127.0.0.1", help="Address the --web-port listener binds.")
@click.option("--seed", "seeds", multiple=True, help="host:port of a member to join through (repeatable; none = new cluster).")
@click.option("--cluster-key", default=None, help="Cluster secret for HMAC (prefer --cluster-key-file: argv is visible in ps).")
@click.option("--cluster-key-file", type=click.Path(dir_okay=False), default=None, help="File holding the cluster secret.")
@click.option("--gossip-profile", type=click.Choice(["lan", "local"]), default="lan",
              help="Gossip timings: memberlist's LAN defaults, or 5x quicker for one machine.")  # fmt: skip
@click.option("--name", "node_name", default=None, help="Node name (default: stored one, or <host>-<hex>).")
@click.option("--llm", type=click.Choice(["sim", "openai"]), default="sim", help="LLM backend.")
@click.option("--universe", type=click.Choice(available_universes()), default="countries",
              help="The simulated LLM's universe (with --llm sim).")  # fmt: skip
@click.option("--rng-seed", type=int, default=0, help="The simulated LLM's seed.")
@click.option("--sim-time-scale", type=click.FloatRange(min=0), default=0.05,
              help="Simulated latency multiplier (1 = a real model's pace, 0 = instant).")  # fmt: skip
@click.option("--llm-base-url", default=None, help="OpenAI-compatible endpoint root, e.g. http://127.0.0.1:8000/v1.")
@click.option("--llm-model", default="gpt-4o-mini", help="Model name at the endpoint.")
@click.option("--llm-api-key", default=None, help="API key (prefer --llm-api-key-file or OPENAI_API_KEY: argv is visible in ps).")
@click.option("--llm-api-key-file", type=click.Path(dir_okay=False), default=None, help="File holding the API key.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=2, help="Concurrent LLM calls.")
@click.option("--items-per-call", type=click.IntRange(1, 200), default=20, help="Entries asked for per call.")
@work_options
@budget_options
@click.option("--max-calls", type=click.IntRange(min=0), default=0, help="Enumeration calls this node may make (0 = until exhausted); split and verification calls come on top.")
@click.option("--exit-when-done", is_flag=True, help="Exit 0 once exhausted or out of budget, list written.")
@click.option("--observation-detail-days", type=click.FloatRange(min=0), default=30.0,
              help="Keep what the model wrote per call (the 'why dropped' view) this many days; its counts, "
                   "which the estimate needs, are kept for ever (0 = keep the detail for ever).")  # fmt: skip
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--print-config", is_flag=True, help="Print the resulting configuration and exit.")
def main(**options: Any) -> None:
    """Run one swarmlist node: enumerate --topic with an LLM until it is exhausted."""
    try:
        config = _build_config(options)
        faults = FaultInjector.from_environment(os.environ, config.data_dir)  # tests only: SWARMLIST_FAULTS
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    if options["print_config"]:
        click.echo(repr(config))
        click.echo(_masked_secrets(config))
        return
    configure_logging(options["log_level"], options["log_format"])
    console = Console(stderr=True)
    json_logs = options["log_format"] == "json"  # then every line on stderr is a JSON log record
    try:
        sys.exit(_run(config, console, faults, json_logs=json_logs))
    except (CannotListen, ConfigError, NodeError) as exc:
        if json_logs:
            logging.getLogger("gossip-node").error("%s", exc)
        else:
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True)  # one line: rich wraps at 80 columns off a terminal
        # ConfigError here: an option the node could only judge once bound (nothing to advertise)
        sys.exit(EXIT_CANNOT_LISTEN if isinstance(exc, CannotListen) else
                 EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_DATA_DIR)  # fmt: skip


def _masked_secrets(config: NodeConfig) -> str:
    """Whether each secret is set, never its value (the config's repr leaves them out)."""
    key = f"****** ({len(config.cluster_key)} bytes)" if config.cluster_key else "none (open cluster)"
    api_key = "******" if config.llm.api_key else "none (OPENAI_API_KEY, if set, when --llm openai)"
    return f"keys (masked): cluster_key={key}; llm_api_key={api_key}"


def _refuse_undecodable(ctx: click.Context, options: dict[str, Any]) -> None:
    """A text option holding bytes that were not UTF-8 (from argv or a SWARMLIST_* variable) is refused now.

    Python keeps such bytes as lone surrogates, which every encoder (SQLite, HMAC keys, HTTP
    headers) refuses later, with a traceback. Paths are exempt: any bytes make a file name.
    """
    for param in ctx.command.params:
        if param.name is None or isinstance(param.type, click.Path):
            continue
        value = options.get(param.name)
        for text in value if isinstance(value, tuple) else (value,):
            if isinstance(text, str) and any("\ud800" <= char <= "\udfff" for char in text):
                raise click.BadParameter("not valid UTF-8 text", ctx=ctx, param=param)


def _build_config(options: dict[str, Any]) -> NodeConfig:
    _refuse_undecodable(click.get_current_context(), options)
    api_key = options["llm_api_key"] or _read_secret_file(options["llm_api_key_file"], "API key")
    config = _node_config(options, api_key)
    if config.llm.kind == "openai":  # OpenAI's own API needs a key: say so now, not at the first call
        resolve_api_key(config.llm.api_key, base_url=config.llm.base_url)
    return config


def _node_config(options: dict[str, Any], api_key: str | None) -> NodeConfig:
    return NodeConfig(
        topic=options["topic"],
        data_dir=options["data_dir"],
        node_name=options["node_name"],
        host=options["host"],
        port=options["port"],
        advertise=options["advertise"],
        seeds=tuple(options["seeds"]),
        web_port=options["web_port"],
        web_host=options["web_host"],
        cluster_key=_cluster_key(options),
        gossip_profile=options["gossip_profile"],
        llm=LLMSettings(
            kind=options["llm"],
            universe=options["universe"],
            rng_seed=options["rng_seed"],
            time_scale=options["sim_time_scale"],
            base_url=options["llm_base_url"],
            model=options["llm_model"],
            api_key=api_key,
        ),
        producer=ProducerConfig(
            concurrency=options["concurrency"],
            items_per_call=options["items_per_call"],
            max_calls=options["max_calls"],
        ),
        partitioning=partition_config(options),
        verification=verification_policy(options),
        budget=budget_config(options),
        exit_when_done=options["exit_when_done"],
        observation_detail_days=options["observation_detail_days"],
    )


def _cluster_key(options: dict[str, Any]) -> bytes | None:
    key = options["cluster_key"] or _read_secret_file(options["cluster_key_file"], "cluster key")
    return key.encode("utf-8") if key else None


def _run(
    config: NodeConfig, console: Console, faults: FaultInjector | None = None, *, json_logs: bool = False
) -> int:
    log = logging.getLogger("gossip-node")

    def say(text: str) -> None:
        if json_logs:
            log.info("%s", text)
        else:
            console.print(text, soft_wrap=True)

    def listening(url: str) -> None:
        say(f"page: {url}")
        say(f"node API: {url}api/entries  (members: {url}api/members, health: {url}healthz)")

    if console.is_terminal and not json_logs:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            result = asyncio.run(
                run_node(config, on_progress=lambda p: live.update(_progress_table(p)), on_listening=listening,
                         faults=faults)
            )
    else:
        result = asyncio.run(
            run_node(
                config,
                on_progress=lambda p: log.info("%s", _progress_line(p)),
                progress_interval_s=5.0,
                on_listening=listening,
                faults=faults,
            )
        )
    say(f"stopped: {result.reason}; {result.entries} entries in {config.data_dir / 'list.jsonl'}")
    return EXIT_OK
