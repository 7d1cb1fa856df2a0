/** The test function Sigstore bed test files use (ava; the other bed helpers do without it). */
import anyTest, { type TestFn } from 'ava';
import { sigstoreTools } from './sigstore-tools.ts';

/**
 * ava's test function for a file of Sigstore bed tests: skipped, saying why, when the tools
 * are not built — except under `make test` (IMAGEGATE_REQUIRE_REGISTRY_TOOLS=1, set after
 * building both sets), where a missing tool fails instead of silently skipping.
 */
export async function sigstoreTest(what: string): Promise<TestFn> {
  const missing = await sigstoreTools().then(
    () => undefined,
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
  if (missing === undefined) return anyTest;
  if (process.env.IMAGEGATE_REQUIRE_REGISTRY_TOOLS === '1') {
    throw new Error(`${what}: the registry and Sigstore tools are required here: ${missing}`);
  }
  console.log(`${what}: skipped: ${missing}`);
  return anyTest.skip as unknown as TestFn;
}
