// Config problems: each names a path in the file ("sources.main-db.url") and what is wrong there.
// load.ts collects them all and throws one LifeboatError whose message lists every problem.
import { type ErrorCode, LifeboatError } from '../errors.js';

export interface ConfigProblem {
  /** Keys from the root, e.g. ["sources", "main-db", "url"]. */
  path: ReadonlyArray<string | number>;
  message: string;
  code: ErrorCode;
}

/** "sources.main-db.url", "schedules[0].cron"; "(root)" for the document itself. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(root)' : out;
}

/** One error for a list of problems: the first problem's code, every problem on its own line. */
export function problemsError(file: string, problems: readonly ConfigProblem[]): LifeboatError {
  const lines = problems.map((problem) => `${formatPath(problem.path)}: ${problem.message}`);
  const first = problems[0];
  const code = first?.code ?? 'LB_CONFIG_INVALID';
  const message =
    lines.length === 1
      ? `${file}: ${lines[0]}`
      : `${file}: ${lines.length} problems\n  ${lines.join('\n  ')}`;
  return new LifeboatError(code, message, {
    details: {
      file,
      problems: problems.map((problem) => ({
        path: formatPath(problem.path),
        message: problem.message,
        code: problem.code,
      })),
    },
  });
}
