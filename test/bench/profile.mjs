/**
 * Where a review's time goes (issue §5): the compiled gateway under `node --cpu-prof`
 * (log level warn) takes 64 connections of /v1/validate from test/bench/load.mjs; on
 * SIGTERM it drains, exits and V8 writes the profile. Every sample's self time is given
 * to a phase by the nearest frame on its stack that belongs to one (rules below, leaf
 * first), so e.g. node:stream frames under readJsonBody count as "body read". Only samples
 * in the load's measured window count.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load, startImagegate, startNoop, writeBodies } from './http.mjs';
import { httpsJson, log } from './lib.mjs';

const INTERVAL_US = 250;

export const PHASES = {
  body: 'body read + UTF-8 decode + JSON.parse (server/body.ts readJsonBody)',
  narrow: 'review narrowing (parseAdmissionReview)',
  input: 'input building (admissionInput, parseImageReference)',
  copyIn: 'SDK evaluate: JSON.stringify(input) + TextEncoder + copy into wasm memory',
  wasm: 'opa_eval in wasm (parses input JSON, evaluates, dumps result JSON)',
  copyOut: 'SDK result: scan wasm memory + TextDecoder + JSON.parse',
  decision: 'decision narrowing + engine wrapper (decision.ts, engine.ts)',
  response: 'answer building (responses.ts, protocols.ts)',
  respond: 'response encoding (Koa respond: JSON.stringify, headers, stream bookkeeping)',
  tlsWrite: 'TLS encrypt + socket write (native, under writev)',
  logging: 'decision log (pino, randomUUID, summary)',
  metrics: 'metrics (prom-client timers and counters)',
  koa: 'Koa / @koa/router / middleware',
  glue: 'gateway route handler (server/app.ts)',
  http: 'node:http parsing and outgoing (JS side)',
  tls: 'node:tls / net / streams (JS side)',
  node: 'other node internals',
  program: 'native outside JS: TLS record crypto, syscalls, libuv, compiler — (program)',
  gc: 'garbage collector (main thread)',
  other: 'other',
};

/** The phase a single frame names, or undefined when the frame defers to its caller. */
function framePhase({ functionName: fn, url }) {
  if (url.startsWith('wasm://')) return 'wasm';
  if (url.includes('@open-policy-agent/opa-wasm')) {
    if (fn === '_dumpJSONRaw' || fn === '_dumpJSON' || fn === 'stringDecoder') return 'copyOut';
    return 'copyIn';
  }
  if (url.endsWith('/src/server/body.js')) return 'body';
  if (
    url.endsWith('/src/review/admission-review.js') ||
    url.endsWith('/src/review/image-review.js')
  )
    return 'narrow';
  if (/\/src\/review\/(policy-input|image-reference|workloads)\.js$/.test(url)) return 'input';
  if (url.endsWith('/src/review/decision.js') || url.endsWith('/src/policy/engine.js'))
    return 'decision';
  if (url.endsWith('/src/review/responses.js') || url.endsWith('/src/server/protocols.js'))
    return 'response';
  if (url.endsWith('/src/shared/metrics.js') || url.includes('/prom-client/')) return 'metrics';
  if (
    url.includes('/pino') ||
    url.includes('/sonic-boom/') ||
    url.endsWith('/src/shared/logger.js')
  )
    return 'logging';
  if (fn === 'randomUUID' || (url.endsWith('/src/server/app.js') && fn === 'summary'))
    return 'logging';
  if (url.includes('/koa/lib/application.js') && fn === 'respond') return 'respond';
  if (url.includes('/node_modules/')) return 'koa';
  if (url.endsWith('/src/server/app.js')) return 'glue';
  return undefined;
}

/** The source line with the most ticks in a function (profiles carry per-line ticks). */
function hottestLine(url, lines) {
  const [line, ticks] = [...lines.entries()].sort((a, b) => b[1] - a[1])[0] ?? [];
  if (line === undefined || !url.startsWith('file://')) return undefined;
  const total = [...lines.values()].reduce((a, b) => a + b, 0);
  let text = '';
  try {
    text = readFileSync(fileURLToPath(url), 'utf8').split('\n')[line - 1]?.trim() ?? '';
  } catch {
    // the source moved; the line number alone still says where
  }
  return { line, share: ticks / total, text: text.length > 60 ? `${text.slice(0, 57)}...` : text };
}

function nodePhase(url) {
  if (/^node:(_http|http)/.test(url)) return 'http';
  if (/^node:(_tls|tls|net|stream|internal\/stream|internal\/net|internal\/tls)/.test(url))
    return 'tls';
  if (url.startsWith('node:')) return 'node';
  return undefined;
}

/**
 * Self samples per phase and per function, over the samples taken inside [fromUs, toUs]
 * (CLOCK_MONOTONIC µs, the profile's clock and process.hrtime's), so start-up and shutdown
 * stay out. Samples are counted, not their wall-clock deltas: on a machine shared with
 * other work a delta also holds time the thread sat preempted, and the sampler itself runs
 * late (it then fires every ~0.8 ms, not every 250 µs), so a count is the fairer share.
 * The report turns shares into µs per review with the server's measured CPU time.
 */
