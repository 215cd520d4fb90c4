#!/usr/bin/env bash
# ci.sh — THE command: provisions everything the tests need on a fresh machine, then runs the whole
# suite (format, lint, typecheck, unit and integration tests against real servers).
#
# Idempotent and re-runnable. Integration suites start their own servers on 127.0.0.1 with throwaway data
# directories (test/harness). With CI set, a suite that cannot get its server fails, and so does any
# skipped test. Ends with one summary line: "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/provision.sh

echo "== format, lint, typecheck"
npx prettier --check . >/dev/null || { npx prettier --check . ; exit 1; }
npx eslint .
npx tsc -p tsconfig.json --noEmit

echo "== tests (unit + integration)"
mkdir -p test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json || status=$?

node --input-type=module - "$status" <<'NODE'
import { readFileSync } from 'node:fs';
const status = Number(process.argv[2]);
let report;
try {
  report = JSON.parse(readFileSync('test-results/vitest.json', 'utf8'));
} catch {
  console.log('tests: 0 passed, 1 failed (no report was written)');
  process.exit(1);
}
const skipped = [];
for (const file of report.testResults) {
  for (const test of file.assertionResults) {
    if (test.status === 'skipped' || test.status === 'pending' || test.status === 'todo') {
      skipped.push(`${file.name.replace(process.cwd() + '/', '')} > ${test.fullName}`);
    }
  }
}
// A file that failed with no failed test in it (it did not load, a hook failed) counts as one failure;
// so do errors vitest reports outside any test (unhandled rejections), seen only in its exit status.
// (numFailedTestSuites also counts the describe blocks around a failed test: not added.)
const brokenFiles = report.testResults.filter(
  (file) => file.status === 'failed' && !file.assertionResults.some((test) => test.status === 'failed'),
).length;
const failed = report.numFailedTests + brokenFiles || (status !== 0 ? 1 : 0);
const ci = !['', '0', 'false'].includes((process.env.CI ?? '').toLowerCase());
if (skipped.length > 0) {
  console.log(`${skipped.length} skipped test(s)${ci ? ' (a skip fails CI)' : ''}:`);
  for (const name of skipped) console.log(`  - ${name}`);
}
console.log(`tests: ${report.numPassedTests} passed, ${failed} failed, ${skipped.length} skipped`);
process.exit(status !== 0 || failed > 0 || (ci && skipped.length > 0) || report.numTotalTests === 0 ? 1 : 0);
NODE
