#!/usr/bin/env node
// Whole-system benchmark of the Node original, `redux-cluster` from npm, the
// twin of our `examples/bench.rs`: real processes, real links, one JSON line.
//
//   node bench/harness.js --transport ipc --dispatcher peers --peers 3 --k 20000
//   node bench/harness.js --transport unix --dispatcher latency --peers 1 --n 2000
//
// Besides our bench's keys, the line carries `exact_settled`: whether every
// copy is exact SETTLE_MS after the end (out of the clock).
//
// Flags: --transport ipc|unix|tcp (aliases: pipe = ipc; quic, tcp-tls = tcp,
// since the original has no encrypted transport), --dispatcher
// peers|master|latency, --peers N, --k K, --n N, --mode action|snapshot,
// --keys N, --timeout S (default 110).
//
// The package is loaded from bench/node/node_modules (installed there by
// bench/compare, which git ignores); only this harness is ours.
//
// How each transport is built, with the package's own API:
// - ipc: the basic scheme. The coordinator is the cluster primary and
//   `cluster.fork()`s the peers; the store syncs over Node's cluster IPC.
// - unix: `createServer({path})` in the coordinator; each peer is a plain
//   process (`child_process.fork`) that calls `createClient({path})`.
// - tcp: the same with `createServer({host: "127.0.0.1", port: 0})`.
// Peers report back to the coordinator over the child's IPC channel (`ready`,
// then `done` with their final state's check, peak RSS and latencies), never
// through the store under test.
//
// The run ends when every process has applied every action (each source's
// count reached its target); `exact` is true only if every process then holds
// exactly the expected state. A peer reports at that first moment, so an
// action applied twice (the original can do so around its periodic resync) is
// seen and recorded as inexact, never hidden, even if a later resync would
// paper over it.

"use strict";

const path = require("path");
const fs = require("fs");
const os = require("os");
const cluster = require("cluster");
const childProcess = require("child_process");
const { createRequire } = require("module");

const PEER_ENV = "BENCH_PEER_ID";
const ADDR_ENV = "BENCH_ADDR";
const LOGIN = "bench";
const PASSWORD = "bench-password";
// Quiet time after the end before the settled check (> the package's 100 ms
// resync delay plus its 1 ms send timers).
const SETTLE_MS = 500;

function loadPackage() {
  const dir = process.env.REDUX_CLUSTER_NODE_DIR || path.join(__dirname, "node");
  const req = createRequire(path.join(dir, "package.json"));
  try {
    return {
      ReduxCluster: req("redux-cluster"),
      version: req("redux-cluster/package.json").version,
    };
  } catch (e) {
    fail(`redux-cluster is not installed in ${dir} (run bench/compare, or npm install --prefix ${dir} redux-cluster): ${e.message}`, 2);
  }
}

