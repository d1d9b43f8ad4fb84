/**
 * A bridge to the Redux DevTools browser extension: each applied action
 * shows there with its seq and the state after it.
 *
 * ```ts
 * import { connect } from "redux-cluster-ws-client";
 * import { reduxDevTools } from "redux-cluster-ws-client/devtools";
 * const store = connect({ url, ...reduxDevTools("board") });
 * ```
 *
 * The server must send the actions (`WsConfig::actions(true)` in Rust).
 * Without the extension this returns no hooks and costs nothing. The
 * DevTools are a window on the store, not its master: jumping or
 * replaying there changes nothing on the server.
 */
import type { ConnectOptions, Json } from "./index.js";

/** What the extension's `connect()` returns (the part used here). */
interface DevToolsConnection {
  init(state: Json): void;
  send(action: { type: string; seq: number; payload: Json }, state: Json): void;
}

/** The extension's global. */
interface DevToolsExtension {
  connect(options: { name: string }): DevToolsConnection;
}

/** An action's type as DevTools lists it: a unit variant's name, or the one key of the others. */
export function actionType(action: Json): string {
  if (typeof action === "string") return action;
  if (action && typeof action === "object" && !Array.isArray(action)) {
    const keys = Object.keys(action);
    if (keys.length === 1) return keys[0];
  }
  return JSON.stringify(action);
}

/** Hooks for {@link ConnectOptions} that feed the Redux DevTools extension, if the page has it. */
export function reduxDevTools(name = "redux-cluster"): Pick<ConnectOptions, "onSnapshot" | "onAction"> {
  const ext = (globalThis as { __REDUX_DEVTOOLS_EXTENSION__?: DevToolsExtension }).__REDUX_DEVTOOLS_EXTENSION__;
  if (!ext || typeof ext.connect !== "function") return {};
  const tools = ext.connect({ name });
  return {
    onSnapshot: (state) => tools.init(state),
    onAction: (action, seq, state) => tools.send({ type: actionType(action), seq, payload: action }, state),
  };
}
