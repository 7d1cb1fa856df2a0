/**
 * Content types and encodings over the real HTTPS server: every Content-Type variant a
 * client might send, broken UTF-8, byte order marks, and JSON-escaped characters that are
 * valid JSON but not valid text (lone UTF-16 surrogates). Each gets a 415, a 400 or a
 * review; never a 5xx, never a policy failure.
 */
import type { ExecutionContext } from 'ava';
import type { JsonObject } from '../../src/shared/json.ts';
import {
  allowed,
  type Case,
  clientMistake,
  fileTarget,
  imageClientMistake,
  refused,
  registerCases,
  reviewed,
} from './corpus.ts';
import { imageReview, podReview, TRUSTED, UID } from './hostile-json.ts';

const gw = fileTarget();

const json = (value: unknown) => () => JSON.stringify(value);
const good = podReview([{ name: 'web', image: TRUSTED }]);
const goodText = JSON.stringify(good);

const bytes =
  (...parts: (string | number[])[]) =>
  () =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
const [goodHead, goodTail] = [goodText.slice(0, 20), goodText.slice(20)];

// Regression (imagegate ≤ b3e213d): JSON.parse keeps an escaped lone surrogate ("\ud800"),
// the SDK re-escaped it for the wasm JSON parser, which refused it, so any review carrying
// one was denied as a policy failure (500). Go's encoding/json, and so the API server, reads
// it as U+FFFD; the gateway must answer as for any other string, or refuse the body.
const podWith = (image: string, name = 'web'): JsonObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web' },
  spec: { containers: [{ name, image, imagePullPolicy: 'Always' }] },
});

const notAllowed = (t: ExecutionContext, response: JsonObject): void => {
  t.false(response.allowed);
};

const CASES: readonly Case[] = [
  // Content types
  ...(
    [
      ['text/json', /text\/json/],
      ['text/plain', /text\/plain/],
      ['application/json; charset=latin1', /charset latin1/],
      ['application/json; charset=utf-16', /charset utf-16/],
      [null, /Content-Type is missing/],
      ['', /Content-Type is missing/],
      ['multipart/form-data; boundary=x', /multipart/],
      ['application/x-www-form-urlencoded', /urlencoded/],
      ['application/json, text/plain', /is not supported/],
      ['application/jsonx', /jsonx/],
      ['application/yaml', /yaml/],
    ] as const
  ).map(
    ([type, message]): Case => ({
      title: `Content-Type ${JSON.stringify(type)} → 415`,
      contentType: type,
      body: json(good),
      expect: refused(415, message),
    }),
  ),
  ...[
    'application/json; charset=UTF-8',
    'Application/JSON;charset="utf-8"',
    'application/json ; charset=utf8',
    'application/vnd.kubernetes.protobuf+json',
  ].map(
    (type): Case => ({
      title: `Content-Type ${JSON.stringify(type)} is read as JSON`,
      contentType: type,
      body: json(good),
      expect: reviewed(allowed),
    }),
  ),
  {
    title: 'a multipart body with a JSON part → 415',
    contentType: 'multipart/mixed; boundary=b',
    body: () => `--b\r\nContent-Type: application/json\r\n\r\n${goodText}\r\n--b--\r\n`,
    expect: refused(415, /multipart\/mixed/),
  },
  {
    title: 'Content-Encoding: br → 415',
    headers: { 'Content-Encoding': 'br' },
    body: json(good),
    expect: refused(415, /Content-Encoding br/),
  },
  // Encoding
  {
    title: 'invalid UTF-8: a 0xFF byte inside a string → 400',
    body: bytes(goodHead, [0xff], goodTail),
    expect: refused(400, /not valid UTF-8/),
  },
  {
    title: 'invalid UTF-8: an overlong "/" (C0 AF) → 400',
    body: bytes(goodHead, [0xc0, 0xaf], goodTail),
    expect: refused(400, /not valid UTF-8/),
  },
  {
    title: 'invalid UTF-8: an encoded surrogate (ED A0 80) → 400',
    body: bytes(goodHead, [0xed, 0xa0, 0x80], goodTail),
    expect: refused(400, /not valid UTF-8/),
  },
  {
    title: 'invalid UTF-8: a sequence cut short at the end (E2 82) → 400',
    body: bytes(goodText.slice(0, -2), [0xe2, 0x82], '"}'),
    expect: refused(400, /not valid UTF-8/),
  },
  {
    title: 'UTF-16LE JSON with its byte order mark → 400',
    body: () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(goodText, 'utf16le')]),
    expect: refused(400, /not valid UTF-8/),
  },
  {
    // RFC 8259 §8.1 lets a parser ignore a BOM, and TextDecoder does. (Go's encoding/json
    // would refuse it; the API server never sends one.) Pinned so a change is deliberate.
    title: 'a UTF-8 byte order mark before the JSON is ignored',
    body: bytes([0xef, 0xbb, 0xbf], goodText),
    expect: reviewed(allowed),
  },
  {
    title: 'a NUL in the uid is echoed exactly',
    body: json(podReview([{ name: 'web', image: TRUSTED }], { uid: 'a\u0000b' })),
    expect: reviewed(allowed, 'a\u0000b'),
  },
  {
    title: 'a surrogate pair (an emoji) in a container name is fine',
    body: json(podReview([{ name: 'web-\u{1f433}', image: TRUSTED }])),
    expect: reviewed(allowed),
  },
  ...(
    [
      ['an image', { object: podWith(`${TRUSTED}\ud800`) }, notAllowed],
      ['the uid', { uid: 'a\ud800' }, undefined],
      ['a container name', { object: podWith(TRUSTED, 'web\udc00') }, undefined],
      ['the namespace', { namespace: 'shop\udfff' }, undefined],
    ] as const
  ).map(
    ([where, request, check]): Case => ({
      title: `a JSON-escaped lone surrogate in ${where}: not a policy failure`,
      body: json(podReview([{ name: 'web', image: TRUSTED }], request)),
      expect: clientMistake(check, 'uid' in request ? request.uid : UID),
    }),
  ),
  {
    title: 'a JSON-escaped lone surrogate in an ImageReview annotation: not a policy failure',
    path: '/v1/imagereview',
    body: json(imageReview([TRUSTED], { annotations: { 'x.image-policy.k8s.io/a': '\udfff' } })),
    expect: imageClientMistake(/escape/),
  },
];

registerCases(CASES, gw);
