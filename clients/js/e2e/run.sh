#!/usr/bin/env bash
# End-to-end test of the browser client: two headless Chromium pages and the
# Rust master dispatch to one store and must all show the same final state;
# a wrong password must show an error on the page.
# Installs what it needs (Debian's chromium, npm packages), builds the client
# and the `web` example, then runs e2e/test.mjs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

if ! command -v chromium >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
(cd "$here/.." && npm install --no-audit --no-fund && npx tsc)
(cd "$here" && npm install --no-audit --no-fund)
(cd "$root" && cargo build -p redux-cluster-examples --features ws --example web)
exec node "$here/test.mjs" "$root/target/debug/examples/web"
