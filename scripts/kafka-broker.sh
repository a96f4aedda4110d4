#!/usr/bin/env bash
# A local Kafka-compatible broker for stepup's end-to-end tests and benchmark:
# tansu (Apache-2.0, crates.io), pinned, with SQLite storage so that the broker
# itself can be restarted (or killed) without losing records.
#
#   scripts/kafka-broker.sh install   # cargo install tansu (pinned) unless present
#   scripts/kafka-broker.sh start     # start on 127.0.0.1:$STEPUP_BROKER_PORT, wait until it answers
#   scripts/kafka-broker.sh stop      # stop (pid file), data kept
#   scripts/kafka-broker.sh restart   # stop + start, data kept
#   scripts/kafka-broker.sh kill      # kill -9 (crash), data kept
#   scripts/kafka-broker.sh status    # exit 0 when running
#   scripts/kafka-broker.sh clean     # stop and delete the broker's data
#   scripts/kafka-broker.sh bootstrap # print HOST:PORT for bootstrap.servers
#   scripts/kafka-broker.sh create-topic NAME [PARTITIONS]
#
# Environment: STEPUP_BROKER_PORT (19092), STEPUP_BROKER_DIR (target/tansu, relative
# paths are taken from the repository root), TANSU (the tansu binary to use),
# STEPUP_BROKER_STORAGE (tansu --storage-engine; default sqlite://tansu.db, the
# only one that survives a broker restart; memory://tansu/ keeps nothing).
#
# tansu 0.6.0 facts this relies on: no storage engine is compiled in unless asked
# (features dynostore + libsql), `--storage-engine sqlite://FILE` takes a path
# relative to the working directory, topics are never auto-created, and clients
# must be told 127.0.0.1 (not localhost, which may resolve to ::1).
set -euo pipefail

TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,libsql
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${STEPUP_BROKER_PORT:-19092}
DIR=${STEPUP_BROKER_DIR:-target/tansu}
case "$DIR" in /*) ;; *) DIR="$ROOT/$DIR" ;; esac
HOST=127.0.0.1
BOOTSTRAP="$HOST:$PORT"
PIDFILE="$DIR/tansu.pid"
LOG="$DIR/tansu.log"
START_TIMEOUT=${STEPUP_BROKER_START_TIMEOUT:-60}

log() { echo "kafka-broker: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

tansu_bin() {
    if [[ -n "${TANSU:-}" ]]; then
        echo "$TANSU"
    elif command -v tansu >/dev/null 2>&1; then
        command -v tansu
    elif [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]]; then
        echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
    else
        echo tansu
    fi
}

installed_version() {
    local bin
    bin=$(tansu_bin)
    "$bin" --version 2>/dev/null | awk '{print $2}' || true
}

cmd_install() {
    local have
    have=$(installed_version)
    if [[ "$have" == "$TANSU_VERSION" ]]; then
        log "tansu $TANSU_VERSION already installed ($(tansu_bin))"
        return 0
    fi
    log "installing tansu $TANSU_VERSION (features $TANSU_FEATURES; ~15-25 min on 2 cores)${have:+, replacing $have}"
    command -v cargo >/dev/null || die "cargo not found"
    # The build needs a C toolchain; .ci/run installs the Debian packages.
    env -u CARGO_TARGET_DIR cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" ${TANSU_INSTALL_JOBS:+-j "$TANSU_INSTALL_JOBS"}
    have=$(installed_version)
    [[ "$have" == "$TANSU_VERSION" ]] || die "tansu --version says '${have:-nothing}' after install (PATH: is ~/.cargo/bin on it?)"
    log "tansu $TANSU_VERSION installed"
}

running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: it must still be tansu.
    if [[ -r "/proc/$pid/comm" ]] && ! grep -q tansu "/proc/$pid/comm"; then
        return 1
    fi
    echo "$pid"
}

port_open() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

# A real Kafka Metadata (v1) request over the wire; prints the advertised brokers.
# Needs python3 (only the standard library); without it the TCP check alone is used.
metadata_probe() {
    command -v python3 >/dev/null 2>&1 || return 0
    python3 - "$HOST" "$PORT" <<'PY'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
client = b"stepup-probe"
body = struct.pack(">hhih", 3, 1, 7, len(client)) + client + struct.pack(">i", -1)
s = socket.create_connection((host, port), timeout=5)
s.settimeout(5)
s.sendall(struct.pack(">i", len(body)) + body)
def read(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("connection closed")
        b += c
    return b
size = struct.unpack(">i", read(4))[0]
r = read(size)
corr, nb = struct.unpack(">ii", r[:8])
if corr != 7:
    raise SystemExit("bad correlation id %d" % corr)
o = 8
out = []
for _ in range(nb):
    node, hl = struct.unpack(">ih", r[o:o + 6]); o += 6
    h = r[o:o + hl].decode(); o += hl
    p, rl = struct.unpack(">ih", r[o:o + 6]); o += 6
    if rl > 0:
        o += rl
    out.append("%d=%s:%d" % (node, h, p))
if not out:
    raise SystemExit("no brokers in metadata")
print(" ".join(out))
PY
}

# tansu 0.6.0's SQLite schema has no index on header (topition, offset_id), and it
# reads a record's headers with a query per record (header_fetch.sql): every record
# fetched scans the whole header table, so each header stored slows every later
# fetch (measured: 2,000 one-header records cost a 20,000-record read ~25% of its
# throughput). Add the index once the broker has created its schema; idempotent.
index_headers() {
    [[ "${STEPUP_BROKER_STORAGE:-sqlite://tansu.db}" == "sqlite://tansu.db" ]] || return 0
    command -v python3 >/dev/null 2>&1 || { log "warning: no python3: header index not added"; return 0; }
    python3 - "$DIR/tansu.db" <<'PY' || log "warning: could not add the header index"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
if db.execute("select 1 from sqlite_master where type='table' and name='header'").fetchone():
    db.execute("create index if not exists stepup_header_topition_offset on header (topition, offset_id)")
    db.commit()
PY
}

cmd_start() {
    local pid
    if pid=$(running_pid); then
        log "already running (pid $pid) on $(current_bootstrap)"
        return 0
    fi
    if port_open; then
        die "port $PORT is taken by another process: set STEPUP_BROKER_PORT"
    fi
    local bin have
    bin=$(tansu_bin)
    have=$(installed_version)
    [[ -n "$have" ]] || die "tansu not found: run '$0 install' (or set TANSU=/path/to/tansu)"
    [[ "$have" == "$TANSU_VERSION" ]] || log "warning: tansu $have, tested with $TANSU_VERSION"
    mkdir -p "$DIR"
    # Relative sqlite path: tansu resolves it against its working directory.
    (
        cd "$DIR"
        echo "--- $(date -u +%FT%TZ) start" >>"$LOG"
        RUST_LOG=${TANSU_LOG:-warn} setsid "$bin" broker \
            --kafka-cluster-id stepup-test \
            --kafka-listener-url "tcp://$HOST:$PORT" \
            --kafka-advertised-listener-url "tcp://$HOST:$PORT" \
            --storage-engine "${STEPUP_BROKER_STORAGE:-sqlite://tansu.db}" \
            </dev/null >>"$LOG" 2>&1 &
        echo $! >"$PIDFILE"
    )
    pid=$(cat "$PIDFILE")
    local deadline=$((SECONDS + START_TIMEOUT)) brokers=""
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            die "tansu exited during start (log: $LOG)"
        fi
        if port_open && brokers=$(metadata_probe 2>/dev/null); then
            index_headers
            echo "$BOOTSTRAP" >"$DIR/bootstrap"
            log "tansu $have running (pid $pid) on $BOOTSTRAP${brokers:+, metadata: $brokers}; data $DIR"
            return 0
        fi
        sleep 0.2
    done
    tail -n 30 "$LOG" >&2 || true
    die "tansu did not answer a metadata request on $BOOTSTRAP within ${START_TIMEOUT}s (log: $LOG)"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "tansu (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$PIDFILE"
    # The listener must be gone before a restart can bind the port again.
    for i in $(seq 1 50); do
        port_open || break
        sleep 0.1
    done
    log "stopped (pid $pid)"
}

cmd_kill() {
    local pid
    pid=$(running_pid) || die "not running"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$PIDFILE"
    log "killed -9 (pid $pid)"
}

# The address of the running broker (recorded at start), else the configured one.
current_bootstrap() {
    if running_pid >/dev/null && [[ -s "$DIR/bootstrap" ]]; then
        cat "$DIR/bootstrap"
    else
        echo "$BOOTSTRAP"
    fi
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        echo "running pid=$pid bootstrap=$(current_bootstrap) dir=$DIR version=$(installed_version)"
        return 0
    fi
    echo "stopped bootstrap=$BOOTSTRAP dir=$DIR"
    return 3
}

cmd_clean() {
    cmd_stop
    rm -rf "$DIR"
    log "removed $DIR"
}

cmd_create_topic() {
    local name=${1:?topic name} parts=${2:-1}
    "$(tansu_bin)" topic create "$name" --partitions "$parts" --broker "tcp://$(current_bootstrap)"
}

case "${1:-}" in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
restart)
    cmd_stop
    cmd_start
    ;;
kill) cmd_kill ;;
status) cmd_status ;;
clean) cmd_clean ;;
bootstrap) current_bootstrap ;;
create-topic)
    shift
    cmd_create_topic "$@"
    ;;
*)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
