/** The test function for files that run Debian's nginx or promtool (as registry-test.ts does for registries). */
import anyTest, { type TestFn } from 'ava';
import { findDebianTools } from './nginx.ts';

/**
 * ava's test function, skipped (saying why) when nginx and promtool were not fetched —
 * except under `make test`, which fetches them first and sets
 * IMAGEGATE_REQUIRE_REGISTRY_TOOLS=1: there a missing tool fails instead of hiding a test.
 */
export async function debianTest(what: string): Promise<TestFn> {
  const tools = await findDebianTools();
  if (typeof tools !== 'string') return anyTest;
  if (process.env.IMAGEGATE_REQUIRE_REGISTRY_TOOLS === '1') {
    throw new Error(`${what}: nginx and promtool are required here: ${tools}`);
  }
  console.log(`${what}: skipped: ${tools}`);
  return anyTest.skip as unknown as TestFn;
}