export function summariseProfile(profile, fromUs, toUs) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map();
  let at = profile.startTime;
  let wallUs = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at < fromUs || at > toUs) return;
    wallUs += delta;
    hits.set(id, (hits.get(id) ?? 0) + 1);
  });

  const phaseOf = (id) => {
    const leaf = byId.get(id).callFrame;
    if (leaf.functionName === '(garbage collector)') return 'gc';
    if (leaf.functionName === '(idle)') return 'idle';
    if (leaf.functionName === '(program)') return 'program';
    // Native stream bindings: TLSWrap encrypts and the kernel copies inside these calls.
    if (leaf.url === '' && /^(writev|writeBuffer|write\w*String)$/.test(leaf.functionName))
      return 'tlsWrite';
    let fallback;
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at).callFrame;
      const phase = framePhase(frame);
      if (phase !== undefined) return phase;
      fallback ??= nodePhase(frame.url);
    }
    return fallback ?? 'other';
  };

  const phases = {};
  const functions = new Map();
  let busy = 0;
  let idle = 0;
  for (const [id, count] of hits) {
    const phase = phaseOf(id);
    if (phase === 'idle') {
      idle += count;
      continue;
    }
    busy += count;
    phases[phase] = (phases[phase] ?? 0) + count;
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const short = url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, 'dist/');
    const key = `${functionName || '(anonymous)'} ${short}${short ? `:${lineNumber + 1}` : ''}`;
    const entry = functions.get(key) ?? { samples: 0, phases: new Set(), lines: new Map(), url };
    entry.samples += count;
    entry.phases.add(phase);
    for (const { line, ticks } of byId.get(id).positionTicks ?? []) {
      entry.lines.set(line, (entry.lines.get(line) ?? 0) + ticks);
    }
    functions.set(key, entry);
  }
  const top = [...functions.entries()]
    .sort((a, b) => b[1].samples - a[1].samples)
    .slice(0, 25)
    .map(([name, { samples, phases, lines, url }]) => ({
      name,
      samples,
      phases: [...phases],
      hottest: hottestLine(url, lines),
    }));
  return { busySamples: busy, idleSamples: idle, wallUs, phases, top };
}

/** Profiles one server under 64 connections of validate and summarises its load window. */
async function profileUnderLoad(server, dir, { body, quick }) {
  let result;
  try {
    result = await load({
      url: server.url('validate'),
      body,
      connections: 64,
      warmup: 1,
      duration: quick ? 3 : 10,
      pids: [server.pid],
    });
  } finally {
    await server.kill('SIGTERM', 30_000);
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`profile: no .cpuprofile in ${dir}`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const [from, to] = result.monotonicWindowUs;
  const summary = summariseProfile(profile, from, to);
  if (summary.wallUs === 0) throw new Error(`profile: no sample of ${server.name} in the window`);
  log(`profile: ${server.name}: ${summary.busySamples} busy samples in the window`);
  return {
    load: result,
    requests: result.requests,
    serverCpuS: result.cpuCores.servers[0] * result.durationS,
    mainThreadCpuS: result.cpuCores.serverMainThreads[0] * result.durationS,
    file: join(dir, file),
    ...summary,
  };
}

/**
 * The gateway, then the no-op ceiling answering the gateway's answer: the ceiling's profile
 * is the floor of TLS, HTTP and Koa work every review pays, measured the same way.
 */
export async function runProfile({ tmp, tls, quick }) {
  const bodies = writeBodies(tmp);
  const body = bodies.forEndpoint('validate');
  const profiler = (dir) => [
    '--cpu-prof',
    '--cpu-prof-dir',
    dir,
    '--cpu-prof-interval',
    String(INTERVAL_US),
  ];
  const gatewayDir = join(tmp, 'cpu-profile-imagegate');
  const gateway = await startImagegate('imagegate-profile', {
    tmp,
    cert: tls.certFile,
    key: tls.keyFile,
    logLevel: 'warn',
    nodeArgs: profiler(gatewayDir),
  });
  let answer;
  try {
    answer = await httpsJson(gateway.url('validate'), {
      ca: tls.ca,
      method: 'POST',
      body: readFileSync(body),
    });
  } catch (error) {
    await gateway.kill();
    throw error;
  }
  const imagegate = await profileUnderLoad(gateway, gatewayDir, { body, quick });
  const noopDir = join(tmp, 'cpu-profile-noop');
  const noop = await startNoop('noop-profile', {
    tmp,
    cert: tls.certFile,
    key: tls.keyFile,
    ca: tls.ca,
    responses: { '/v1/validate': answer.json },
    nodeArgs: profiler(noopDir),
  });
  const ceiling = await profileUnderLoad(noop, noopDir, { body, quick });
  return { ...imagegate, noop: ceiling };
}
