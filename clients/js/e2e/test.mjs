// Two headless Chromium pages and the Rust master (through the `web`
// example's standard input) dispatch to one store; all three must end with
// the same state. A page with a wrong password must show an error.
// Usage: node test.mjs path/to/target/debug/examples/web
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const LIMIT = 60_000; // guards against a hang; not a timing assertion
const exe = process.argv[2];
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
  await line("ws ");
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
} finally {
  await browser.close();
  server.kill();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
