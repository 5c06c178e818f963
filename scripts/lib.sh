# shellcheck shell=bash
# Shared by the scripts, examples and benchmarks: `source "$REPO/scripts/lib.sh"`.

# Cargo's target directory for this workspace, wherever CARGO_TARGET_DIR or a cargo
# config puts it: scripts must not assume `target/`.
cargo_target_dir() {
    local repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
    cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A free loopback port, other than the ones given.
pick_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 30000))
        [[ " $* " == *" $p "* ]] && continue
        port_in_use "$p" || {
            echo "$p"
            return 0
        }
    done
    echo "no free loopback port found" >&2
    return 1
}

# Waits until `$1/health` answers, as long as process $2 lives (at most $3 tenths of a
# second, default 100). Fails when the process exits or time runs out.
wait_healthy() {
    local base=$1 pid=$2 tries=${3:-100} i
    for ((i = 0; i < tries; i++)); do
        curl -sf "$base/health" >/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
