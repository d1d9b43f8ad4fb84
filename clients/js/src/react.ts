/**
 * React bindings: a provider for a {@link ClusterClient}, `useSelector`
 * (re-renders only when the selected value changes) and `useDispatch`.
 *
 * ```ts
 * import { connect } from "redux-cluster-ws-client";
 * import { ClusterProvider, useSelector, useDispatch } from "redux-cluster-ws-client/react";
 * const client = connect<Board, BoardAction>({ url: "ws://127.0.0.1:10002/" });
 * root.render(createElement(ClusterProvider, { client }, createElement(App)));
 * // in a component:
 * const counter = useSelector((s: Board | undefined) => s?.counter);
 * const dispatch = useDispatch<BoardAction>();
 * ```
 */
import { createContext, createElement, useCallback, useContext, useRef, useSyncExternalStore } from "react";
import type { ReactNode } from "react";
import type { ClusterClient } from "./index.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const Context = createContext<ClusterClient<any, any> | null>(null);

/** Makes `client` available to `useSelector`, `useDispatch` and `useCluster` below it. */
export function ClusterProvider<S, A>(props: { client: ClusterClient<S, A>; children?: ReactNode }) {
  return createElement(Context.Provider, { value: props.client }, props.children);
}

/** The client of the nearest {@link ClusterProvider}. */
export function useCluster<S, A>(): ClusterClient<S, A> {
  const client = useContext(Context);
  if (!client) throw new Error("useCluster: no <ClusterProvider> above this component");
  return client as ClusterClient<S, A>;
}

/**
 * A value selected from the state (`undefined` before the first snapshot).
 * The component re-renders only when a new state gives a value that differs
 * from the last one by `equal` (default `Object.is`); every change makes a
 * new root object, untouched parts keep their identity.
 */
export function useSelector<S, T>(select: (state: S | undefined) => T, equal: (a: T, b: T) => boolean = Object.is): T {
  const client = useCluster<S, unknown>();
  const last = useRef<{ state: S | undefined; value: T } | null>(null);
  const snapshot = (): T => {
    const state = client.getState();
    const prev = last.current;
    if (prev && prev.state === state) return prev.value;
    const value = select(state);
    if (prev && equal(prev.value, value)) {
      last.current = { state, value: prev.value };
      return prev.value;
    }
    last.current = { state, value };
    return value;
  };
  const subscribe = useCallback((onChange: () => void) => client.subscribe(() => onChange()), [client]);
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}

/** `dispatch` of the nearest client: resolves with the seq once the state here includes the action. */
export function useDispatch<A>(): (action: A) => Promise<number> {
  const client = useCluster<unknown, A>();
  return useCallback((action: A) => client.dispatch(action), [client]);
}
