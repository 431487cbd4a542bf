import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import request from 'supertest';
import {
  CookieSessionBackend,
  KeyRing,
  MemoryStore,
  MsgpackSerializer,
  PostgresStore,
  RedisStore,
  SessionError,
  StoreSessionBackend,
} from '../../src/index.js';
import { keysFor } from '../../src/crypto/key-ring.js';
import { KEY_A, KEY_B, KEY_C, appWith, cookieValue, listen, sealBytes } from '../support/helpers.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';

const BIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const b64 = (key: Buffer) => key.toString('base64url');
const KEYS = `${b64(KEY_A)},${b64(KEY_B)},staged:${b64(KEY_C)}`;
const RING = KeyRing.fromEnv('K', { K: KEYS });

/** Runs the built bin as a user does: `npx koa-sealed-session …` runs this file. */
function cli(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', SESSION_KEYS: KEYS, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** inspect --json's report. */
async function inspect(
  value: string,
  ...options: string[]
): Promise<{ code: number | null; report: Record<string, unknown>; stdout: string; stderr: string }> {
  const out = await cli(['inspect', '--json', ...options, value]);
  return { ...out, report: out.stdout === '' ? {} : (JSON.parse(out.stdout) as Record<string, unknown>) };
}

const idOf = (key: Buffer) =>
  `0x${keysFor(new KeyRing([key]), 'session')
    .sealing.id.toString(16)
    .padStart(8, '0')}`;

function expectNoKeys(text: string): void {
  for (const key of [KEY_A, KEY_B, KEY_C]) {
    expect(text).not.to.include(b64(key));
    expect(text).not.to.include(key.toString('base64'));
    expect(text).not.to.include(key.toString('hex'));
  }
}

describe('the command line (npx koa-sealed-session)', function () {
  this.timeout(30_000);

  it('should print --help and exit 0; with no command or an unknown one, exit 2 with the reason on stderr', async () => {
    const help = await cli(['--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/keygen[\s\S]*inspect[\s\S]*Exit codes/);
    for (const args of [[], ['frobnicate'], ['keygen', '--count', 'x'], ['inspect'], ['inspect', '--nope', 'x']]) {
      const out = await cli(args);
      expect(out.code, args.join(' ')).to.equal(2);
      expect(out.stderr).to.match(/^koa-sealed-session: /);
      expect(out.stderr, 'no stack trace for a user error').not.to.match(/\n\s+at /);
    }
  });

  it('should make keys that KeyRing.fromEnv reads, as many as asked, each new', async () => {
    const one = await cli(['keygen']);
    expect(one.code).to.equal(0);
    const three = (await cli(['keygen', '--count', '3'])).stdout.trim();
    const keys = three.split(',');
    expect(keys).to.have.length(3);
    expect(new Set([...keys, one.stdout.trim()]).size).to.equal(4);
    expect(KeyRing.fromEnv('X', { X: three }).size).to.equal(3);
    for (const key of keys) expect(Buffer.from(key, 'base64url')).to.have.length(32);
  });

  it("should list the ring's key ids: which seals, which are older, which are staged, and never a key", async () => {
    const out = await cli(['keys', '--json']);
    expect(out.code).to.equal(0);
    expect(JSON.parse(out.stdout)).to.deep.equal({
      keys: [
        { id: idOf(KEY_A), role: 'sealing' },
        { id: idOf(KEY_B), role: 'retired' },
        { id: idOf(KEY_C), role: 'staged' },
      ],
    });
    const table = await cli(['keys']);
    expect(table.stdout).to.include(`${idOf(KEY_A)}  seals (newest)`);
    expectNoKeys(out.stdout + table.stdout);
  });

  it('should read keys from --keys-env or --keys-file, and exit 3 with a clear reason for missing, short, repeated or malformed keys', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kss-cli-'));
    try {
      const file = join(dir, 'keys');
      writeFileSync(file, `${b64(KEY_B)}\n`);
      expect(JSON.parse((await cli(['keys', '--json', '--keys-file', file])).stdout)).to.deep.equal({ keys: [{ id: idOf(KEY_B), role: 'sealing' }] });
      expect(JSON.parse((await cli(['keys', '--json', '--keys-env', 'OTHER'], { OTHER: b64(KEY_C) })).stdout).keys[0].id).to.equal(idOf(KEY_C));
      const cases: [Record<string, string>, RegExp][] = [
        [{ SESSION_KEYS: '' }, /SESSION_KEYS is not set/],
        [{ SESSION_KEYS: b64(KEY_A).slice(0, 20) }, /at least 32 random bytes/],
        [{ SESSION_KEYS: `${b64(KEY_A)},${b64(KEY_A)}` }, /repeats an earlier key/],
        [{ SESSION_KEYS: `${b64(KEY_A)},not a key!` }, /SESSION_KEYS entry 2 is not a base64url key/],
      ];
      for (const [env, message] of cases) {
        const out = await cli(['keys'], env);
        expect(out.code, JSON.stringify(env)).to.equal(3);
        expect(out.stderr).to.match(message);
        expectNoKeys(out.stderr);
      }
      expect((await cli(['keys', '--keys-file', join(dir, 'missing')])).code).to.equal(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should open a cookie of either mode, from its value or a whole Cookie header, and show what it holds', async () => {
    const backend = CookieSessionBackend.private(new KeyRing([KEY_B]), { serializer: new MsgpackSerializer() });
    const value = backend.seal({ user: 'ada', n: 42, big: 2n ** 62n });
    const { code, report } = await inspect(`Cookie: theme=dark; session=${value}; other=1`);
    expect(code).to.equal(0);
    expect(report).to.deep.include({ opens: true, format: 2, mode: 'private', serializer: 'msgpack', lifetime: "the backend's maxAge" });
    expect(report.key).to.equal(`${idOf(KEY_B)} (older: the cookie is re-sealed with the newest on its next write)`);
    expect(report.size).to.equal(`${value.length} of 4000 characters`);
    expect(report.data).to.deep.equal({ user: 'ada', n: 42, big: '4611686018427387904n' });
    expect(report.expires).to.match(/^\d{4}-\d\d-\d\dT.*Z$/);
    const table = await cli(['inspect', value]);
    expect(table.stdout).to.match(/^opens: yes\n/);
    expect(table.stdout).to.include('"user": "ada"');
    const signed = CookieSessionBackend.signed(RING, { name: 'sid' }).seal({ a: 1 });
    expect((await inspect(signed, '--name', 'sid')).report).to.deep.include({ opens: true, mode: 'signed', serializer: 'json', data: { a: 1 } });
  });

  it('should say exactly why a cookie does not open, for every reason, and exit 1', async () => {
    const signed = CookieSessionBackend.signed(RING).seal({ a: 1 });
    const priv = CookieSessionBackend.private(RING).seal({ a: 1 });
    const flip = (value: string, at: number) => value.slice(0, at) + (value[at] === 'A' ? 'B' : 'A') + value.slice(at + 1);
    const day = 86_400_000;
    const cases: [string, string[], string, RegExp][] = [
      ['x'.repeat(4001), [], 'too-long', /longer than 4000/],
      ['abc+def/', [], 'not-base64url', /not base64url/],
      ['AB', [], 'not-canonical', /not canonical/],
      [`${signed}${'='.repeat((4 - (signed.length % 4)) % 4)}`, [], 'not-canonical', /padded/],
      [Buffer.from([0x7f, 1, 2, 3, 4, 5, 6, 7]).toString('base64url'), [], 'unknown-format', /unknown format/],
      [priv, ['--mode', 'signed'], 'wrong-mode', /sealed as private \(format version 2\), not signed/],
      [signed.slice(0, 40), [], 'truncated', /too short/],
      [
        CookieSessionBackend.signed(new KeyRing([KeyRing.generateKey()])).seal({ a: 1 }),
        [],
        'unknown-key',
        new RegExp(`which the ring does not hold \\(it holds ${idOf(KEY_A)}, ${idOf(KEY_B)}, ${idOf(KEY_C)}\\)`),
      ],
      [flip(signed, 40), [], 'bad-mac', /MAC does not match/],
      [flip(priv, 40), [], 'bad-tag', /GCM tag does not match/],
      [signed, ['--name', 'sid'], 'bad-mac', /another cookie name \(--name\)/],
      [CookieSessionBackend.signed(RING, { now: () => Date.now() - 2 * day }).seal({ a: 1 }), [], 'expired', /expired at \d{4}-/],
      [
        sealBytes('signed', RING, 200, Buffer.from('{}')),
        [],
        'unknown-serializer',
        /serializer this command does not know \(an app-defined one\): id 200/,
      ],
      [sealBytes('signed', RING, 1, Buffer.from('{not json')), [], 'undecodable', /does not decode/],
    ];
    for (const [value, options, reason, detail] of cases) {
      const { code, report, stdout } = await inspect(value, ...options);
      expect(code, reason).to.equal(1);
      expect(report.opens, reason).to.equal(false);
      expect(report.reason, reason).to.equal(reason);
      expect(report.detail, reason).to.match(detail);
      expect(report, reason).not.to.have.property('data');
      expectNoKeys(stdout);
      const table = await cli(['inspect', ...options, value]);
      expect(table.stdout, reason).to.match(/^opens: no — /);
    }
  });

  describe('with a store cookie', () => {
    let redis: RedisServer;
    before(async () => {
      redis = await startRedis();
    });
    after(async () => {
      await redis?.stop();
    });

    it("should show the id's hash (the store's key), never the id, and fetch the record with --redis-url", async () => {
      const client = await createClient({ url: redis.url }).connect();
      try {
        const backend = new StoreSessionBackend(new RedisStore(client), RING);
        const server = await listen(
          appWith(backend, (ctx) => {
            ctx.session.set('user', 'ada');
            ctx.session.set('cart', [1, 2]);
            ctx.body = 'ok';
          }),
        );
        const value = cookieValue(await request(server).get('/').expect(200));
        const id = Buffer.from(value, 'base64url').subarray(23, 55);
        const [storeKey] = redis.cli('--scan', '--pattern', 'sess:*').trim().split('\n');
        const { code, report, stdout } = await inspect(value, '--redis-url', redis.url);
        expect(code).to.equal(0);
        expect(report).to.deep.include({ opens: true, mode: 'store', store: storeKey });
        expect(report.data).to.deep.include({ user: 'ada', cart: [1, 2] });
        for (const spelling of [id.toString('base64url'), id.toString('hex'), id.toString('base64')]) expect(stdout).not.to.include(spelling);
        // Unreachable, refused, a wrong password, a db that does not exist, no URL: exit 4 with the reason, no stack.
        for (const url of ['redis://127.0.0.1:1', `redis://nobody:wrong@127.0.0.1:${redis.port}`, `${redis.url}/99`, 'not a url']) {
          const down = await inspect(value, '--redis-url', url);
          expect(down.code, url).to.equal(4);
          expect(down.stderr, url).to.match(/Cannot read the record from Redis/);
          expect(down.stderr, url).not.to.match(/\n\s+at /);
        }
        // A Redis that accepts and never answers: bounded by --timeout.
        redis.pause();
        try {
          const started = Date.now();
          const stalled = await inspect(value, '--redis-url', redis.url, '--timeout', '500');
          expect(stalled.code).to.equal(4);
          expect(Date.now() - started).to.be.below(4000);
        } finally {
          redis.resume();
        }
        // Its record gone, the app starts a new session: it does not open.
        redis.cli('FLUSHALL');
        const gone = await inspect(value, '--redis-url', redis.url);
        expect(gone.code).to.equal(1);
        expect(gone.report).to.deep.include({ opens: false, reason: 'no-record' });
        // A store cookie under a cookie session's mode: sealed for another mode.
        expect((await inspect(value, '--mode', 'signed')).report.reason).to.equal('wrong-mode');
      } finally {
        client.destroy();
      }
    });

    it('should not open a store cookie of another backend name', async () => {
      const server = await listen(
        appWith(new StoreSessionBackend(new MemoryStore(), RING), (ctx) => {
          ctx.session.set('a', 1);
          ctx.body = 'ok';
        }),
      );
      const value = cookieValue(await request(server).get('/').expect(200));
      expect((await inspect(value, '--name', 'sid')).report.reason).to.equal('bad-mac');
    });
  });

  it("should print PostgresStore's schema for the table and schema asked for, and refuse what it cannot print with exit 2", async () => {
    const plain = await cli(['schema', 'postgres']);
    expect(plain.code).to.equal(0);
    expect(plain.stdout).to.equal(PostgresStore.schema());
    const named = await cli(['schema', 'postgres', '--table', 'web_sessions', '--schema', 'app']);
    expect(named.code).to.equal(0);
    expect(named.stdout).to.equal(PostgresStore.schema({ table: 'web_sessions', schema: 'app' }));
    expect(named.stdout).to.include('"app"."web_sessions"');
    for (const args of [['schema'], ['schema', 'mysql'], ['schema', 'postgres', 'extra'], ['schema', 'postgres', '--table', 'Bad-Name']]) {
      const out = await cli(args);
      expect(out.code, args.join(' ')).to.equal(2);
      expect(out.stdout, args.join(' ')).to.equal('');
      expect(out.stderr, args.join(' ')).to.match(/schema|table/);
    }
  });

  it('should build a ring with KeyRing.fromEnv as the README shows, refusing what is not a ring', () => {
    expect(KeyRing.fromEnv('SESSION_KEYS', { SESSION_KEYS: ` ${b64(KEY_A)} , staged:${b64(KEY_B)} ` }).toJSON()).to.deep.equal({
      keys: 1,
      staged: 1,
    });
    for (const text of [undefined, ' ', `${b64(KEY_A)},`, `${b64(KEY_A)}=`, 'staged:']) {
      expect(() => KeyRing.fromEnv('SESSION_KEYS', { SESSION_KEYS: text }), String(text)).to.throw(SessionError);
    }
    // Never the key in a message.
    try {
      KeyRing.fromEnv('SESSION_KEYS', { SESSION_KEYS: `${b64(KEY_A)},${b64(KEY_A)}` });
    } catch (err) {
      expectNoKeys((err as Error).message);
    }
  });
});
