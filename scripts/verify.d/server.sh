# Shared by scripts/schemathesis and scripts/verify (sourced, not run): build the binary and
# start `natterjack serve` on free loopback ports with a data directory of its own.
#
#   nj_binary debug|release    builds natterjack (quietly) and sets NJ_BIN to the binary;
#                              NJ_SERVER_BIN, when set, is used as it is and nothing is built
#   nj_start_server DIR [VAR=VALUE ...]
#                              starts `$NJ_BIN serve` with NATTERJACK_DATA_DIR=DIR/data (create
#                              users there first with `$NJ_BIN user add`), REST, gRPC and
#                              internal listeners on 127.0.0.1:0, and the extra environment
#                              given; waits for it to listen, then sets NJ_BASE
#                              (https://127.0.0.1:PORT), NJ_CA (DIR/data/ca.pem) and NJ_PID.
#                              The server's stdout goes to DIR/stdout; its stderr to
#                              $NJ_SERVER_STDERR when that is set, else it is inherited.
#   nj_stop_servers            stops every server started here (call it from an EXIT trap)

NJ_SERVER_PIDS=()

nj_binary() {
    local profile="$1"
    if [ -n "${NJ_SERVER_BIN:-}" ]; then
        NJ_BIN="$NJ_SERVER_BIN"
    else
        local flag=()
        [ "$profile" = release ] && flag=(--release)
        cargo build -q "${flag[@]}" -p natterjack
        # Where cargo put it: honours CARGO_TARGET_DIR and build.target-dir alike.
        local target_dir
        target_dir="$(cargo metadata --format-version 1 --no-deps \
            | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
        NJ_BIN="$target_dir/$profile/natterjack"
    fi
    [ -x "$NJ_BIN" ] || { echo "no natterjack binary at $NJ_BIN" >&2; return 1; }
}

nj_start_server() {
    local dir="$1"
    shift
    mkdir -p "$dir"
    local cmd=(env NATTERJACK_DATA_DIR="$dir/data"
        NATTERJACK_GRPC__LISTEN=127.0.0.1:0 NATTERJACK_INTERNAL__LISTEN=127.0.0.1:0
        RUST_LOG="${RUST_LOG:-warn}" "$@" "$NJ_BIN" serve --listen 127.0.0.1:0)
    if [ -n "${NJ_SERVER_STDERR:-}" ]; then
        "${cmd[@]}" >"$dir/stdout" 2>>"$NJ_SERVER_STDERR" &
    else
        "${cmd[@]}" >"$dir/stdout" &
    fi
    NJ_PID=$!
    NJ_SERVER_PIDS+=("$NJ_PID")
    local _
    for _ in $(seq 1 150); do
        grep -q '^natterjack listening rest ' "$dir/stdout" 2>/dev/null && break
        kill -0 "$NJ_PID" 2>/dev/null || break
        sleep 0.2
    done
    NJ_BASE="$(sed -n 's/^natterjack listening rest //p' "$dir/stdout")"
    NJ_CA="$dir/data/ca.pem"
    if [ -z "$NJ_BASE" ]; then
        echo "server did not start (data directory $dir/data)" >&2
        return 1
    fi
}

nj_stop_servers() {
    local pid
    for pid in "${NJ_SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${NJ_SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    NJ_SERVER_PIDS=()
}
