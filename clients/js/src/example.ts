/**
 * The browser example's store types, generated from the Rust types in
 * `examples/board.rs` (see `generated/board.ts`), and the typed helpers a
 * page uses. Because these helpers read and build the generated types, a
 * change on the Rust side that the page does not follow fails `npx tsc`.
 */
import type { Board, BoardAction, Todo } from "./generated/board.js";

export type { Board, BoardAction, Todo };

/** `BoardAction::Increment`. */
export const increment: BoardAction = "Increment";

/** `BoardAction::Decrement`. */
export const decrement: BoardAction = "Decrement";

/** `BoardAction::AddTodo`. */
export function addTodo(text: string): BoardAction {
  return { AddTodo: text };
}

/** `BoardAction::ToggleTodo`. */
export function toggleTodo(index: number): BoardAction {
  return { ToggleTodo: index };
}

/** `BoardAction::RemoveTodo`. */
export function removeTodo(index: number): BoardAction {
  return { RemoveTodo: index };
}

/** `BoardAction::ClearDone`. */
export const clearDone: BoardAction = "ClearDone";

/** How many todos are done. */
export function doneCount(board: Board): number {
  return board.todos.filter((t: Todo) => t.done).length;
}

/** A one-line summary of the board. */
export function summary(board: Board): string {
  return `counter ${board.counter}, ${doneCount(board)}/${board.todos.length} done`;
}
