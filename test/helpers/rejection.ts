// The error a loader throws for a bad input: of the expected class (a
// TypeError from a bug must not pass for a rejection), and thrown at all.
import assert from 'node:assert/strict';

/** The message of the error `load` throws, which must be a `kind`; fails when it throws none. */
export function rejection(load: () => unknown, kind: abstract new (...args: never[]) => Error): string {
  try {
    load();
  } catch (e) {
    assert.ok(e instanceof kind, `expected a ${kind.name}, got ${String(e)}`);
    return e.message;
  }
  return assert.fail(`expected a ${kind.name}: the input was accepted`);
}