function fail(msg, code) {
  process.stderr.write(`harness: ${msg}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const a = {
    transport: "ipc",
    dispatcher: "peers",
    peers: 3,
    k: 100000,
    n: 10000,
    mode: "action",
    keys: 0,
    timeout: 110,
  };
  const ints = new Set(["peers", "k", "n", "keys", "timeout"]);
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (!flag.startsWith("--")) fail(`unknown argument ${flag}`, 2);
    const name = flag.slice(2);
    if (!(name in a)) fail(`unknown flag ${flag}`, 2);
    const val = argv[++i];
    if (val === undefined) fail(`${flag} needs a value`, 2);
    if (ints.has(name)) {
      const v = Number(val);
      if (!Number.isInteger(v) || v < 0) fail(`${flag}: not a count: ${val}`, 2);
      a[name] = v;
    } else {
      a[name] = val;
    }
  }
  const alias = { pipe: "ipc", ipc: "ipc", unix: "unix", tcp: "tcp", quic: "tcp", "tcp-tls": "tcp" };
  if (!(a.transport in alias)) fail(`unknown transport ${a.transport} (ipc, unix, tcp)`, 2);
  a.transport = alias[a.transport];
  if (!["peers", "master", "latency"].includes(a.dispatcher)) fail(`unknown dispatcher ${a.dispatcher}`, 2);
  if (!["action", "snapshot"].includes(a.mode)) fail(`unknown mode ${a.mode}`, 2);
  if (a.dispatcher === "latency") a.peers = Math.max(a.peers, 1);
  return a;
}

// The store under test, the twin of `Bench` in examples/lib.rs: a counter per
// source plus `keys` filler keys that make snapshots realistically heavy.
// An ordinary immutable Redux reducer (new objects, shared untouched parts).
function benchReducer(state = { total: 0, by: [], keys: {}, go: false }, action) {
  switch (action.type) {
    case "FILL": {
      const keys = Object.assign({}, state.keys);
      for (let i = 0; i < action.n; i++) keys["key-" + String(i).padStart(6, "0")] = i;
      return Object.assign({}, state, { keys });
    }
    case "GO":
      return Object.assign({}, state, { go: true });
    case "INC": {
      const by = state.by.slice();
      while (by.length <= action.src) by.push(0);
      by[action.src] += 1;
      return Object.assign({}, state, { by, total: state.total + 1 });
    }
    default:
      return state;
  }
}

function expectedTotal(a) {
  if (a.dispatcher === "peers") return a.k * a.peers;
  if (a.dispatcher === "master") return a.k;
  return a.n;
}

// Whether a copy has applied every action at least once: every source's
// count reached its target. Not `total >= expected`: a copy that applied
// some action twice reaches that total before it has seen every action.
function hasAll(a, s) {
  const by = s.by || [];
  if (!s.go) return false;
  if (a.dispatcher === "peers") {
    for (let i = 1; i <= a.peers; i++) if ((by[i] || 0) < a.k) return false;
    return true;
  }
  if (a.dispatcher === "master") return (by[0] || 0) >= a.k;
  return by.reduce((x, y) => x + (y || 0), 0) >= a.n;
}

function isExact(a, s) {
  const by = s.by || [];
  let perSource;
  if (a.dispatcher === "peers") {
    perSource = true;
    for (let i = 1; i <= a.peers; i++) if (by[i] !== a.k) perSource = false;
  } else if (a.dispatcher === "master") {
    perSource = by[0] === a.k;
  } else {
    perSource = by.reduce((x, y) => x + (y || 0), 0) === a.n;
  }
  return s.total === expectedTotal(a) && perSource && Object.keys(s.keys || {}).length === a.keys && s.go === true;
}

function peakRssMib() {
  // maxRSS is in KiB on Linux.
  return process.resourceUsage().maxRSS / 1024;
}

function createStore(ReduxCluster, a) {
  const store = ReduxCluster.createStore(benchReducer);
  store.mode = a.mode;
  // Errors must not vanish: the package reports through this hook.
  store.stderr = (e) => process.stderr.write(`redux-cluster: ${e}\n`);
  return store;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.round((sorted.length - 1) * p);
  return sorted[Math.min(i, sorted.length - 1)];
}

// ---------------------------------------------------------------- coordinator

function coordinator(a) {
  const { ReduxCluster, version } = loadPackage();
  const store = createStore(ReduxCluster, a);
  const total = expectedTotal(a);
  const children = []; // { id, send(msg), proc }
  const done = new Map();
  const finals = new Map();
  let onFinal = () => {};
  let ready = 0;
  let start = null;
  let coordDone = false;
  let finished = false;
  let sockDir = null;

  const watchdog = setTimeout(() => {
    process.stderr.write(`harness: timeout after ${a.timeout} s (coordinator total ${store.getState().total}/${total}, ${done.size}/${a.peers} peers done)\n`);
    shutdown(3);
  }, a.timeout * 1000);

  function shutdown(code) {
    clearTimeout(watchdog);
    for (const c of children) {
      try { c.send({ bench: "exit" }); } catch (_) { /* already gone */ }
    }
    // Peers exit on request; any that do not are killed.
    const deadline = setTimeout(() => {
      for (const c of children) { try { c.proc.kill("SIGKILL"); } catch (_) { /* gone */ } }
      finish(code);
    }, 2000);
    let alive = children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null).length;
    if (alive === 0) { clearTimeout(deadline); finish(code); return; }
    for (const c of children) {
      c.proc.once("exit", () => {
        alive -= 1;
        if (alive === 0) { clearTimeout(deadline); finish(code); }
      });
    }
  }

  function finish(code) {
    if (sockDir) fs.rmSync(sockDir, { recursive: true, force: true });
    process.exit(code);
  }

  function maybeFinish() {
    if (finished || !coordDone || done.size !== a.peers) return;
    finished = true;
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    const reports = [...done.values()];
    const allExact = isExact(a, store.getState()) && reports.every((r) => r.exact);
    const lat = reports.map((r) => r.latency_us).find((l) => l) || null;
    const round1 = (x) => (x === null ? null : Math.round(x * 10) / 10);
    const out = {
      system: "node",
      transport: a.transport,
      mode: a.mode,
      dispatcher: a.dispatcher,
      peers: a.peers,
      k: a.dispatcher === "latency" ? a.n : a.k,
      keys: a.keys,
      actions_per_s: Math.round(total / elapsed),
      p50_us: lat ? round1(lat[0]) : null,
      p99_us: lat ? round1(lat[1]) : null,
      max_us: lat ? round1(lat[2]) : null,
      coord_rss_mib: round1(peakRssMib()),
      peer_rss_mib: round1(Math.max(0, ...reports.map((r) => r.rss_mib))),
      exact: allExact,
    };
    // Why a run was inexact goes to stderr, so stdout stays one JSON line.
    if (!allExact) {
      const s = store.getState();
      process.stderr.write(`harness: inexact: coordinator total=${s.total} by=${JSON.stringify(s.by)}; peers ${JSON.stringify(reports.map((r) => ({ id: r.id, exact: r.exact, total: r.total, by: r.by })))}\n`);
    }
    // One extra key, out of the clock: is every copy exact once the link is
    // quiet? The package's resync snapshot (sent 100 ms after every
    // `resync`-th action) can repair, or cause, a double apply after the end.
    setTimeout(() => {
      for (const c of children) c.send({ bench: "final" });
      const settleDeadline = setTimeout(() => print(null), 5000);
      onFinal = () => {
        if (finals.size !== a.peers) return;
        clearTimeout(settleDeadline);
        print(isExact(a, store.getState()) && [...finals.values()].every((f) => f.exact));
      };
    }, SETTLE_MS);
    function print(settled) {
      out.exact_settled = settled;
      process.stdout.write(JSON.stringify(out) + "\n");
      process.stderr.write(`harness: redux-cluster ${version}, node ${process.version}\n`);
      shutdown(0);
    }
  }

  function onReport(msg) {
    if (!msg || typeof msg !== "object" || !msg.bench) return;
    if (msg.bench === "ready") {
      ready += 1;
      if (ready === a.peers) go();
    } else if (msg.bench === "done") {
      done.set(msg.id, msg);
      maybeFinish();
    } else if (msg.bench === "final") {
      finals.set(msg.id, msg);
      onFinal();
    }
  }

  function go() {
    start = process.hrtime.bigint();
    store.dispatch({ type: "GO" });
    if (a.dispatcher === "master") {
      for (let i = 0; i < a.k; i++) store.dispatch({ type: "INC", src: 0 });
    }
  }

  store.subscribe(() => {
    if (!coordDone && start !== null && hasAll(a, store.getState())) {
      coordDone = true;
      maybeFinish();
    }
  });

  if (a.keys > 0) store.dispatch({ type: "FILL", n: a.keys });

  const argv = process.argv.slice(2);
  if (a.transport === "ipc") {
    cluster.on("message", (worker, msg) => onReport(msg));
    for (let id = 1; id <= a.peers; id++) {
      const w = cluster.fork({ [PEER_ENV]: String(id) });
      children.push({ id, send: (m) => w.send(m), proc: w.process });
    }
  } else {
    let server;
    let addr;
    if (a.transport === "unix") {
      sockDir = fs.mkdtempSync(path.join(os.tmpdir(), "rc-node-bench-"));
      const p = path.join(sockDir, "bench.sock");
      server = store.createServer({ path: p, logins: { [LOGIN]: PASSWORD } });
      addr = JSON.stringify({ path: p });
    } else {
      // Loopback only; port 0 lets the kernel pick a free port.
      server = store.createServer({ host: "127.0.0.1", port: 0, logins: { [LOGIN]: PASSWORD } });
    }
    server.server.once("listening", () => {
      if (a.transport === "tcp") addr = JSON.stringify({ host: "127.0.0.1", port: server.server.address().port });
      for (let id = 1; id <= a.peers; id++) {
        const c = childProcess.fork(__filename, argv, {
          env: Object.assign({}, process.env, { [PEER_ENV]: String(id), [ADDR_ENV]: addr }),
        });
        c.on("message", onReport);
        children.push({ id, send: (m) => c.send(m), proc: c });
      }
    });
  }
}

// ----------------------------------------------------------------------- peer

function peer(a) {
  const { ReduxCluster } = loadPackage();
  const id = Number(process.env[PEER_ENV]);
  const store = createStore(ReduxCluster, a);
  const total = expectedTotal(a);
  const report = (m) => process.send(m);
  let joined = false;
  let started = false;
  let reported = false;
  // Latency probe: the send time of the one action in flight, if any.
  let inFlight = null;
  let mine = 0;
  const samples = [];

  process.on("message", (m) => {
    if (m && m.bench === "exit") process.exit(0);
    if (m && m.bench === "final") report({ bench: "final", id, exact: isExact(a, store.getState()) });
  });
  // If the coordinator dies, do not linger (a socket client would otherwise
  // reconnect forever).
  process.on("disconnect", () => process.exit(1));

  function probe() {
    inFlight = process.hrtime.bigint();
    store.dispatch({ type: "INC", src: id });
  }

  function run() {
    if (a.dispatcher === "peers") {
      for (let i = 0; i < a.k; i++) store.dispatch({ type: "INC", src: id });
    } else if (a.dispatcher === "latency" && id === 1 && a.n > 0) {
      probe();
    }
  }

  store.subscribe(() => {
    const s = store.getState();
    // The first update this peer sees is the snapshot the package sends
    // on join (REDUX_CLUSTER_START): from then on it receives every action.
    if (!joined) {
      joined = true;
      report({ bench: "ready", id });
    }
    if (!started && s.go) {
      started = true;
      // Out of the reducer's notification before dispatching.
      setImmediate(run);
    }
    if (inFlight !== null) {
      const seen = (s.by && s.by[id]) || 0;
      if (seen > mine) {
        samples.push(Number(process.hrtime.bigint() - inFlight) / 1e3);
        mine = seen;
        inFlight = null;
        if (samples.length < a.n) setImmediate(probe);
      }
    }
    if (!reported && hasAll(a, s)) {
      reported = true;
      let latency = null;
      if (a.dispatcher === "latency" && id === 1) {
        const sorted = samples.slice().sort((x, y) => x - y);
        latency = [percentile(sorted, 0.5), percentile(sorted, 0.99), percentile(sorted, 1.0)];
      }
      report({
        bench: "done",
        id,
        exact: isExact(a, s),
        total: s.total,
        by: s.by,
        rss_mib: peakRssMib(),
        latency_us: latency,
      });
    }
  });

  if (a.transport !== "ipc") {
    const addr = JSON.parse(process.env[ADDR_ENV]);
    store.createClient(Object.assign(addr, { login: LOGIN, password: PASSWORD }));
  }
}

// ----------------------------------------------------------------------- main

const args = parseArgs(process.argv.slice(2));
if (process.env[PEER_ENV]) {
  peer(args);
} else {
  coordinator(args);
}
