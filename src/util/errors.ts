/**
 * Errors a user can cause (bad file, bad option, impossible request). The CLI prints the message
 * alone — no stack trace — and exits with code 2. Internal invariants use `assert` instead.
 */
export class UserError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Throws a UserError with `message` when `condition` is false. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new UserError(typeof message === 'function' ? message() : message);
}
