// Generated from examples/board.rs by ts-rs: do not edit.
// Regenerate: UPDATE_TS=1 cargo test -p redux-cluster-examples --features ws

export type Todo = { 
/**
 * What to do.
 */
text: string, 
/**
 * Whether it is done.
 */
done: boolean, };

export type Board = { 
/**
 * Shared counter (a JSON number in the browser).
 */
counter: number, 
/**
 * The todo list.
 */
todos: Array<Todo>, };

export type BoardAction = "Increment" | "Decrement" | { "AddTodo": string } | { "ToggleTodo": number } | { "RemoveTodo": number } | "ClearDone";

