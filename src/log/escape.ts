// Text that came from outside (rule ids and descriptions, block reasons,
// interface names, file paths) is printed on consoles, in the journal and by
// `nfips logs`. A newline in it would start a forged line that looks like
// one of nfips' own; terminal escapes could rewrite what is already on the
// screen; bidirectional overrides could reorder what a person reads. These
// characters are shown as escapes instead. The JSON log needs none of this:
// JSON.stringify escapes what JSON requires and tools read it as data.

// C0 controls, DEL, C1 controls, the Unicode line and paragraph separators,
// and the bidirectional embedding, override and isolate controls.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `text` with every character that could forge or reorder a line shown as an escape (\n, \x1b, \u2028). */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

// What JSON.stringify leaves as it is: DEL, C1 controls, U+2028/2029, bidi controls.
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * A JSON line with the characters JSON.stringify leaves raw written as
 * \u escapes: still the same JSON value, but safe to print on a terminal.
 */
export function escapeJsonLine(line: string): string {
  return line.replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
