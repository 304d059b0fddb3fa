#!/usr/bin/env bash
# Bounded soak (issue #13): N real gossip-node processes on loopback for up to 15 minutes under
# gossip message loss and churn (random kills, SIGKILL and SIGTERM, each node restarted on its
# data dir), then faults off, convergence, and an audit of every data dir: records lost must be 0.
# Writes docs/reliability/soak.json; exits 1 if a record was lost or the cluster did not converge.
#
#   scripts/soak.sh                        # 10 minutes, 5 nodes, 5% loss
#   scripts/soak.sh --minutes 3 --loss 0.2 --seed 7
#   scripts/soak.sh --help
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$swarmlist_root"

ensure_venv test

exec "$venv/bin/python" scripts/soak.py "$@"
