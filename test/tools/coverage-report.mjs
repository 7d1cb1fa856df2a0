#!/usr/bin/env node
// Summarises `opa test --coverage --format=json`: the overall coverage (as OPA computes it,
// test files included), the coverage of the policy files alone, and the uncovered lines of
// every file. Usage: node test/tools/coverage-report.mjs [coverage.json]   (stdin when omitted)
// Exits 0 once the report is printed (the threshold is enforced by `opa test --threshold`);
// exits 1 only when the input is not an OPA coverage report.
import { readFileSync } from 'node:fs';

/** @param {unknown} value */
const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);

/** @param {unknown} value */
const count = (value) => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

/** @param {number} covered @param {number} total */
const percent = (covered, total) => (total === 0 ? 100 : (covered / total) * 100);

/**
 * Distinct uncovered rows of one file, collapsed into "a-b" ranges.
 * @param {unknown} ranges
 */
function uncoveredLines(ranges) {
  if (!Array.isArray(ranges)) return [];
  const rows = new Set();
  for (const range of ranges) {
    const start = count(range?.start?.row);
    const end = Math.max(start, count(range?.end?.row));
    for (let row = start; row > 0 && row <= end; row += 1) rows.add(row);
  }
  const sorted = [...rows].sort((a, b) => a - b);
  const spans = [];
  for (const row of sorted) {
    const last = spans.at(-1);
    if (last && row === last[1] + 1) last[1] = row;
    else spans.push([row, row]);
  }
  return spans.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
}

function main() {
  const path = process.argv[2];
  let report;
  try {
    report = JSON.parse(readFileSync(path ?? 0, 'utf8'));
  } catch (error) {
    console.error(`coverage-report: cannot read ${path ?? 'stdin'}: ${error.message}`);
    return 1;
  }
  if (!isObject(report) || !isObject(report.files)) {
    console.error('coverage-report: not an `opa test --coverage --format=json` report');
    return 1;
  }

  const files = Object.entries(report.files).sort(([a], [b]) => a.localeCompare(b));
  let policyCovered = 0;
  let policyTotal = 0;
  for (const [name, file] of files) {
    if (name.endsWith('_test.rego')) continue;
    policyCovered += count(file?.covered_lines);
    policyTotal += count(file?.covered_lines) + count(file?.not_covered_lines);
  }
  const overallCovered = count(report.covered_lines);
  const overallTotal = overallCovered + count(report.not_covered_lines);
  const overall =
    typeof report.coverage === 'number' ? report.coverage : percent(overallCovered, overallTotal);

  console.log(`coverage: ${overall.toFixed(2)}% of ${overallTotal} lines (all files)`);
  console.log(
    `policy:   ${percent(policyCovered, policyTotal).toFixed(2)}% of ${policyTotal} lines (without *_test.rego)`,
  );
  let clean = true;
  for (const [name, file] of files) {
    const lines = uncoveredLines(file?.not_covered);
    if (lines.length === 0) continue;
    clean = false;
    console.log(
      `  ${name} (${count(file?.coverage).toFixed(2)}%): not covered ${lines.join(', ')}`,
    );
  }
  if (clean) console.log('  every line is covered');
  return 0;
}

process.exitCode = main();
