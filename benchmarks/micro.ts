// Seal, open and the round trip a request pays, for this library and everything it is compared with.
import { isDeepStrictEqual } from 'node:util';
import type { Context } from 'koa';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { DIAGNOSTICS_CHANNELS, KeyRing, session, type SealMode, type SessionRecord } from '../src/index.js';
import { floor, hapiIron, ironSession, koaSession, ours, secureSession, type Codec, type Format } from './codecs.js';
import { nearLimitSession } from './fixture.js';
import { measure, ratio, type Case, type HarnessOptions, type Measurement } from './harness.js';

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
