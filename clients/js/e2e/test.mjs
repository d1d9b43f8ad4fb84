// Two headless Chromium pages and the Rust master (through the `web`
// example's standard input) dispatch to one store; all three must end with
// the same state. A page with a wrong password must show an error, and a page
// given a password must refuse impostor servers that admit it without
// proving they know the password (no challenge, or a forged signature).
// A React page built by Vite from the packed npm tarball (e2e/react-app)
// must show the state through useSelector and dispatch through useDispatch.
// Usage: node test.mjs path/to/target/debug/examples/web [react-app/dist]
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const LIMIT = 60_000; // guards against a hang; not a timing assertion
const exe = process.argv[2];
const reactDist = process.argv[3];
if (!exe) throw new Error("usage: node test.mjs path/to/web-example");

const server = spawn(exe, ["--http", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--login", "test2", "--password", "123456"], {
  stdio: ["pipe", "pipe", "inherit"],
});
const lines = createInterface({ input: server.stdout });
const waiting = [];
const seen = [];
lines.on("line", (line) => {
  const i = waiting.findIndex((w) => line.startsWith(w.prefix));
  if (i >= 0) waiting.splice(i, 1)[0].resolve(line);
  else seen.push(line);
});
/** The next line from the example starting with `prefix`. */
function line(prefix) {
  const i = seen.findIndex((l) => l.startsWith(prefix));
  if (i >= 0) return Promise.resolve(seen.splice(i, 1)[0]);
  return new Promise((resolve, reject) => {
    waiting.push({ prefix, resolve });
    setTimeout(() => reject(new Error(`no "${prefix}" line from the example`)), LIMIT);
  });
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e?.stack ?? e}`);
  }
}

/** JSON text with object keys sorted: key order carries no meaning. */
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

function same(a, b, what) {
  const x = canonical(a);
  const y = canonical(b);
  if (x !== y) throw new Error(`${what}: ${x} != ${y}`);
}

/** A WebSocket text frame from the server (unmasked). */
function frame(text) {
  const payload = Buffer.from(text);
  let head;
  if (payload.length < 126) head = Buffer.from([0x81, payload.length]);
  else {
    head = Buffer.alloc(4);
    head[0] = 0x81;
    head[1] = 126;
    head.writeUInt16BE(payload.length, 2);
  }
  return Buffer.concat([head, payload]);
}

/** The text of each complete masked frame from a client at the front of `buf`. */
function* clientFrames(state) {
  for (;;) {
    const buf = state.buf;
    if (buf.length < 2) return;
    let len = buf[1] & 0x7f;
    let at = 2;
    if (len === 126) {
      if (buf.length < 4) return;
      len = buf.readUInt16BE(2);
      at = 4;
    } else if (len === 127) return; // the client sends nothing that large here
    if (buf.length < at + 4 + len) return;
    const mask = buf.subarray(at, at + 4);
    const data = Buffer.from(buf.subarray(at + 4, at + 4 + len)).map((b, i) => b ^ mask[i % 4]);
    state.buf = buf.subarray(at + 4 + len);
    if ((buf[0] & 0x0f) === 1) yield data.toString();
  }
}

/**
 * A server that speaks just enough of the protocol to admit anyone and show
 * them a state, without knowing any password: it answers the hello with a
 * welcome (`forge: false`), or with a made-up challenge and then a welcome
 * with a forged signature (`forge: true`). Resolves to its port.
 */
function impostor(forge) {
  const server = createServer();
  server.on("upgrade", (req, socket) => {
    const accept = createHash("sha1")
      .update(`${req.headers["sec-websocket-key"]}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const state = { buf: Buffer.alloc(0) };
    const admit = () => {
      const signature = forge ? "00".repeat(32) : null;
      socket.write(frame(JSON.stringify({ type: "welcome", login: "test2", read_only: false, signature, epoch: "1" })));
      socket.write(frame(JSON.stringify({ type: "snapshot", epoch: "1", seq: 7, state: { counter: 4242, todos: [] } })));
    };
    socket.on("data", (chunk) => {
      state.buf = Buffer.concat([state.buf, chunk]);
      for (const text of clientFrames(state)) {
        const msg = JSON.parse(text);
        if (msg.type === "hello" && forge) {
          const challenge = { type: "challenge", salt: randomBytes(16).toString("hex"), iterations: 4096, nonce: randomBytes(32).toString("hex") };
          socket.write(frame(JSON.stringify(challenge)));
        } else if (msg.type === "hello" || msg.type === "proof") admit();
      }
    });
    socket.on("error", () => {});
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: server.address().port })));
}

/** Serves the files of `dir` on a free loopback port. */
function serveDir(dir) {
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    try {
      const body = await readFile(join(dir, path === "/" ? "index.html" : path));
      res.writeHead(200, { "content-type": types[extname(path)] ?? "text/html" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: server.address().port })));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});

