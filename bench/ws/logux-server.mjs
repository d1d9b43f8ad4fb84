// The Logux side of bench/ws/run: a counter that every client follows.
// Usage: node logux-server.mjs PORT. Prints `ws ws://127.0.0.1:PORT/` once
// listening. Production mode, logging errors only, no persistence.
import { Server } from "@logux/server";

const port = Number(process.argv[2]);
const server = new Server({
  subprotocol: 1,
  minSubprotocol: 1,
  host: "127.0.0.1",
  port,
  env: "production",
  // Quiet: only errors (logging every action would slow it down).
  logger: {
    debug() {},
    info() {},
    warn() {},
    error: (details, msg) => console.error(msg, details),
    fatal: (details, msg) => console.error(msg, details),
  },
});
server.auth(() => true);
let counter = 0;
server.type("inc", {
  access: () => true,
  resend: () => ({ channel: "counter" }),
  process() {
    counter += 1;
  },
});
server.channel("counter", {
  access: () => true,
  load: () => ({ type: "counter/state", value: counter }),
});
await server.listen();
console.log(`ws ws://127.0.0.1:${port}/`);
