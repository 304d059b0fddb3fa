#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: mypy on the packages, then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/node -k parser
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$swarmlist_root"

ensure_venv test
ensure_debian_packages chromium  # the web UI's browser tests drive Debian's chromium (Playwright)

echo "==> mypy"
"$venv/bin/python" -m mypy

echo "==> pytest"
set +e
"$venv/bin/python" -m pytest --durations=25 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
