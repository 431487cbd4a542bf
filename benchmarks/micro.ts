// Seal, open and the round trip a request pays, for this library and everything it is compared with.
import { isDeepStrictEqual } from 'node:util';
import type { Context } from 'koa';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { DIAGNOSTICS_CHANNELS, KeyRing, session, type SealMode, type SessionRecord } from '../src/index.js';
import { floor, hapiIron, ironSession, koaSession, ours, secureSession, type Codec, type Format } from './codecs.js';
import { nearLimitSession } from './fixture.js';
import { measure, ratio, type Case, type HarnessOptions, type Measurement } from './harness.js';
import { appFor, type HttpCase } from './http-server.js';
import { serveInProcess, type Served } from './in-process.js';

/** The HTTP cases also served in process, so that the micro and the HTTP figures of one request can be compared. */
export const IN_PROCESS_CASES = [
  'echo',
  'koa-session',
  'signed json',
  'signed msgpack',
  'private json',
  'private msgpack',
] as const satisfies readonly HttpCase[];

export const CONFIGS: readonly { mode: SealMode; format: Format }[] = [
  { mode: 'signed', format: 'json' },
  { mode: 'signed', format: 'msgpack' },
  { mode: 'private', format: 'json' },
  { mode: 'private', format: 'msgpack' },
];

const KEY_LOOKUP_CONFIGS: readonly { mode: SealMode; format: Format }[] = [
  { mode: 'signed', format: 'json' },
  { mode: 'private', format: 'msgpack' },
];

export interface MicroResult {
  readonly cookieBytes: Record<string, number>;
  readonly measurements: Measurement[];
  readonly ratios: Record<string, number>;
}

function withoutKoaSessionFields(data: SessionRecord | undefined): SessionRecord | undefined {
  if (data === undefined) return undefined;
  const { _expire: _e, _maxAge: _m, ...rest } = data;
  return rest;
}

/** Fails loudly when a codec does not give back what it sealed: a benchmark of broken code measures nothing. */
async function checkRoundTrip(codec: Codec, data: SessionRecord): Promise<string> {
  const value = await codec.seal(data);
  const opened = withoutKoaSessionFields(await codec.open(value));
  if (!isDeepStrictEqual(JSON.parse(JSON.stringify(opened)), JSON.parse(JSON.stringify(data)))) {
    throw new Error(`${codec.label} did not round-trip the session`);
  }
  return value;
}

function codecCases(codec: Codec, data: SessionRecord, value: string): Case[] {
  const roundTrip = codec.async
    ? async () => {
        const opened = (await codec.open(value)) as SessionRecord;
        opened.counter = (opened.counter as number) + 1;
        return codec.seal(opened);
      }
    : () => {
        const opened = codec.open(value) as SessionRecord;
        opened.counter = (opened.counter as number) + 1;
        return codec.seal(opened);
      };
  return [
    { name: `${codec.label} seal`, run: () => codec.seal(data), async: codec.async },
    { name: `${codec.label} open`, run: () => codec.open(value), async: codec.async },
    { name: `${codec.label} round trip`, run: roundTrip, async: codec.async },
  ];
}

/** A request through the real middleware, on a stand-in for Koa's context: open, change one key, seal. */
function requestCase(label: string, codec: ReturnType<typeof ours>, value: string, byProperty = false, variant = ''): Case {
  const middleware = session(codec.backend);
  const cookie = `${codec.backend.cookie.name}=${value}`;
  const next = byProperty
    ? // As koa-session apps write it: the counter as a property.
      async (ctx: Context) => {
        const data = ctx.session as unknown as Record<string, number | undefined>;
        data.counter = (data.counter ?? 0) + 1;
      }
    : async (ctx: Context) => {
        ctx.session.set('counter', (ctx.session.get<number>('counter') ?? 0) + 1);
      };
  // Koa's contexts inherit from the app's context prototype; so does this stand-in.
  const contextPrototype = { headerSent: false, secure: false };
  return {
    name: `${label} request${byProperty ? ', property access' : ''}${variant}`,
    async: true,
    run: async () => {
      const headers = new Map<string, unknown>();
      const ctx = Object.create(contextPrototype) as Context;
      Object.assign(ctx, {
        request: { headers: { cookie } },
        res: {
          getHeader: (name: string) => headers.get(name.toLowerCase()),
          setHeader: (name: string, v: unknown) => headers.set(name.toLowerCase(), v),
        },
      });
      await middleware(ctx, () => next(ctx));
      return headers.get('set-cookie');
    },
  };
}

/** The Cookie header a browser sends after `served`. */
function cookieAfter(served: Served): string {
  const lines = served.setCookie === undefined ? [] : ([] as unknown[]).concat(served.setCookie).map(String);
  return lines.map((line) => line.slice(0, line.indexOf(';'))).join('; ');
}

/**
 * The HTTP benchmark's own app for `name`, its near-limit session seeded as there, each iteration one request served
 * in this process (see in-process.ts): Koa's context, a fresh Cookie header string, Node's own header checks and
 * writing, all but the socket and the parser. Fails loudly when the app does not answer as over HTTP.
 */
async function inProcessCase(name: HttpCase, data: SessionRecord): Promise<Case> {
  const handle = appFor(name, { ...data, counter: 0 }).callback();
  const cookie = Buffer.from(cookieAfter(await serveInProcess(handle, '/seed', Buffer.alloc(0))), 'latin1');
  const first = await serveInProcess(handle, '/', cookie);
  if (first.status !== 200 || first.setCookie === undefined || cookie.length < 3000)
    throw new Error(`${name}: the in-process request answered ${first.status} with ${cookie.length} bytes of cookie`);
  return { name: `${name} request, in process`, async: true, run: () => serveInProcess(handle, '/', cookie) };
}

