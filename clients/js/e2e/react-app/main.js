// A React page using the installed package: the counter through
// useSelector, a button through useDispatch. `?ws=URL&login=…&password=…`.
import { createElement as h } from "react";
import { createRoot } from "react-dom/client";
import { connect } from "redux-cluster-ws-client";
import { ClusterProvider, useDispatch, useSelector } from "redux-cluster-ws-client/react";

const params = new URLSearchParams(location.search);
const client = connect({
  url: params.get("ws"),
  login: params.get("login") ?? undefined,
  password: params.get("password") ?? undefined,
});
window.board = client;
window.renders = 0;

function Counter() {
  const counter = useSelector((s) => s?.counter);
  const dispatch = useDispatch();
  window.renders += 1;
  return h(
    "div",
    null,
    h("span", { id: "counter" }, counter === undefined ? "…" : String(counter)),
    h("button", { id: "inc", onClick: () => dispatch("Increment") }, "+"),
  );
}

createRoot(document.getElementById("root")).render(h(ClusterProvider, { client }, h(Counter)));
