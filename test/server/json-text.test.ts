/** The body's JSON: lone surrogate escapes as Go reads them, nesting bounded, no recursion. */
import test from 'ava';
import { depthExceeds, fixLoneSurrogateEscapes } from '../../src/server/json-text.ts';

const parsed = (text: string) => JSON.parse(fixLoneSurrogateEscapes(text)) as unknown;

test('a lone high or low surrogate escape becomes U+FFFD, in strings and keys', (t) => {
  t.deepEqual(parsed('{"a":"x\\ud800y"}'), { a: 'x\uFFFDy' });
  t.deepEqual(parsed('{"a":"x\\uDC00"}'), { a: 'x\uFFFD' });
  t.deepEqual(parsed('{"k\\uD83D":1}'), { 'k\uFFFD': 1 });
  // high, high, low: the first is lone, the second pairs with the low one
  t.deepEqual(parsed('["\\uD83D\\uD83D\\uDE00"]'), ['\uFFFD😀']);
  // low after a raw astral character: lone
  t.deepEqual(parsed('["😀\\uDE00"]'), ['😀\uFFFD']);
});

test('a pair of escapes is kept, and an escaped backslash is not an escape', (t) => {
  t.deepEqual(parsed('["\\uD83D\\uDE00"]'), ['😀']);
  t.deepEqual(parsed('["\\\\uD800"]'), ['\\uD800'], 'a backslash, then the text uD800');
  t.deepEqual(parsed('["\\\\\\uD800"]'), ['\\\uFFFD'], 'a backslash, then a lone escape');
  t.deepEqual(parsed('["\\\\uD83D\\uDE00"]'), ['\\uD83D\uFFFD'], 'the high one was only text');
});

test('the text keeps its length, so JSON error positions stay right', (t) => {
  const text = '{"a":"\\ud800", oops}';
  t.is(fixLoneSurrogateEscapes(text).length, text.length);
});

test('depth: scalars are 0, each array or object one more, counted without recursion', (t) => {
  t.false(depthExceeds('x', 0));
  t.false(depthExceeds([], 1));
  t.true(depthExceeds([], 0));
  t.false(depthExceeds({ a: [{ b: [] }] }, 4));
  t.true(depthExceeds({ a: [{ b: [] }] }, 3));
  // far deeper than any call stack: JSON.parse builds it, the count must not recurse
  const deep = JSON.parse(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`) as unknown;
  t.true(depthExceeds(deep, 100));
  t.false(depthExceeds(deep, 1_000_000));
});
