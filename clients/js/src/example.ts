/**
 * TypeScript types of the store in `examples/web.rs`, written by hand to
 * match the Rust types' serde_json form (nothing generates them yet: keep
 * them in step with the Rust side).
 */

/** `examples::web::Board`. */
export interface Board {
  counter: number;
  todos: Todo[];
}

/** `examples::web::Todo`. */
export interface Todo {
  text: string;
  done: boolean;
}

/** `examples::web::BoardAction`, externally tagged. */
export type BoardAction =
  | "Increment"
  | "Decrement"
  | { AddTodo: string }
  | { ToggleTodo: number }
  | { RemoveTodo: number }
  | "ClearDone";
