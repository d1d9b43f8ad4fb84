/**
 * Browser client for a redux-cluster store served with `serve_ws`
 * (the Rust crate's `ws` feature).
 *
 * ```ts
 * import { connect } from "redux-cluster-ws-client";
 * const store = connect<Board, BoardAction>({ url: "ws://127.0.0.1:10002", login: "test2", password: "123456" });
 * store.subscribe((state) => render(state));
 * const seq = await store.dispatch({ Push: "milk" });   // resolves once the state here includes it
 * ```
 *
 * Uses only browser APIs (WebSocket, WebCrypto); no Node modules. The
 * login is SCRAM-SHA-256 (the password never crosses the wire), which needs
 * WebCrypto, which needs a secure context: a page on https, or on
 * http://localhost / 127.0.0.1.
 *
 * Actions are the serde_json form of the Rust enum (externally tagged):
 * a unit variant is a string (`"Done"`), a newtype variant `{"SetVersion": "x"}`,
 * a tuple variant `{"Move": [1, 2]}`, a struct variant `{"Tag": {"name": "a", "n": 1}}`.
 */

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One RFC 6902 operation (this client applies add, remove and replace). */
export type PatchOp =
  | { op: "add"; path: string; value: Json }
  | { op: "remove"; path: string }
  | { op: "replace"; path: string; value: Json };

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** `ws://host:port/` or `wss://host:port/`. */
  url: string;
  /** Login, when the server has logins. */
  login?: string;
  /** Password of `login`. */
  password?: string;
  /** First reconnect delay (default 250 ms); doubles up to `maxBackoffMs`. */
  backoffMs?: number;
  /** Longest reconnect delay (default 10 s). */
  maxBackoffMs?: number;
  /** Errors the caller cannot get otherwise (a refused login, an error frame without id). */
  onError?: (error: ClusterError) => void;
  /** Called whenever the connection comes up or goes down. */
  onStatus?: (connected: boolean) => void;
  /** Called with each whole state the server sends (the first, and after a gap). */
  onSnapshot?: (state: Json, seq: number) => void;
  /**
   * Called with each applied action, in order, when the server sends them
   * (`WsConfig::actions(true)` in Rust), with the state after the patch that
   * carried it (one patch may cover several actions). See `reduxDevTools`.
   */
  onAction?: (action: Json, seq: number, state: Json) => void;
}

/** Why something failed. `reason` is the server's refusal reason when refused. */
export class ClusterError extends Error {
  constructor(
    message: string,
    /**
     * `banned`, `bad_credentials`, `login_required`, `protocol`, `disconnected`, `closed`, `dispatch`, `server`,
     * or `rejected`: the server's validator refused the action (the message is its reason); it was applied nowhere.
     */
    readonly reason: string,
  ) {
    super(message);
    this.name = "ClusterError";
  }
}

/** A store mirrored from the server. */
export interface ClusterClient<S, A> {
  /** The newest state received; `undefined` before the first snapshot. */
  getState(): S | undefined;
  /** Sequence number of the state held here. */
  readonly seq: number;
  /** Whether the connection is up and logged in. */
  readonly connected: boolean;
  /** Calls `fn` with every new state; returns the unsubscribe function. */
  subscribe(fn: (state: S, seq: number) => void): () => void;
  /**
   * Sends an action; resolves with its sequence number once the state here
   * includes it. Rejects with a {@link ClusterError}: `dispatch` when the
   * server refused it (read-only login, not an action of this store),
   * `disconnected` when the link dropped after sending (it may or may not
   * have been applied), `closed` after {@link close}. Actions dispatched
   * while disconnected wait and go out after the next login.
   */
  dispatch(action: A): Promise<number>;
  /**
   * Sends an action; resolves with its sequence number as soon as the
   * server acknowledges it (applied there, and on disk when the server
   * journals), which can be before the state here includes it (on a
   * master the ack always comes first). Rejects as {@link dispatch} does.
   */
  commit(action: A): Promise<number>;
  /** Resolves once the first state has arrived; rejects if the login is refused. */
  ready(): Promise<void>;
  /** Closes for good. */
  close(): void;
}

