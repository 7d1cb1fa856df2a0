/** The test function registry test files use (ava; the other registry helpers do without it). */
import anyTest, { type TestFn } from 'ava';
import { findRegistryTools } from './registry-tools.ts';

/**
 * ava's test function for a file of registry tests: skipped, saying why, when the tools
 * are not built — except under `make test`, which builds them first and sets
 * IMAGEGATE_REQUIRE_REGISTRY_TOOLS=1, so a tool that went missing fails instead of
 * silently skipping what it proves.
 */
export async function registryTest(what: string): Promise<TestFn> {
  const tools = await findRegistryTools();
  if (typeof tools !== 'string') return anyTest;
  if (process.env.IMAGEGATE_REQUIRE_REGISTRY_TOOLS === '1') {
    throw new Error(`${what}: the registry tools are required here: ${tools}`);
  }
  console.log(`${what}: skipped: ${tools}`);
  return anyTest.skip as unknown as TestFn;
}
