#!/usr/bin/env bash
# End-to-end test of the browser client: two headless Chromium pages and the
# Rust master dispatch to one store and must all show the same final state;
# a wrong password must show an error on the page; a React page built from
# the packed package must work.
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
# The package as a web app gets it: packed, installed from the tarball into
# a Vite + React page, built.
app="$here/react-app"
rm -rf "$app/node_modules/redux-cluster-ws-client" "$app"/*.tgz
(cd "$here/.." && npm pack --silent --pack-destination "$app" >/dev/null)
mv "$app"/redux-cluster-ws-client-*.tgz "$app/redux-cluster-ws-client.tgz"
(cd "$app" && npm install --no-audit --no-fund && npx vite build --logLevel warn)
(cd "$root" && cargo build -p redux-cluster-examples --features ws --example web)
exec node "$here/test.mjs" "$root/target/debug/examples/web" "$app/dist"