const DOMAIN = "redux-cluster auth v1";
const MIN_ITERATIONS = 4096;
const MAX_ITERATIONS = 10_000_000;
/** Refusals that retrying will not fix. */
const FATAL = new Set(["banned", "bad_credentials", "login_required", "protocol"]);

/** Most bytes of actions one `dispatches` frame carries (the server takes 1 MiB by default). */
const BATCH_BYTES = 256 * 1024;
/** Most actions one `dispatches` frame carries (a server takes 1,024 in flight by default). */
const BATCH_ACTIONS = 1024;

interface Pending {
  resolve: (seq: number) => void;
  reject: (e: ClusterError) => void;
  /** Resolve at the ack rather than once the state here includes it. */
  atAck: boolean;
}

/** Connects to a store; reconnects with backoff and resumes on its own. */
export function connect<S = Json, A = Json>(options: ConnectOptions): ClusterClient<S, A> {
  return new Client<S, A>(options);
}

class Client<S, A> implements ClusterClient<S, A> {
  private ws: WebSocket | null = null;
  private state: Json | undefined = undefined;
  private epoch: string | null = null;
  private seqHere = 0;
  private up = false;
  private closed = false;
  private delay: number;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private subscribers = new Set<(state: S, seq: number) => void>();
  private nextId = 1;
  /** Sent, not acked. */
  private inflight = new Map<number, Pending>();
  /** Acked at a seq not reached here yet. */
  private acked: { seq: number; p: Pending }[] = [];
  /** Dispatched while down. */
  private queued: { id: number; action: A; p: Pending }[] = [];
  private readyWaiters: { resolve: () => void; reject: (e: ClusterError) => void }[] = [];
  /** Dispatches made in this turn of the event loop, sent together at its end. */
  private batch: { first: number; actions: A[] } | null = null;
  private fatal: ClusterError | null = null;

  constructor(private readonly opts: ConnectOptions) {
    this.delay = opts.backoffMs ?? 250;
    this.open();
  }

  getState(): S | undefined {
    return this.state as S | undefined;
  }

  get seq(): number {
    return this.seqHere;
  }

  get connected(): boolean {
    return this.up;
  }

