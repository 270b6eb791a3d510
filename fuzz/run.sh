#!/usr/bin/env bash
# Runs every fuzz target for a bounded time on stable Rust:
#
#   fuzz/run.sh <seconds per target>
#
# libFuzzer is linked as a plain library (`libfuzzer-sys`) and the code is
# instrumented with rustc's stable SanitizerCoverage flags, so nothing but a
# C++ compiler (for libFuzzer itself) is needed; it is installed if missing.
# The targets run with a 256 KiB stack (`ulimit -s`), so that a decode
# recursing as deep as a 4 KiB input allows (2,000 levels) overflows it.
# Exits non-zero if a target crashes, overflows its stack, times out (an
# input decoding for more than 10 s) or runs out of memory; libFuzzer keeps
# the input under fuzz/artifacts/<target>/ (not after a stack overflow:
# rerun the corpus with `ulimit -s 256` to find it). Corpora grow in
# fuzz/corpus/<target>/ across runs. Builds go to $FUZZ_TARGET_DIR (default
# fuzz/target).
set -euo pipefail

secs=${1:?usage: fuzz/run.sh <seconds per target>}
cd "$(dirname "$0")"

if ! command -v c++ >/dev/null; then
    echo "fuzz: installing a C++ compiler for libFuzzer"
    apt-get update -qq >/dev/null && apt-get install -y -qq g++ >/dev/null
fi

host=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/target}
# What cargo-fuzz passes with `--sanitizer none`; `--target` keeps them off
# build scripts and proc-macros.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --release --quiet --target "$host" --bins

status=0
for target in frame_header payload; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log=$(mktemp)
    if (ulimit -s 256 && exec "$CARGO_TARGET_DIR/$host/release/$target" "corpus/$target" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1) 2>"$log"; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        echo "fuzz: $target: $runs inputs in ${secs} s ($rate inputs/s), no failure"
    else
        status=1
        echo "fuzz: $target FAILED; the last lines of libFuzzer's log:"
        tail -n 40 "$log"
    fi
    rm -f "$log"
done
exit "$status"
