"""scripts/soak.py for real, but tiny: three gossip-node processes, 18 s of churn and loss, nothing lost."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.soak import main
from tests import suite_report

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECTION = "reliability: soak"
SEED = 1313


@pytest.mark.timeout(300)  # about 40 s alone; generous for a machine shared by several test runs
def test_a_tiny_soak_with_churn_and_loss_loses_no_record_and_reconverges(tmp_path: Path) -> None:
    """Three nodes, 5% loss, a kill every 5 s (SIGKILL and SIGTERM): exit 0, 0 records lost, identical stores."""
    out = tmp_path / "soak.json"
    # 18 s of soak hold the two churn kills the test needs (one of each signal): the first at 5 s,
    # the second once the victim is back (restarted at 7 s; a start takes 2-5 s on a loaded machine),
    # so a restart may take up to 11 s before the second kill is missed; the kills, the loss and the
    # final audit of every store are the same as in a longer soak, only fewer records are made.
    # 60 calls a minute (the soak's default is 20, to last ten minutes): production still spans the
    # soak, and a node's next call slots are a second or two away instead of up to six, which is how
    # long a SIGTERM'd node (churn or the final quiesce) waits before it stops and how long the
    # others take to notice the budget that ends production.
    command = [sys.executable, str(ROOT / "scripts" / "soak.py"), "--minutes", "0.3", "--nodes", "3",
               "--churn-every-s", "5", "--restart-after-s", "2", "--seed", str(SEED), "--sample-every-s", "2",
               "--calls-per-minute", "60", "--work-dir", str(tmp_path / "work"), "--out", str(out)]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=280, cwd=ROOT)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output
    assert re.search(r"^records lost: 0 of [\d,]+ acknowledged", finished.stdout, re.MULTILINE), output
    assert "soak PASSED" in finished.stdout, output

    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert results["lost"] == 0
    assert results["stores"]["digests_identical"] and results["stores"]["lists_identical"]
    assert results["stores"]["acknowledged_by_victims"] > 0, "the victims had committed records when killed"
    churn_kills = {kind: count for kind, count in results["kills"].items() if kind.startswith("churn")}
    assert churn_kills.get("churn SIGKILL", 0) >= 1 and churn_kills.get("churn SIGTERM", 0) >= 1, results["kills"]
    assert results["faults_injected"]["request_lost"] + results["faults_injected"]["reply_lost"] > 0
    assert results["reconverge_s"] is not None
    assert not list((tmp_path / "work").glob("*/faults.json.*.tmp")), "a faults.json temp file was left behind"
    suite_report.record(
        SECTION, "3 gossip-node processes, 0.3 min, loss 0.05", kills=sum(churn_kills.values()),
        restarts=results["restarts"], acknowledged=results["stores"]["acknowledged"], lost=results["lost"],
        **{"messages lost": results["faults_injected"]["request_lost"] + results["faults_injected"]["reply_lost"],
           "false deaths": results["false_deaths"], "reconverge s": results["reconverge_s"]},
    )  # fmt: skip


@pytest.mark.parametrize(("option", "value"), [("--minutes", "16"), ("--minutes", "0"), ("--loss", "0.31"),
                                                ("--nodes", "1")])  # fmt: skip
def test_the_soak_refuses_out_of_bounds_options_before_starting_anything(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """At most 15 minutes, loss at most 0.3, two nodes or more: otherwise exit 2 naming the option."""
    with pytest.raises(SystemExit) as exited:
        main([option, value, "--no-write"])
    assert exited.value.code == 2
    assert option in capsys.readouterr().err
