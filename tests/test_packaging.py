"""The wheel: it ships the web assets and the simulator's data, and installed into a fresh venv
its commands work and a node serves its page — from the venv, not from this source tree.

The wheel is built from a copy of the source tree (so the checkout gets no ``build/``), its
dependencies are gathered into a local wheelhouse (pip's cache and the index serve them), and
the fresh venv installs from that wheelhouse alone (``--no-index``). Every command runs
from a directory outside the repository with no ``PYTHONPATH``, and the imported packages are
checked to live in the venv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import suite_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("gossip", "node", "partitioning", "webui")
# Files the node reads at run time, by their directory in the source tree: each must be in the wheel.
DATA_DIRS = ("webui/static", "node/llm/sim/data")
COMMANDS = ("gossip-node", "sim-llm", "gossip-sim")
SECTION = "ops: packaging"


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    workdir: Path  # outside the repository: the cwd of every command

    @property
    def env(self) -> dict[str, str]:
        """The environment of a shell that activated the venv, with nothing pointing at the repo."""
        env = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not key.startswith("SWARMLIST_")}  # fmt: skip
        return {**env, "PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(self.venv)}

    def run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, cwd=self.workdir, env=self.env)


def _timed(what: str, *args: str | Path, cwd: Path | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=240, cwd=cwd)
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = (sys.executable, "-m", "pip")
    build_s = _timed("pip wheel", *pip, "wheel", source, "--no-deps", "-w", root / "dist", "-q")
    (wheel,) = (root / "dist").glob("swarmlist-*.whl")
    wheelhouse_s = _timed("the wheelhouse", *pip, "wheel", wheel, "-w", root / "wheelhouse", "-q")
    venv = root / "venv"
    # No pip inside the venv (ensurepip costs seconds): this pip installs into it (--python), from
    # the wheelhouse alone, without byte-compiling scipy's thousands of files (the time it would take).
    venv_s = _timed("python -m venv", sys.executable, "-m", "venv", "--without-pip", venv)
    install_s = _timed("pip install", *pip, "--python", venv / "bin" / "python", "install", "-q", "--no-compile",
                       "--no-index", "--find-links", root / "wheelhouse", wheel)  # fmt: skip
    suite_report.record(SECTION, "wheel built and installed", wheel_kb=round(wheel.stat().st_size / 1024),
                        build_s=round(build_s, 1), wheelhouse_s=round(wheelhouse_s, 1),
                        venv_s=round(venv_s, 1), install_s=round(install_s, 1))  # fmt: skip
    workdir = root / "elsewhere"
    workdir.mkdir()
    return Installed(wheel, venv, workdir)


def test_the_wheel_ships_every_asset_the_page_and_the_simulator_read(installed: Installed) -> None:
    """Every file under webui/static and node/llm/sim/data is in the wheel, and the three commands are declared."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = next(wheel.read(name).decode() for name in names if name.endswith("entry_points.txt"))
    for directory in DATA_DIRS:
        expected = {path.relative_to(REPO).as_posix() for path in (REPO / directory).rglob("*")
                    if path.is_file() and "__pycache__" not in path.parts}  # fmt: skip
        assert expected and expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert {"webui/static/index.html", "node/llm/sim/data/countries.json.gz",
            "node/llm/sim/data/european-cities.json.gz"} <= names  # fmt: skip
    assert not any(name.startswith(("tests/", "scripts/", "docs/")) for name in names)
    for command in COMMANDS:
        assert f"{command} = " in entry_points