try {
  const http = (await line("http ")).split(" ")[1];
  const wsUrl = (await line("ws ")).split(" ")[1];
  const context = await browser.newContext();
  const open = async (password) => {
    const page = await context.newPage();
    page.on("pageerror", (e) => console.log(`page error: ${e}`));
    await page.goto(`${http}?login=test2&password=${encodeURIComponent(password)}`);
    return page;
  };
  const connected = (page) => page.waitForSelector("#status.up", { timeout: LIMIT });

  await check("two pages and the Rust master converge", async () => {
    const [a, b] = [await open("123456"), await open("123456")];
    await Promise.all([connected(a), connected(b)]);
    // Each page dispatches through its UI and through the client API.
    await a.click("#inc");
    await a.fill("#text", "from page a");
    await a.press("#text", "Enter");
    await b.click("#inc");
    await b.click("#dec");
    await b.evaluate(() => window.board.dispatch({ AddTodo: "from page b" }));
    server.stdin.write("inc\nadd from rust\n");
    await line("dispatched");
    await line("dispatched");
    const done = (s) => s && s.counter === 2 && s.todos.length === 3;
    for (const p of [a, b]) {
      await p.waitForFunction(
        (src) => new Function("s", `return (${src})(s)`)(window.board.getState()),
        done.toString(),
        { timeout: LIMIT },
      );
    }
    // A toggle from one page shows on the other.
    await a.click("#todos li:first-child input[type=checkbox]");
    await b.waitForSelector("#todos li.done", { timeout: LIMIT });
    await a.waitForSelector("#todos li.done", { timeout: LIMIT });
    const seqA = await a.evaluate(() => window.board.seq);
    const seqB = await b.evaluate(() => window.board.seq);
    if (seqA !== seqB) await b.waitForFunction((s) => window.board.seq >= s, seqA, { timeout: LIMIT });
    server.stdin.write("state\n");
    const rust = JSON.parse((await line("state ")).slice("state ".length));
    same(await a.evaluate(() => window.board.getState()), rust, "page a vs rust");
    same(await b.evaluate(() => window.board.getState()), rust, "page b vs rust");
    same(await a.textContent("#counter"), String(rust.counter), "counter shown");
    same((await b.$$("#todos li")).length, rust.todos.length, "todos shown");
  });

  await check("a wrong password shows an error on the page", async () => {
    const page = await open("wrong");
    await page.waitForFunction(() => document.getElementById("error").textContent.includes("bad_credentials"), null, {
      timeout: LIMIT,
    });
    const text = await page.textContent("#error");
    if (!text.includes("wrong login or password")) throw new Error(`error shown: ${text}`);
  });

  await check("commit resolves at the ack, dispatch once the state holds it", async () => {
    const page = await open("123456");
    await connected(page);
    const committed = await page.evaluate(() => window.board.commit({ AddTodo: "committed" }));
    if (!(committed > 0)) throw new Error(`commit resolved with ${committed}`);
    await page.waitForFunction((s) => window.board.seq >= s, committed, { timeout: LIMIT });
    const dispatched = await page.evaluate(async () => {
      const seq = await window.board.dispatch({ AddTodo: "dispatched" });
      return { seq, here: window.board.seq, has: window.board.getState().todos.some((t) => t.text === "dispatched") };
    });
    if (!(dispatched.seq > committed)) throw new Error(`dispatch seq ${dispatched.seq} after commit ${committed}`);
    if (dispatched.here < dispatched.seq || !dispatched.has) throw new Error(`dispatch resolved before the state held it: ${JSON.stringify(dispatched)}`);
  });

  await check("an action the server's validator rejects is applied nowhere and its promise rejects with the reason", async () => {
    const page = await open("123456");
    await connected(page);
    const outcome = await page.evaluate(async () => {
      const before = window.board.getState().todos.length;
      const settle = (p) => p.then((seq) => ({ seq }), (e) => ({ reason: e.reason, message: e.message }));
      const committed = await settle(window.board.commit({ AddTodo: "   " }));
      const dispatched = await settle(window.board.dispatch({ RemoveTodo: 100000 }));
      // A later action is applied, and the rejected ones are still absent.
      const seq = await window.board.dispatch({ AddTodo: "after the rejections" });
      const todos = window.board.getState().todos;
      return { before, committed, dispatched, seq, count: todos.length, blank: todos.some((t) => t.text.trim() === "") };
    });
    const { committed, dispatched } = outcome;
    if (committed.reason !== "rejected" || committed.message !== "a todo needs some text") {
      throw new Error(`commit: ${JSON.stringify(outcome)}`);
    }
    if (dispatched.reason !== "rejected" || dispatched.message !== "there is no todo #100000") {
      throw new Error(`dispatch: ${JSON.stringify(outcome)}`);
    }
    if (outcome.blank || outcome.count !== outcome.before + 1) throw new Error(`state: ${JSON.stringify(outcome)}`);
  });

  await check("a loop of dispatches travels in batches and every one gets its own seq", async () => {
    const page = await open("123456");
    await connected(page);
    const out = await page.evaluate(async () => {
      const before = window.board.getState().counter;
      const t = performance.now();
      const ps = [];
      for (let i = 0; i < 3000; i++) ps.push(window.board.dispatch("Increment"));
      const callMs = performance.now() - t;
      const seqs = await Promise.all(ps);
      return { before, after: window.board.getState().counter, seqs, callMs };
    });
    const { seqs } = out;
    const consecutive = seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1);
    if (out.after !== out.before + 3000 || !consecutive) {
      throw new Error(`counter ${out.before} -> ${out.after}, seqs ${seqs[0]}..${seqs[seqs.length - 1]} consecutive ${consecutive}`);
    }
    console.log(`  (3,000 dispatch() calls took ${out.callMs.toFixed(1)} ms in Chromium)`);
  });

  await check("the Redux DevTools bridge shows each applied action with its seq", async () => {
    const page = await context.newPage();
    page.on("pageerror", (e) => console.log(`page error: ${e}`));
    // A stand-in for the extension: it records what the page tells it.
    await page.addInitScript(() => {
      window.devtoolsLog = [];
      window.__REDUX_DEVTOOLS_EXTENSION__ = {
        connect: ({ name }) => ({
          init: (state) => window.devtoolsLog.push({ kind: "init", name, todos: state.todos.length }),
          send: (action, state) => window.devtoolsLog.push({ kind: "send", action, todos: state.todos.map((t) => t.text) }),
        }),
      };
    });
    await page.goto(`${http}?login=test2&password=123456`);
    await connected(page);
    const seq = await page.evaluate(() => window.board.dispatch({ AddTodo: "seen in devtools" }));
    const log = await page.evaluate(() => window.devtoolsLog);
    if (log[0]?.kind !== "init" || log[0].name !== "board") throw new Error(`no init first: ${JSON.stringify(log)}`);
    const sent = log.filter((e) => e.kind === "send" && e.action.seq === seq);
    if (sent.length !== 1) throw new Error(`seq ${seq} sent ${sent.length} times: ${JSON.stringify(log)}`);
    const { action, todos } = sent[0];
    if (action.type !== "AddTodo" || action.payload.AddTodo !== "seen in devtools" || !todos.includes("seen in devtools")) {
      throw new Error(`sent: ${JSON.stringify(sent[0])}`);
    }
  });

  if (reactDist) {
    await check("a React page built from the packed package shows and changes the state", async () => {
      const site = await serveDir(reactDist);
      try {
        const page = await context.newPage();
        page.on("pageerror", (e) => console.log(`page error: ${e}`));
        const q = new URLSearchParams({ ws: wsUrl, login: "test2", password: "123456" });
        await page.goto(`http://127.0.0.1:${site.port}/?${q}`);
        await page.waitForFunction(() => /^\d+$/.test(document.getElementById("counter")?.textContent ?? ""), null, {
          timeout: LIMIT,
        });
        const before = Number(await page.textContent("#counter"));
        await page.click("#inc");
        await page.waitForFunction((n) => document.getElementById("counter").textContent === String(n), before + 1, {
          timeout: LIMIT,
        });
        // A change elsewhere in the state does not re-render the counter.
        const renders = await page.evaluate(() => window.renders);
        const seq = await page.evaluate(() => window.board.dispatch({ AddTodo: "not the counter" }));
        await page.waitForFunction((s) => window.board.seq >= s, seq, { timeout: LIMIT });
        const after = await page.evaluate(() => window.renders);
        if (after !== renders) throw new Error(`re-rendered ${after - renders} times for a change it does not select`);
      } finally {
        site.server.close();
      }
    });
  }

  for (const forge of [false, true]) {
    const what = forge ? "a forged signature" : "no challenge";
    await check(`a page with a password refuses an impostor server (${what})`, async () => {
      const { server: fake, port } = await impostor(forge);
      try {
        const page = await context.newPage();
        await page.goto(`${http}?login=test2&password=123456&ws=${encodeURIComponent(`ws://127.0.0.1:${port}/`)}`);
        await page.waitForFunction(() => document.getElementById("error").textContent.includes("could not prove"), null, {
          timeout: LIMIT,
        });
        // The impostor's state was never shown.
        const state = await page.evaluate(() => window.board.getState());
        if (state && state.counter === 4242) throw new Error("the impostor's state was applied");
        if (!(await page.$eval("#board", (b) => b.hidden))) throw new Error("the board is shown");
        if ((await page.textContent("#counter")) === "4242") throw new Error("the impostor's counter is shown");
      } finally {
        fake.close();
      }
    });
  }
} finally {
  await browser.close();
  server.kill();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
