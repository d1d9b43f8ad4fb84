#!/usr/bin/env bash
# Runs every fuzz target for N executions (default 10 million) and prints
# each one's final statistics. Needs cargo-fuzz (`cargo install
# cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable toolchain take cargo-fuzz's
# -Z flags. No sanitizer: the code under test is safe Rust, so panics,
# hangs and memory blow-ups are what is looked for (-rss_limit_mb,
# -timeout). The targets are built once, then run from their binaries, so
# editing the sources meanwhile does not rebuild them halfway.
set -euo pipefail
cd "$(dirname "$0")"
runs="${1:-10000000}"
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none -O
bin=target/x86_64-unknown-linux-gnu/release
status=0
for t in frame_decoder admission ws_message snapshot_file journal_file; do
  mkdir -p "corpus/$t" "artifacts/$t"
  if ! "$bin/$t" -artifact_prefix="artifacts/$t/" -runs="$runs" -max_len=8192 \
      -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 "corpus/$t" > "artifacts/$t.log" 2>&1; then
    echo "$t: FAILED, see fuzz/artifacts/$t.log"
    status=1
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" "artifacts/$t.log" | sed "s/^/$t: /"
done
exit "$status"