def test_the_commands_of_the_installed_wheel_run_from_outside_the_repository(installed: Installed) -> None:
    """--help of each command works, and the packages it imports are the venv's, not this tree's."""
    for command in COMMANDS:
        result = installed.run(str(installed.venv / "bin" / command), "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, result.stderr
    probe = installed.run(str(installed.venv / "bin" / "python"), "-c",
                          "import json, gossip, node, partitioning, webui, node.llm.sim.universe as u; "
                          "print(json.dumps({'files': [m.__file__ for m in (gossip, node, partitioning, webui, u)], "
                          "'universes': {name: len(u.load_universe(name).items) for name in u.available_universes()}}))")  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    for file in found["files"]:
        assert Path(file).is_relative_to(installed.venv / "lib") and not Path(file).is_relative_to(REPO), file
    assert set(found["universes"]) >= {"countries", "european-cities"} and min(found["universes"].values()) > 100


def test_print_config_of_the_installed_node_shows_no_secret(installed: Installed, tmp_path: Path) -> None:
    """--print-config hides the cluster key and the API key, from the command line, a file or the environment."""
    key_file = tmp_path / "cluster.key"
    key_file.write_text("file-held-cluster-secret-0123456789\n", encoding="utf-8")
    node = str(installed.venv / "bin" / "gossip-node")
    by_argument = installed.run(node, "--topic", "x", "--cluster-key", "argv-cluster-secret-0123456789",
                                "--llm-api-key", "sk-argv-api-secret", "--print-config")  # fmt: skip
    by_file = installed.run(node, "--topic", "x", "--cluster-key-file", str(key_file), "--print-config")
    assert by_argument.returncode == 0 and by_file.returncode == 0, by_argument.stderr + by_file.stderr
    for output in (by_argument.stdout, by_file.stdout):
        assert "topic='x'" in output  # the configuration is printed...
        assert "secret" not in output  # ...without any secret in it
        assert "cluster_key=****** (" in output  # but saying the key is set


@pytest.fixture
def node_process(installed: Installed, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [str(installed.venv / "bin" / "gossip-node"), "--topic", "countries of the world", "--data-dir",
         str(tmp_path / "data"), "--port", "0", "--universe", "countries", "--sim-time-scale", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=installed.workdir, env=installed.env,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def test_a_node_of_the_installed_wheel_serves_its_page_assets_and_entries(installed: Installed,
                                                                           node_process: subprocess.Popen[str]) -> None:  # fmt: skip
    """gossip-node from the venv: GET / and the static files answer 200, and the simulated LLM,
    reading its universe from the installed data, produces entries."""
    started = time.perf_counter()
    assert node_process.stdout is not None
    url = ""
    for line in node_process.stdout:  # the node prints its URL once it serves
        if "node API: " in line:
            url = line.split("node API: ", 1)[1].split("/api/entries", 1)[0]
            break
    assert url.startswith("http://127.0.0.1:"), "the node exited before serving"
    serving_s = time.perf_counter() - started
    cmdline = Path(f"/proc/{node_process.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0].decode().startswith(str(installed.venv / "bin" / "python"))  # the venv's interpreter runs it
    status, content_type, page = _get(url + "/")
    assert status == 200 and content_type.startswith("text/html") and b"<html" in page.lower()
    for asset in ("app.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"):
        status, _, body = _get(f"{url}/static/{asset}")
        assert status == 200 and body == (REPO / "webui" / "static" / asset).read_bytes(), asset
    deadline = time.monotonic() + 60
    total = 0
    while total == 0 and time.monotonic() < deadline:
        total = json.loads(_get(url + "/api/entries?limit=1")[2])["total"]
        time.sleep(0.2)
    assert total > 0, "the simulated LLM found no entry"
    suite_report.record(SECTION, "installed node", serving_s=round(serving_s, 1), entries_seen=total)


# ------------------------------------------------------------------ the systemd unit

UNIT = REPO / "docs" / "deploy" / "swarmlist-node.service"
EXAMPLE_CONFIG = REPO / "docs" / "deploy" / "node.toml"
DEV_GOSSIP_NODE = Path(sys.executable).parent / "gossip-node"


def _exec_start(unit: str) -> list[str]:
    """The unit's ExecStart as an argument list (continuation lines joined, as systemd reads them)."""
    joined = unit.replace("\\\n", " ")
    (line,) = [line for line in joined.splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_the_unit_starts_gossip_node_with_options_that_exist() -> None:
    """Every --option of the unit's ExecStart is one `gossip-node --help` lists."""
    argv = _exec_start(UNIT.read_text(encoding="utf-8"))
    assert Path(argv[0]).name == "gossip-node"
    used = {arg.split("=", 1)[0] for arg in argv[1:] if arg.startswith("--")}
    assert {"--config", "--data-dir", "--cluster-key-file"} <= used
    help_text = subprocess.run([str(DEV_GOSSIP_NODE), "--help"], capture_output=True, text=True, timeout=60).stdout
    listed = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))
    assert used <= listed, f"not gossip-node options: {sorted(used - listed)}"


def test_the_unit_and_its_example_config_make_a_valid_node_configuration(tmp_path: Path) -> None:
    """ExecStart, with the example node.toml and key files in place, passes gossip-node's own checks."""
    argv = _exec_start(UNIT.read_text(encoding="utf-8"))
    for option in ("--cluster-key-file", "--llm-api-key-file"):
        (tmp_path / option).write_text("an-example-secret-0123456789abcdef\n", encoding="utf-8")
    substitute = {"--config": str(EXAMPLE_CONFIG), "--data-dir": str(tmp_path / "data"),
                  "--cluster-key-file": str(tmp_path / "--cluster-key-file"),
                  "--llm-api-key-file": str(tmp_path / "--llm-api-key-file")}  # fmt: skip
    args = [substitute.get(previous, arg) for previous, arg in zip(["", *argv[1:-1]], argv[1:], strict=True)]
    result = subprocess.run([str(DEV_GOSSIP_NODE), *args, "--print-config"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "host='0.0.0.0'" in result.stdout and "advertise='node1.example.net:7070'" in result.stdout
    assert "an-example-secret" not in result.stdout
    assert not (tmp_path / "data").exists()  # --print-config touches no data dir


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong (its ExecStart pointed at this venv's gossip-node)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is needed to check docs/deploy/swarmlist-node.service"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/swarmlist/venv/bin/gossip-node",
                                                             str(DEV_GOSSIP_NODE)), encoding="utf-8")  # fmt: skip
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not complaints, result.stderr
