"""Helpers for tests that run real ``gossip-node`` processes on loopback."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

GOSSIP_NODE = str(Path(sys.executable).parent / "gossip-node")
_URL = re.compile(r"node API: (http://\S+?)/api/entries")


class NodeProcess:
    """One ``gossip-node`` subprocess; its output is collected on a thread."""

    def __init__(self, data_dir: Path, *args: str, topic: str = "countries of the world") -> None:
        self.data_dir = data_dir
        command = [GOSSIP_NODE, "--topic", topic, "--data-dir", str(data_dir), "--port", "0",
                   "--gossip-profile", "local", "--universe", "countries", *args]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_started(self, timeout_s: float = 60) -> str:
        """The node's base URL once it serves, e.g. http://127.0.0.1:41234."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = _URL.search(self.output.replace("\n", " "))
            if match:
                self.url = match.group(1)
                return self.url
            if self.process.poll() is not None:
                raise AssertionError(f"node exited with {self.process.returncode}:\n{self.output}")
            time.sleep(0.05)
        raise AssertionError(f"node did not start within {timeout_s}s:\n{self.output}")

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def members(self) -> dict[str, str]:
        """name -> state, as this node sees the cluster."""
        return {m["name"]: m["state"] for m in self.get("/api/members")["members"]}

    def name(self) -> str:
        return str(self.get("/healthz")["node"])

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def eventually(condition: Callable[[], bool], timeout_s: float = 30, message: str = "") -> None:
    """Poll ``condition`` until it holds (real processes: bounds are generous)."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as exc:  # a node still starting may refuse connections
            last_error = exc
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s}s: {message} (last error: {last_error})")
