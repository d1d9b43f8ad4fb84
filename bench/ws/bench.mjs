// Browser protocol, side by side: N clients (Node, the `ws` package) on our
// WebSocket bridge with our TS client, and on a Logux server with its own
// client, doing the same work. Run through bench/ws/run, which builds and
// installs what this needs.
//
// Usage: node bench.mjs WEB_EXE [--reps R] [--ns 1,10,100,1000] [--quick]
//        [--big-n N] [--big-k K]   (the "ours alone" run; default 100 and 200,000)
//
// Per system and N, in a fresh server process each time:
// - round trip: client 0 makes R_T awaited dispatches one after another
//   (ours: `dispatch`, resolved once its own state holds the action;
//   Logux: `sync`, resolved when the server has processed it);
// - fan-out: client 0 fires K increments without waiting; the clock stops
//   when every one of the N clients has all K. Reported: actions/s that
//   reached every client (K / time) and the time client 0 spent inside
//   its K dispatch calls, per call;
// - server memory: peak RSS of the server process (VmHWM) at the end.
// Then ours alone (N = 100 by default) with a K large enough to time well.
// Systems alternate (the order flips every repetition); medians.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";

globalThis.WebSocket = WebSocket;
const { connect } = await import("../../clients/js/dist/index.js");
const { Client } = await import("@logux/client");
const { WsConnection } = await import("@logux/core");

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const webExe = args[0];
if (!webExe) throw new Error("usage: node bench.mjs WEB_EXE [--reps R] [--ns 1,10,100,1000] [--quick]");
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const quick = args.includes("--quick");
const reps = Number(opt("--reps", quick ? 1 : 5));
const ns = opt("--ns", quick ? "1,10" : "1,10,100,1000").split(",").map(Number);
/** Increments per fan-out run, by N (the same for both systems). */
const kFor = (n) => (quick ? 200 : n >= 1000 ? 200 : n >= 100 ? 1000 : n >= 10 ? 2000 : 5000);
const roundTrips = quick ? 200 : 2000;
const bigK = Number(opt("--big-k", quick ? 20000 : 200000));
const bigN = Number(opt("--big-n", 100));
const LIMIT = 600_000; // guards against a hang; not a timing assertion

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round((s.length - 1) * p))];
};
function within(promise, what) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`timed out: ${what}`)), LIMIT)))]).finally(() => clearTimeout(t));
}
function kib(pid, field) {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`${field}:\\s+(\\d+) kB`));
  return m ? Number(m[1]) : 0;
}
function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts a server process; resolves with its pid, ws URL and a stop(). */
async function startServer(system) {
  const proc =
    system === "ours"
      ? spawn(webExe, ["--http", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--open", "yes", "--actions", "no"], {
          stdio: ["pipe", "pipe", "inherit"],
        })
      : spawn(process.execPath, [join(here, "logux-server.mjs"), String(await freePort())], {
          stdio: ["ignore", "pipe", "inherit"],
          env: { ...process.env, NODE_ENV: "production" },
        });
  const lines = createInterface({ input: proc.stdout });
  const url = await within(
    new Promise((resolve, reject) => {
      lines.on("line", (l) => l.startsWith("ws ") && resolve(l.split(" ")[1]));
      proc.on("exit", (code) => reject(new Error(`${system} server exited (${code})`)));
    }),
    `${system} server start`,
  );
  return {
    pid: proc.pid,
    url,
    stop: () => {
      proc.kill("SIGKILL");
      return new Promise((r) => (proc.exitCode !== null ? r() : proc.on("exit", r)));
    },
  };
}

/** Our TS client, seen as a counter. */
async function ourClient(url) {
  const c = connect({ url, onError: () => {} });
  await c.ready();
  let waiters = [];
  c.subscribe((s) => {
    waiters = waiters.filter((w) => (s.counter >= w.at ? (w.resolve(), false) : true));
  });
  return {
    count: () => c.getState().counter,
    until: (at) => (c.getState().counter >= at ? Promise.resolve() : new Promise((resolve) => waiters.push({ at, resolve }))),
    dispatch: () => c.dispatch("Increment"),
    close: () => c.close(),
  };
}

/** A Logux client following the counter channel. */
async function loguxClient(url, i) {
  const client = new Client({
    server: new WsConnection(url, WebSocket),
    subprotocol: 1,
    userId: `u${i}`,
    token: "t",
    allowDangerousProtocol: true,
  });
  let count = 0;
  let waiters = [];
  const bump = (n) => {
    count = n;
    waiters = waiters.filter((w) => (count >= w.at ? (w.resolve(), false) : true));
  };
  client.on("add", (action) => {
    if (action.type === "inc") bump(count + 1);
    else if (action.type === "counter/state") bump(Math.max(count, action.value));
  });
  client.start();
  await client.sync({ type: "logux/subscribe", channel: "counter" });
  return {
    count: () => count,
    until: (at) => (count >= at ? Promise.resolve() : new Promise((resolve) => waiters.push({ at, resolve }))),
    dispatch: () => client.sync({ type: "inc" }),
    close: () => client.destroy(),
  };
}

