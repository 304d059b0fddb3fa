#!/usr/bin/env bash
# Set up (if needed) and run swarmlist locally on the built-in simulated LLM.
#
# Until the gossip layer lands this runs ONE node enumerating "cities of Europe"; its list is
# kept in run-local-data/node1/list.jsonl (and survives Ctrl-C and restarts). Extra arguments
# go to gossip-node, e.g.: scripts/run-local.sh --exit-when-done --sim-time-scale 0
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$swarmlist_root"

ensure_venv test

data_dir="${SWARMLIST_RUN_LOCAL_DIR:-$swarmlist_root/run-local-data}/node1"
mkdir -p "$data_dir"
echo "==> node1: data dir $data_dir (the list: $data_dir/list.jsonl); Ctrl-C stops"
exec "$venv/bin/gossip-node" \
    --topic "cities of Europe" \
    --universe european-cities \
    --data-dir "$data_dir" \
    --sim-time-scale 0.05 \
    --concurrency 4 \
    "$@"