export async function runMicro(options: HarnessOptions, log: (line: string) => void): Promise<MicroResult> {
  const data = nearLimitSession();
  const cases: Case[] = [];
  const cookieBytes: Record<string, number> = {};

  const alternatives = [koaSession(), hapiIron(), ironSession(), secureSession()];
  for (const codec of [...CONFIGS.flatMap(({ mode, format }) => [ours(mode, format), floor(mode, format)]), ...alternatives]) {
    const value = await checkRoundTrip(codec, data);
    cookieBytes[codec.label] = Buffer.byteLength(value);
    cases.push(...codecCases(codec, data, value));
    if ('backend' in codec) {
      cases.push(requestCase(codec.label, codec as ReturnType<typeof ours>, value));
      cases.push(requestCase(codec.label, codec as ReturnType<typeof ours>, value, true));
    }
  }

  // Diagnostics: a request, and one whose cookie is rejected (a changed byte), with nobody subscribed and with a
  // subscriber to every channel, in the same run.
  const diagnosed = ours('signed', 'json');
  const diagnosedValue = await checkRoundTrip(diagnosed, data);
  const rejectedValue = `${diagnosedValue.slice(0, 40)}${diagnosedValue[40] === 'A' ? 'B' : 'A'}${diagnosedValue.slice(41)}`;
  const subscribed = (item: Case): Case => ({ ...item, name: `${item.name}, a diagnostics subscriber`, setup: subscribeAll });
  const rejected = requestCase('signed json', diagnosed, rejectedValue, false, ', rejected cookie');
  cases.push(subscribed(requestCase('signed json', diagnosed, diagnosedValue)), rejected, subscribed(rejected));

  // A whole request of the HTTP benchmark's apps, served in this process.
  for (const name of IN_PROCESS_CASES) cases.push(await inProcessCase(name, data));

  // Key lookup: the newest and the oldest key of a five-key ring.
  const keys = Array.from({ length: 5 }, () => KeyRing.generateKey());
  const ring = new KeyRing(keys);
  for (const { mode, format } of KEY_LOOKUP_CONFIGS) {
    const newest = ours(mode, format, ring);
    const oldest = ours(mode, format, new KeyRing([keys[4] as Buffer]));
    const newestValue = await checkRoundTrip(newest, data);
    const oldestValue = oldest.backend.seal(data);
    if (newest.backend.open(oldestValue) === undefined) throw new Error('the oldest key does not open');
    cases.push({ name: `${mode} ${format} open, newest of 5 keys`, run: () => newest.open(newestValue) });
    cases.push({ name: `${mode} ${format} open, oldest of 5 keys`, run: () => newest.open(oldestValue) });
  }

  log(`micro: ${cases.length} cases, ${options.rounds} rounds of ${options.batchMs} ms batches, interleaved`);
  const results = await measure(cases, options);

  const ratios: Record<string, number> = {};
  for (const { mode, format } of CONFIGS) {
    const label = `${mode} ${format}`;
    for (const op of ['seal', 'open', 'round trip']) ratios[`${label} ${op} / floor`] = ratio(results, `${label} ${op}`, `floor ${label} ${op}`);
    ratios[`${label} request / floor round trip`] = ratio(results, `${label} request`, `floor ${label} round trip`);
    ratios[`${label} request, property access / request`] = ratio(results, `${label} request, property access`, `${label} request`);
    for (const alternative of alternatives) {
      ratios[`${alternative.label} round trip / ${label} round trip`] = ratio(results, `${alternative.label} round trip`, `${label} round trip`);
    }
  }
  ratios['signed json request, a diagnostics subscriber / nobody subscribed'] = ratio(
    results,
    'signed json request, a diagnostics subscriber',
    'signed json request',
  );
  ratios['signed json request, rejected cookie, a diagnostics subscriber / nobody subscribed'] = ratio(
    results,
    'signed json request, rejected cookie, a diagnostics subscriber',
    'signed json request, rejected cookie',
  );
  for (const name of IN_PROCESS_CASES) {
    if (name === 'echo') continue;
    // As the HTTP table's "× echo": echo's time over the case's, a throughput ratio (above 1 is faster than echo).
    ratios[`${name} request, in process: × echo`] = ratio(results, 'echo request, in process', `${name} request, in process`);
    if (name !== 'koa-session') ratios[`${name} request, in process / request`] = ratio(results, `${name} request, in process`, `${name} request`);
  }
  for (const { mode, format } of KEY_LOOKUP_CONFIGS) {
    ratios[`${mode} ${format} oldest / newest of 5 keys`] = ratio(
      results,
      `${mode} ${format} open, oldest of 5 keys`,
      `${mode} ${format} open, newest of 5 keys`,
    );
  }
  return { cookieBytes, measurements: [...results.values()], ratios };
}

/** Subscribes a listener that counts to every diagnostics channel; returns the unsubscribing. */
function subscribeAll(): () => void {
  let count = 0;
  const listener = () => void (count += 1);
  for (const name of Object.values(DIAGNOSTICS_CHANNELS)) subscribe(name, listener);
  return () => {
    for (const name of Object.values(DIAGNOSTICS_CHANNELS)) unsubscribe(name, listener);
    if (count < 0) console.log(count);
  };
}