/** One run: a server of `system`, N clients, round trips, a fan-out of K. */
async function run(system, n, k, rts) {
  const server = await startServer(system);
  try {
    const make = system === "ours" ? ourClient : loguxClient;
    const clients = [];
    for (let i = 0; i < n; i += 50) {
      clients.push(...(await within(Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => make(server.url, i + j))), "connect")));
    }
    const [first] = clients;
    const lat = [];
    for (let i = 0; i < rts; i++) {
      const t = process.hrtime.bigint();
      await within(first.dispatch(), "round trip");
      lat.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    // Everyone has the round trips before the fan-out starts.
    const base = first.count();
    await within(Promise.all(clients.map((c) => c.until(base))), "settle");
    const t0 = process.hrtime.bigint();
    const acks = [];
    for (let i = 0; i < k; i++) acks.push(first.dispatch());
    const t1 = process.hrtime.bigint();
    await within(Promise.all(clients.map((c) => c.until(base + k))), "fan-out");
    const t2 = process.hrtime.bigint();
    await within(Promise.all(acks), "acks");
    const seconds = Number(t2 - t0) / 1e9;
    const out = {
      system,
      n,
      k,
      rt_p50_us: pct(lat, 0.5),
      rt_p99_us: pct(lat, 0.99),
      fanout_per_s: k / seconds,
      deliveries_per_s: (k * n) / seconds,
      dispatch_call_us: Number(t1 - t0) / 1000 / k,
      server_rss_mib: kib(server.pid, "VmRSS") / 1024,
      server_peak_rss_mib: kib(server.pid, "VmHWM") / 1024,
    };
    for (const c of clients) c.close();
    return out;
  } finally {
    await server.stop();
  }
}

const runs = [];
for (let rep = 0; rep < reps; rep++) {
  for (const n of ns) {
    const order = rep % 2 === 0 ? ["ours", "logux"] : ["logux", "ours"];
    for (const system of order) {
      const r = await run(system, n, kFor(n), roundTrips);
      r.rep = rep;
      runs.push(r);
      console.log(JSON.stringify(r));
      await sleep(200);
    }
  }
  const r = await run("ours", bigN, bigK, 10);
  r.rep = rep;
  r.big = true;
  runs.push(r);
  console.log(JSON.stringify(r));
}

const fields = ["rt_p50_us", "rt_p99_us", "fanout_per_s", "deliveries_per_s", "dispatch_call_us", "server_peak_rss_mib"];
const med = (sel) => Object.fromEntries(fields.map((f) => [f, median(runs.filter(sel).map((r) => r[f]))]));
const fmt = (x, d = 0) => x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const L = [
  `# Browser protocol: ours vs Logux (${new Date().toISOString().slice(0, 10)}, medians of ${reps})`,
  "",
  "| N clients | K | fan-out /s, ours | Logux | ratio | round trip p50 µs, ours | Logux | p99 µs, ours | Logux | dispatch call µs, ours | Logux | server peak RSS MiB, ours | Logux |",
  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
];
for (const n of ns) {
  const o = med((r) => r.system === "ours" && r.n === n && !r.big);
  const l = med((r) => r.system === "logux" && r.n === n);
  L.push(
    `| ${fmt(n)} | ${fmt(kFor(n))} | ${fmt(o.fanout_per_s)} | ${fmt(l.fanout_per_s)} | ${fmt(o.fanout_per_s / l.fanout_per_s, 1)}× | ` +
      `${fmt(o.rt_p50_us, 1)} | ${fmt(l.rt_p50_us, 1)} | ${fmt(o.rt_p99_us, 1)} | ${fmt(l.rt_p99_us, 1)} | ` +
      `${fmt(o.dispatch_call_us, 2)} | ${fmt(l.dispatch_call_us, 2)} | ${fmt(o.server_peak_rss_mib, 1)} | ${fmt(l.server_peak_rss_mib, 1)} |`,
  );
}
const big = med((r) => r.big);
L.push(
  "",
  `Ours alone, N = ${fmt(bigN)}, K = ${fmt(bigK)}: ${fmt(big.fanout_per_s)} actions/s reached every client ` +
    `(${fmt(big.deliveries_per_s)} deliveries/s), dispatch call ${fmt(big.dispatch_call_us, 2)} µs, ` +
    `server peak RSS ${fmt(big.server_peak_rss_mib, 1)} MiB.`,
  "",
  "Clients: one Node process (the `ws` package), all N in it; servers: ours the `web` example",
  "(`--open yes --actions no`), Logux `@logux/server` 0.14 in production mode (bench/ws/logux-server.mjs).",
  `Machine: ${(await import("node:os")).cpus().length} CPUs, load average (1 min) at the end ${(await import("node:os")).loadavg()[0].toFixed(2)}.`,
);
const outDir = join(here, "..", "results");
mkdirSync(outDir, { recursive: true });
if (!quick) {
  writeFileSync(join(outDir, "ws.json"), JSON.stringify({ date: new Date().toISOString(), runs }, null, 1));
  writeFileSync(join(outDir, "ws.md"), L.join("\n") + "\n");
}
console.log(L.join("\n"));
process.exit(0);
