"""Tests for node.llm.sim.cli: ``sim-llm`` serves a plain ``openai`` client, refuses bad input.

The serving test runs the installed console script as a real process; the bad-input tests
invoke the click command in-process (same parsing and exit codes, no interpreter start-up).
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner
from openai.types.chat import ChatCompletionMessageParam

from node.llm.sim.cli import EXIT_CANNOT_LISTEN, main
from node.llm.sim.universe import available_universes, load_universe
from node.normalize import entry_id
from node.parser import parse_answer
from tests.node.llm.sim.conftest import enumeration_messages

SIM_LLM = Path(sys.executable).parent / "sim-llm"
URL_LINE = re.compile(r"(http://127\.0\.0\.1:(\d+)/v1)")
START_TIMEOUT_S = 20.0


class SimLLMProcess:
    """A running ``sim-llm``; its stdout is read by a thread so the pipe never fills."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(SIM_LLM), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def base_url(self) -> str:
        """Waits for the line announcing the URL (the port chosen by --port 0)."""
        while True:
            line = self._lines.get(timeout=START_TIMEOUT_S)
            if line is None:
                stderr = self.process.stderr.read() if self.process.stderr else ""
                raise AssertionError(f"sim-llm exited before serving: {''.join(self.output)}{stderr}")
            self.output.append(line)
            match = URL_LINE.search(line)
            if match:
                return match.group(1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        finally:
            self._reader.join(timeout=5)  # it reads to EOF; closing under it would raise there
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def sim_llm() -> Iterator[SimLLMProcess]:
    server = SimLLMProcess("--port", "0", "--universe", "countries", "--time-scale", "0", "--rng-seed", "0")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.stop()


@pytest.mark.slow
def test_sim_llm_serves_a_plain_openai_client_and_exits_cleanly(sim_llm: SimLLMProcess) -> None:
    """Whole and streamed answers are lists of real countries; SIGTERM stops it with status 0."""
    base_url = sim_llm.base_url()
    system, user = enumeration_messages("countries of the world", ["Europe"], count=10)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": system.content},
        {"role": "user", "content": user.content},
    ]
    country_ids = load_universe("countries").id_of_any_name()
    with openai.OpenAI(base_url=base_url, api_key="x") as client:
        assert [model.id for model in client.models.list()] == ["sim-countries"]

        completion = client.chat.completions.create(model="sim", messages=messages)
        text = completion.choices[0].message.content or ""
        entries = parse_answer(text).entries
        assert len(entries) >= 7, text
        # Real countries, bar the odd invented name or typo the realistic model makes.
        assert sum(entry_id(entry) in country_ids for entry in entries) >= 0.7 * len(entries), entries
        assert completion.usage is not None and completion.usage.completion_tokens > 0

        stream = client.chat.completions.create(
            model="sim", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        deltas = []
        usage = None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                deltas.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        streamed = parse_answer("".join(deltas)).entries
        assert len(deltas) > 3 and len(streamed) >= 7
        assert sum(entry_id(entry) in country_ids for entry in streamed) >= 0.7 * len(streamed), streamed
        assert usage is not None and usage.total_tokens > 0

    assert sim_llm.stop() == 0


def test_unknown_universe_exits_2_listing_the_universes() -> None:
    """--universe atlantis is a usage error naming every universe there is."""
    result = CliRunner().invoke(main, ["--universe", "atlantis"])
    assert result.exit_code == 2
    assert "atlantis" in result.output
    for name in available_universes():
        assert name in result.output


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_bad_port_exits_2(port: str) -> None:
    """A port outside 0-65535, or not a number, is a usage error."""
    result = CliRunner().invoke(main, ["--port", port])
    assert result.exit_code == 2
    assert "--port" in result.output


def test_port_in_use_exits_3_with_cannot_listen() -> None:
    """A port another socket holds makes sim-llm exit with EXIT_CANNOT_LISTEN and say why."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = CliRunner().invoke(main, ["--port", str(port), "--time-scale", "0"])
    assert result.exit_code == EXIT_CANNOT_LISTEN == 3
    assert "cannot listen" in result.output
    assert str(port) in result.output
