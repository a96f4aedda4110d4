#!/usr/bin/env bash
# The whole test suite, end-to-end tests included:
#   1. installs (if missing) and starts a local tansu broker (scripts/kafka-broker.sh),
#   2. exports STEPUP_TEST_BOOTSTRAP so the tests/e2e_* suite runs against it,
#   3. cargo test --all-targets, then cargo bench --no-run (benches must compile),
#   4. stops the broker on exit, whatever happened.
#
# With STEPUP_TEST_BOOTSTRAP already set (Apache Kafka, Redpanda, ...), that broker
# is used instead and no broker is installed or started; the scenarios that need
# to restart the broker then say why they skip.
#
# Extra arguments go to cargo test, e.g. `scripts/test.sh --test e2e_poison`.
# STEPUP_BROKER_KEEP=1 keeps the broker's data from the last run (default: fresh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BROKER="$ROOT/scripts/kafka-broker.sh"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

started=0
cleanup() {
    local rc=$?
    if ((started)); then
        if ((rc != 0)); then
            echo "test.sh: failed (exit $rc); last broker log lines:" >&2
            tail -n 20 "${STEPUP_BROKER_DIR:-$ROOT/target/tansu}/tansu.log" >&2 2>/dev/null || true
        fi
        "$BROKER" stop || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "${STEPUP_TEST_BOOTSTRAP:-}" ]]; then
    echo "test.sh: using the broker at STEPUP_TEST_BOOTSTRAP=$STEPUP_TEST_BOOTSTRAP (no broker control)"
    unset STEPUP_TEST_BROKER_SCRIPT
else
    "$BROKER" install
    if [[ "${STEPUP_BROKER_KEEP:-0}" != 1 ]]; then
        "$BROKER" clean
    fi
    started=1
    "$BROKER" start
    STEPUP_TEST_BOOTSTRAP=$("$BROKER" bootstrap)
    export STEPUP_TEST_BOOTSTRAP
    # Lets the broker-restart scenario restart this broker.
    export STEPUP_TEST_BROKER_SCRIPT="$BROKER"
fi

# Test binaries run one after another (each e2e scenario is its own binary and
# starts its own workers); tests inside one binary run in parallel.
t0=$SECONDS
cargo test --all-targets "$@"
echo "test.sh: cargo test took $((SECONDS - t0)) s"

t0=$SECONDS
cargo bench --no-run
echo "test.sh: cargo bench --no-run took $((SECONDS - t0)) s"
