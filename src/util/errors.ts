/**
 * Two kinds of failure, two styles:
 *   - UserError (and FieldError, which names a request field): something the user can fix — a bad
 *     file, option or request. Thrown with `check` / `checkField`; the CLI prints the message alone
 *     (no stack trace) and exits with code 2.
 *   - a plain Error from `invariant`: a broken internal assumption, i.e. a bug in crepe. The CLI
 *     prints it with its stack as an internal error.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/**
 * A user error about one field of a request object. `field` is its path in the request
 * (`sparsity`, `riaA`, `owl.lambda`); the message is `<field> <problem>`, so a command line can
 * name its own flag instead: `${flag} ${problem}`.
 */
export class FieldError extends UserError {
  constructor(readonly field: string, readonly problem: string) {
    super(`${field} ${problem}`);
    this.name = 'FieldError';
  }
}

/** Throws a UserError with `message` when `condition` is false. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new UserError(typeof message === 'function' ? message() : message);
}

/** Throws a FieldError naming `field` when `condition` is false. */
export function checkField(condition: unknown, field: string, problem: string | (() => string)): asserts condition {
  if (!condition) throw new FieldError(field, typeof problem === 'function' ? problem() : problem);
}

/** Throws a plain Error (a bug in crepe, not the user's doing) when `condition` is false. */
export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new Error(typeof message === 'function' ? message() : message);
}
