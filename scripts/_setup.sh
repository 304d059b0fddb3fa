# Shared by scripts/test.sh and scripts/run-local.sh: make .venv ready, idempotently.
# Sourced, not executed. Installs only what is missing; re-installs when pyproject.toml changes.

swarmlist_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$swarmlist_root/.venv"

_pick_python() {
    for candidate in python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
            echo "$candidate"
            return 0
        fi
    done
    echo "swarmlist needs Python 3.11 or newer on PATH" >&2
    return 1
}

# ensure_venv EXTRAS — create .venv and install the project with the given extras ("test", "test,bench").
ensure_venv() {
    local extras="$1"
    local stamp="$venv/.swarmlist-installed"
    local want
    want="$(cat "$swarmlist_root/pyproject.toml" | sha256sum | cut -c1-16) [$extras]"
    if [ ! -x "$venv/bin/python" ]; then
        echo "==> creating $venv"
        "$(_pick_python)" -m venv "$venv"
    fi
    if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
        echo "==> installing swarmlist[$extras] into .venv (log: .venv/pip-install.log)"
        if ! { "$venv/bin/python" -m pip install --upgrade pip &&
               "$venv/bin/python" -m pip install -e "$swarmlist_root[$extras]"; } > "$venv/pip-install.log" 2>&1; then
            tail -n 40 "$venv/pip-install.log" >&2
            echo "pip install failed (full log: $venv/pip-install.log)" >&2
            return 1
        fi
        echo "$want" > "$stamp"
    fi
}

# ensure_debian_packages PKG... — apt-get install what is missing (needs root; says so otherwise).
ensure_debian_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        return 1
    fi
    echo "==> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