  subscribe(fn: (state: S, seq: number) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  dispatch(action: A): Promise<number> {
    return this.send(action, false);
  }

  commit(action: A): Promise<number> {
    return this.send(action, true);
  }

  private send(action: A, atAck: boolean): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (this.closed || this.fatal) {
        reject(this.fatal ?? new ClusterError("the client is closed", "closed"));
        return;
      }
      const id = this.nextId++;
      const p = { resolve, reject, atAck };
      if (this.up && this.ws) {
        this.inflight.set(id, p);
        this.transmit(id, action);
      } else {
        this.queued.push({ id, action, p });
      }
    });
  }

  ready(): Promise<void> {
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.state !== undefined) return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close();
    this.failAll(new ClusterError("the client is closed", "closed"), true);
  }

  // ---- connection ----

  private open(): void {
    if (this.closed || this.fatal) return;
    const ws = new WebSocket(this.opts.url);
    this.ws = ws;
    const clientNonce = crypto.getRandomValues(new Uint8Array(32));
    let expected: Promise<Bytes> | null = null;
    let admitted = false;
    /** State frames that arrive while the welcome's signature is checked. */
    const early: any[] = [];
    ws.onopen = () => {
      const hello: Record<string, Json> = { type: "hello", nonce: hex(clientNonce) };
      if (this.opts.login !== undefined) hello.login = this.opts.login;
      if (this.epoch !== null) hello.resume = { epoch: this.epoch, seq: this.seqHere };
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev: MessageEvent) => {
      let msg: any;
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        this.report(new ClusterError("the server sent a frame that is not JSON", "protocol"));
        return;
      }
      if (!admitted) {
        if (msg.type === "challenge") {
          const answer = scram(this.opts.login ?? "", this.opts.password ?? "", clientNonce, msg);
          expected = answer.then((a) => a.signature);
          answer.then(
            (a) => ws.send(JSON.stringify({ type: "proof", proof: hex(a.proof) })),
            (e: unknown) => this.die(new ClusterError(String(e), "protocol"), ws),
          );
          return;
        }
        if (msg.type === "welcome") {
          // With a password, a welcome without a challenge comes from a
          // server that never proved it knows the password: refuse it.
          const check = expected
            ? expected.then((sig) => sameBytes(sig, unhex(String(msg.signature ?? ""))))
            : Promise.resolve(this.opts.password === undefined);
          check.then((ok) => {
            if (!ok) {
              this.die(new ClusterError("the server could not prove that it knows the password", "protocol"), ws);
              return;
            }
            if (ws !== this.ws) return;
            admitted = true;
            this.admitted();
            for (const m of early) this.onFrame(m, ws);
            early.length = 0;
          });
          return;
        }
        if (msg.type === "refuse") {
          const err = new ClusterError(String(msg.message ?? msg.reason), String(msg.reason));
          if (FATAL.has(err.reason)) this.die(err, ws);
          else this.report(err);
          return;
        }
        // State frames can arrive while the welcome's signature is checked.
        early.push(msg);
        return;
      }
      this.onFrame(msg, ws);
    };
    ws.onclose = () => this.down(ws);
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private admitted(): void {
    this.up = true;
    this.delay = this.opts.backoffMs ?? 250;
    this.opts.onStatus?.(true);
    const queued = this.queued;
    this.queued = [];
    for (const q of queued) {
      this.inflight.set(q.id, q.p);
      this.transmit(q.id, q.action);
    }
  }

  /**
   * Adds a dispatch to the frame of this turn of the event loop: every
   * dispatch of one turn (up to BATCH_ACTIONS) goes in one `dispatches`
   * frame, encoded and sent once the caller's code has run, and is
   * answered by one `acks`.
   */
  private transmit(id: number, action: A): void {
    const b = this.batch;
    if (b && b.first + b.actions.length === id && b.actions.length < BATCH_ACTIONS) {
      b.actions.push(action);
      return;
    }
    this.flush();
    this.batch = { first: id, actions: [action] };
    queueMicrotask(() => this.flush());
  }

  /** Sends the pending batch. If the link fell meanwhile, its dispatches are already failed. */
  private flush(): void {
    const b = this.batch;
    this.batch = null;
    if (b && this.up && this.ws) this.sendBatch(this.ws, b.first, b.actions);
  }

  /** One frame for `actions` (ids from `first`), split in two while larger than BATCH_BYTES. */
  private sendBatch(ws: WebSocket, first: number, actions: A[]): void {
    if (actions.length === 1) {
      ws.send(JSON.stringify({ type: "dispatch", id: first, action: actions[0] }));
      return;
    }
    const text = JSON.stringify({ type: "dispatches", first, actions });
    if (text.length <= BATCH_BYTES) {
      ws.send(text);
      return;
    }
    const half = actions.length >> 1;
    this.sendBatch(ws, first, actions.slice(0, half));
    this.sendBatch(ws, first + half, actions.slice(half));
  }

  private onFrame(msg: any, ws: WebSocket): void {
    switch (msg.type) {
      case "snapshot":
        this.epoch = String(msg.epoch);
        this.setState(msg.state as Json, Number(msg.seq));
        this.hook(() => this.opts.onSnapshot?.(msg.state as Json, Number(msg.seq)));
        break;
      case "patch": {
        if (String(msg.epoch) !== this.epoch || Number(msg.from) !== this.seqHere || this.state === undefined) {
          // Out of step: start over from where this copy stands.
          ws.close();
          return;
        }
        try {
          const state = applyPatch(this.state, msg.ops as PatchOp[]);
          this.setState(state, Number(msg.seq));
          for (const a of (msg.actions as { seq: number; action: Json }[] | undefined) ?? []) {
            this.hook(() => this.opts.onAction?.(a.action, Number(a.seq), state));
          }
        } catch (e) {
          this.report(new ClusterError(`a patch did not apply: ${String(e)}`, "protocol"));
          this.epoch = null; // the next login gets a snapshot
          ws.close();
        }
        break;
      }
      case "ack":
        this.acked_(Number(msg.id), Number(msg.seq));
        break;
      case "acks": {
        // `null`: that one failed, and its `error` came first.
        const first = Number(msg.first);
        (msg.seqs as (number | null)[]).forEach((seq, i) => seq !== null && this.acked_(first + i, Number(seq)));
        break;
      }
      case "error": {
        const reason = msg.code === "rejected" ? "rejected" : msg.id === undefined ? "server" : "dispatch";
        const err = new ClusterError(String(msg.message), reason);
        const p = msg.id === undefined ? undefined : this.inflight.get(Number(msg.id));
        if (p) {
          this.inflight.delete(Number(msg.id));
          p.reject(err);
        } else {
          this.report(err);
        }
        break;
      }
      default:
        break;
    }
  }

  /** The server committed dispatch `id` at `seq`. */
  private acked_(id: number, seq: number): void {
    const p = this.inflight.get(id);
    if (!p) return;
    this.inflight.delete(id);
    if (p.atAck || seq <= this.seqHere) p.resolve(seq);
    else this.acked.push({ seq, p });
  }

  /** Runs a caller's hook; what it throws is reported, not raised. */
  private hook(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.report(new ClusterError(`a hook threw: ${String(e)}`, "subscriber"));
    }
  }

  private setState(state: Json, seq: number): void {
    this.state = state;
    this.seqHere = seq;
    if (this.acked.length) {
      const still: { seq: number; p: Pending }[] = [];
      for (const a of this.acked) {
        if (a.seq <= seq) a.p.resolve(a.seq);
        else still.push(a);
      }
      this.acked = still;
    }
    for (const w of this.readyWaiters.splice(0)) w.resolve();
    for (const fn of [...this.subscribers]) {
      try {
        fn(state as S, seq);
      } catch (e) {
        this.report(new ClusterError(`a subscriber threw: ${String(e)}`, "subscriber"));
      }
    }
  }

  private down(ws: WebSocket): void {
    if (ws !== this.ws) return;
    this.ws = null;
    const was = this.up;
    this.up = false;
    if (was) this.opts.onStatus?.(false);
    this.failAll(new ClusterError("the connection dropped; the action may or may not have been applied", "disconnected"), false);
    if (this.closed || this.fatal) return;
    const wait = this.delay * (0.5 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, this.opts.maxBackoffMs ?? 10_000);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.open();
    }, wait);
  }

  /** A refusal retrying cannot fix: stop for good. */
  private die(err: ClusterError, ws: WebSocket): void {
    this.fatal = err;
    this.report(err);
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
    this.failAll(err, true);
    ws.close();
  }

  private failAll(err: ClusterError, queuedToo: boolean): void {
    for (const p of this.inflight.values()) p.reject(err);
    this.inflight.clear();
    for (const a of this.acked) a.p.reject(err);
    this.acked = [];
    if (queuedToo) {
      for (const q of this.queued) q.p.reject(err);
      this.queued = [];
    }
  }

  private report(err: ClusterError): void {
    if (this.opts.onError) this.opts.onError(err);
    else console.error(err);
  }
}

