#!/usr/bin/env bash
# Runs every fuzz target for N executions (default 10 million) and prints
# each one's summary line. Needs cargo-fuzz (`cargo install cargo-fuzz`);
# RUSTC_BOOTSTRAP lets the stable toolchain take cargo-fuzz's -Z flags.
# No sanitizer: the code under test is safe Rust, so panics, hangs and
# memory blow-ups are what is looked for (-rss_limit_mb, -timeout).
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-10000000}"
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none -O
for t in frame_decoder admission ws_message snapshot_file journal_file; do
  cargo fuzz run -s none -O "$t" -- -runs="$runs" -max_len=8192 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E "^#[0-9]+ +DONE|^stat::number_of_executed_units|^stat::peak_rss_mb|panicked|ERROR|SUMMARY" \
    | sed "s/^/$t: /"
done
