// A rule file problem, located precisely enough to fix without guessing.
import { previewJson } from '../config/json-file';

export interface RuleProblem {
  /** JSON pointer into the file, e.g. /rules/3/dport. */
  path: string;
  message: string;
  value?: unknown;
}

export class RuleFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: RuleProblem[],
  ) {
    super(formatProblems(file, problems));
    this.name = 'RuleFileError';
  }
}

export function formatProblems(file: string, problems: RuleProblem[]): string {
  const lines = problems.map((p) => {
    const where = p.path === '' ? '(root)' : p.path;
    const got = p.value === undefined ? '' : ` (got ${previewJson(p.value, 200)})`;
    return `  ${file}: ${where}: ${p.message}${got}`;
  });
  return `invalid rules file ${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${lines.join('\n')}`;
}
