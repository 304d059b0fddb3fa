"""``sim-llm``: serve the simulated LLM as an OpenAI-compatible HTTP server."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import click
from aiohttp import web
from rich.console import Console
from rich.table import Table

from node.errors import ConfigError
from node.llm.sim.model import SimulatedModel
from node.llm.sim.params import SimParams
from node.llm.sim.server import create_sim_app
from node.llm.sim.universe import available_universes, load_universe

__all__ = ["main", "SimServerConfig", "run_sim_server"]

EXIT_CANNOT_LISTEN = 3


class CannotListen(click.ClickException):
    """The server could not bind its address."""

    exit_code = EXIT_CANNOT_LISTEN


@dataclass(frozen=True, kw_only=True)
class SimServerConfig:
    host: str  # address to bind
    port: int  # TCP port; 0 = any free port
    universe: str  # which universe the model answers from
    seed: int  # reproduces every answer
    time_scale: float  # multiplies simulated latency; 0 = answer at once


def params_table(params: SimParams, title: str) -> Table:
    """The simulator's parameters as a table, printed beside every result that uses them."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for name, value in params.describe().items():
        table.add_row(name, f"{value:g}" if isinstance(value, float) else str(value))
    return table


async def run_sim_server(config: SimServerConfig, console: Console) -> None:
    """Serve until SIGINT/SIGTERM."""
    params = SimParams().replace(time_scale=config.time_scale)
    model = SimulatedModel(load_universe(config.universe), params, knowledge_seed=config.seed)
    # Handlers first: a supervisor that stops the server as soon as it printed its URL must
    # get a clean shutdown, not the default SIGTERM death.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_sim_app(model, seed=config.seed), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name the resolver cannot encode
        await runner.cleanup()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CannotListen(f"cannot listen on {config.host!r}:{config.port}: {reason}") from exc
    port = runner.addresses[0][1] if runner.addresses else config.port
    console.print(params_table(params, f"simulated LLM parameters (seed {config.seed})"))
    # soft_wrap: the URL line stays one line on a narrow or non-terminal output.
    console.print(
        f"sim-llm: {model!r}\nserving OpenAI-compatible API on [bold]http://{config.host}:{port}/v1[/bold] "
        f"(model id sim-{config.universe}); Ctrl-C stops",
        soft_wrap=True,
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command(context_settings={"auto_envvar_prefix": "SWARMLIST_SIM", "show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, help="TCP port (0 = any free port).")
@click.option(
    "--universe",
    type=click.Choice(available_universes()),
    default="countries",
    help="The real-data universe the model answers from.",
)
@click.option("--rng-seed", type=int, default=0, help="Seed: the same seed and requests give the same answers.")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0.0),
    default=1.0,
    help="Multiplies the simulated latency (0 = answer at once).",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
def main(host: str, port: int, universe: str, rng_seed: int, time_scale: float, log_level: str) -> None:
    """Serve the simulated LLM as an OpenAI-compatible endpoint (POST /v1/chat/completions)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        SimParams().replace(time_scale=time_scale)  # refuse nan/inf here, as usage, not in the server
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--time-scale'") from exc
    config = SimServerConfig(host=host, port=port, universe=universe, seed=rng_seed, time_scale=time_scale)
    asyncio.run(run_sim_server(config, Console()))
