// Exhaustiveness for the reducer's switches: a case left out is a type error, and an action or
// event that is not in the union (a bug elsewhere) fails loudly instead of being ignored.
export function assertNever(value: never): never {
  throw new Error(`unhandled action: ${JSON.stringify(value)}`);
}
