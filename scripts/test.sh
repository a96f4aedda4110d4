#!/usr/bin/env bash
# The whole test suite, end-to-end tests included:
#   1. installs tansu if missing (scripts/kafka-broker.sh install),
#   2. builds every target (cargo test --all-targets --no-run),
#   3. runs the unit, integration and mock-cluster tests (everything but tests/e2e_*),
#   4. runs each end-to-end scenario (tests/e2e_*.rs) against a fresh tansu broker
#      (STEPUP_TEST_BOOTSTRAP exported), and the benches in test mode,
#   5. cargo bench --no-run (the benches must compile in release),
#   6. stops the broker on exit, whatever happened.
#
# A fresh broker per scenario: tansu 0.6.0 slows down as its SQLite store grows,
# and when its storage task panics (seen: "entered unreachable code" in a group
# update, "more or less than one row" after a restart) it answers nothing until
# restarted; one scenario must not take the others down with it.
#
# With STEPUP_TEST_BOOTSTRAP already set (Apache Kafka, Redpanda, ...), that broker
# is used for everything and no broker is installed or started; the scenarios that
# need to restart the broker then say why they skip.
#
# Arguments go to every cargo test run, e.g. `scripts/test.sh -- --nocapture`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BROKER="$ROOT/scripts/kafka-broker.sh"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
BROKER_DIR=${STEPUP_BROKER_DIR:-target/tansu}
case "$BROKER_DIR" in /*) ;; *) BROKER_DIR="$ROOT/$BROKER_DIR" ;; esac

external=0
[[ -n "${STEPUP_TEST_BOOTSTRAP:-}" ]] && external=1
started=0
failed=()

cleanup() {
    local rc=$?
    if ((started)); then
        "$BROKER" stop >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fresh_broker() {
    ((external)) && return 0
    "$BROKER" clean >/dev/null
    started=1
    "$BROKER" start
    STEPUP_TEST_BOOTSTRAP=$("$BROKER" bootstrap)
    export STEPUP_TEST_BOOTSTRAP
    # Lets the broker-restart scenario restart this broker.
    export STEPUP_TEST_BROKER_SCRIPT="$BROKER"
}

# After a run against the script's broker: did tansu itself break?
broker_verdict() {
    ((external)) && return 0
    if grep -aq "panicked at" "$BROKER_DIR/tansu.log" 2>/dev/null; then
        echo "test.sh: NOTE: the tansu broker panicked during '$1' (a broker bug, see $BROKER_DIR/tansu.log):" >&2
        grep -a -A1 "panicked at" "$BROKER_DIR/tansu.log" | sed 's/\x1b\[[0-9;]*m//g' | head -n 6 >&2
    fi
}

passed=0
run() {
    local name=$1
    shift
    echo "test.sh: === $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed+=("$name")
    fi
}

if ((external)); then
    echo "test.sh: using the broker at STEPUP_TEST_BOOTSTRAP=$STEPUP_TEST_BOOTSTRAP (no broker control)"
    unset STEPUP_TEST_BROKER_SCRIPT
else
    "$BROKER" install
fi

t0=$SECONDS
cargo test --all-targets --no-run
echo "test.sh: build took $((SECONDS - t0)) s"

# Everything but the end-to-end scenarios (unit, CLI, mock-cluster tests, ...).
other=(--lib --bins)
for f in tests/*.rs; do
    n=$(basename "$f" .rs)
    [[ "$n" == e2e_* ]] || other+=(--test "$n")
done
t0=$SECONDS
run "unit and integration tests" cargo test --no-fail-fast "${other[@]}" "$@"
echo "test.sh: took $((SECONDS - t0)) s"

# One fresh broker per end-to-end scenario.
for f in tests/e2e_*.rs; do
    n=$(basename "$f" .rs)
    t0=$SECONDS
    fresh_broker
    run "$n" cargo test --test "$n" "$@"
    broker_verdict "$n"
    echo "test.sh: $n took $((SECONDS - t0)) s"
done

# Benches in test mode (the e2e bench smoke-tests the three pipelines).
t0=$SECONDS
fresh_broker
run "benches (test mode)" cargo test --benches "$@"
broker_verdict "benches"
echo "test.sh: benches took $((SECONDS - t0)) s"

t0=$SECONDS
run "cargo bench --no-run" cargo bench --no-run
echo "test.sh: cargo bench --no-run took $((SECONDS - t0)) s"

if ((${#failed[@]})); then
    echo "test.sh: FAILED: ${failed[*]}" >&2
fi
echo "test.sh: total $SECONDS s"
echo "suites: $passed passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
