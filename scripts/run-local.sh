#!/usr/bin/env bash
# Set up (if needed) and run a local swarmlist cluster on the built-in simulated LLM:
# N gossip-node processes on 127.0.0.1 (default 5) enumerating "cities of Europe", joined
# through the first one, authenticated with a generated cluster key. Prints each node's page;
# Ctrl-C stops them all. State and logs live in run-local-data/ (a rerun resumes from it).
#
#   scripts/run-local.sh                  # 5 nodes, ports 7071-7075
#   NODES=3 BASE_PORT=8000 scripts/run-local.sh
#   scripts/run-local.sh --sim-time-scale 0.2   # extra arguments go to every gossip-node
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$swarmlist_root"

ensure_venv test

nodes="${NODES:-5}"
base_port="${BASE_PORT:-7071}"
data_root="${SWARMLIST_RUN_LOCAL_DIR:-$swarmlist_root/run-local-data}"
mkdir -p "$data_root"
key_file="$data_root/cluster.key"
if [ ! -s "$key_file" ]; then
    (umask 077 && "$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$key_file")
fi

pids=()
stop_all() {
    trap - INT TERM
    echo
    echo "==> stopping ${#pids[@]} nodes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop_all INT TERM

for i in $(seq 1 "$nodes"); do
    port=$((base_port + i - 1))
    seed_args=()
    [ "$i" -gt 1 ] && seed_args=(--seed "127.0.0.1:$base_port")
    "$venv/bin/gossip-node" \
        --topic "cities of Europe" \
        --universe european-cities \
        --name "node$i" \
        --data-dir "$data_root/node$i" \
        --port "$port" \
        --cluster-key-file "$key_file" \
        --gossip-profile local \
        --rng-seed "$i" \
        --sim-time-scale 0.1 \
        "${seed_args[@]}" \
        "$@" > "$data_root/node$i.log" 2>&1 &
    pids+=($!)
done

echo "==> $nodes nodes starting (logs: $data_root/node*.log)"
for i in $(seq 1 "$nodes"); do
    port=$((base_port + i - 1))
    for _ in $(seq 1 200); do
        grep -q "^page: " "$data_root/node$i.log" 2>/dev/null && break
        if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
            echo "node$i exited; its log:" >&2
            cat "$data_root/node$i.log" >&2
            stop_all
            exit 1
        fi
        sleep 0.1
    done
    echo "    node$i  http://127.0.0.1:$port/"
done
echo "==> open any page above; Ctrl-C stops the cluster"
wait "${pids[@]}"