// ---- RFC 6902 ----

/**
 * Applies JSON Patch operations (add, remove, replace) to `doc` without
 * changing it: containers along each path are copied, the rest is shared,
 * so a changed state is a new object (as Redux subscribers expect).
 */
export function applyPatch(doc: Json, ops: PatchOp[]): Json {
  let root = doc;
  for (const op of ops) root = applyOp(root, op);
  return root;
}

function parsePointer(path: string): string[] {
  if (path === "") return [];
  if (path[0] !== "/") throw new Error(`bad JSON pointer ${JSON.stringify(path)}`);
  return path
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function arrayIndex(token: string, len: number, allowEnd: boolean): number {
  if (allowEnd && token === "-") return len;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new Error(`bad array index ${token}`);
  const i = Number(token);
  if (i > len || (!allowEnd && i === len)) throw new Error(`array index ${i} out of range`);
  return i;
}

function applyOp(doc: Json, op: PatchOp): Json {
  const tokens = parsePointer(op.path);
  if (tokens.length === 0) {
    if (op.op === "remove") throw new Error("cannot remove the root");
    return op.value;
  }
  return edit(doc, tokens, 0, op);
}

function edit(node: Json, tokens: string[], at: number, op: PatchOp): Json {
  const token = tokens[at];
  const last = at === tokens.length - 1;
  if (Array.isArray(node)) {
    const copy = node.slice();
    if (!last) {
      const i = arrayIndex(token, copy.length, false);
      copy[i] = edit(copy[i], tokens, at + 1, op);
      return copy;
    }
    switch (op.op) {
      case "add":
        copy.splice(arrayIndex(token, copy.length, true), 0, op.value);
        break;
      case "remove":
        copy.splice(arrayIndex(token, copy.length, false), 1);
        break;
      case "replace":
        copy[arrayIndex(token, copy.length, false)] = op.value;
        break;
    }
    return copy;
  }
  if (node !== null && typeof node === "object") {
    const copy: { [key: string]: Json } = { ...node };
    if (!last) {
      if (!(token in copy)) throw new Error(`no member ${token}`);
      copy[token] = edit(copy[token], tokens, at + 1, op);
      return copy;
    }
    switch (op.op) {
      case "add":
        copy[token] = op.value;
        break;
      case "remove":
        if (!(token in copy)) throw new Error(`no member ${token} to remove`);
        delete copy[token];
        break;
      case "replace":
        if (!(token in copy)) throw new Error(`no member ${token} to replace`);
        copy[token] = op.value;
        break;
    }
    return copy;
  }
  throw new Error(`path goes through a ${node === null ? "null" : typeof node}`);
}

// ---- SCRAM-SHA-256, as the server's `auth` module ----

/** Bytes backed by a plain ArrayBuffer, as WebCrypto wants. */
type Bytes = Uint8Array<ArrayBuffer>;

interface Challenge {
  salt: string;
  iterations: number;
  nonce: string;
}

/** The proof for a challenge, and the signature a genuine server sends back. */
async function scram(
  login: string,
  password: string,
  clientNonce: Bytes,
  c: Challenge,
): Promise<{ proof: Bytes; signature: Bytes }> {
  const iterations = Number(c.iterations);
  if (!(iterations >= MIN_ITERATIONS && iterations <= MAX_ITERATIONS)) {
    throw new Error(`server asked for ${iterations} iterations; accepted range is ${MIN_ITERATIONS}..=${MAX_ITERATIONS}`);
  }
  if (!crypto.subtle) throw new Error("WebCrypto is unavailable: serve the page over https or from localhost");
  const enc = new TextEncoder();
  const salt = unhex(c.salt);
  const serverNonce = unhex(c.nonce);
  const pw = await crypto.subtle.importKey("raw", enc.encode(password), "PBKDF2", false, ["deriveBits"]);
  const salted = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, pw, 256),
  );
  const clientKey = await hmac(salted, enc.encode("Client Key"));
  const storedKey = new Uint8Array(await crypto.subtle.digest("SHA-256", clientKey));
  const serverKey = await hmac(salted, enc.encode("Server Key"));
  const loginBytes = enc.encode(login);
  const message = concat([
    enc.encode(DOMAIN),
    u64be(loginBytes.length),
    loginBytes,
    clientNonce,
    serverNonce,
    salt,
    u32be(iterations),
  ]);
  const clientSignature = await hmac(storedKey, message);
  const proof = clientKey.map((b, i) => b ^ clientSignature[i]);
  return { proof, signature: await hmac(serverKey, message) };
}

async function hmac(key: Bytes, data: Bytes): Promise<Bytes> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

function concat(parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u64be(n: number): Bytes {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

function u32be(n: number): Bytes {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

function sameBytes(a: Bytes, b: Bytes): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function hex(bytes: Bytes): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(s: string): Bytes {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new Error("bad hex from the server");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}
