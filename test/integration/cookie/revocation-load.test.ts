import { expect } from 'chai';
import Koa from 'koa';
import type { AddressInfo } from 'node:net';
import { createClient } from 'redis';
import {
  CookieSessionBackend,
  KeyRing,
  RedisRevocationStore,
  RedisStore,
  StoreSessionBackend,
  session,
  type SessionBackend,
} from '../../../src/index.js';
import { KEY_A, listen } from '../../support/helpers.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';

const REQUESTS = Number(process.env.REVOCATION_LOAD_REQUESTS ?? 20_000);
const CONNECTIONS = 50;
const USERS = 100;
/** On the cookie backend, how long the second server may still open a revoked cookie. */
const CACHE_MS = 200;

type Revoker = (user: string) => Promise<unknown>;

function appFor(backend: SessionBackend): Koa {
  const app = new Koa();
  app.on('error', () => undefined); // a 500 shows in the statuses counted below
  app.use(session(backend));
  app.use((ctx) => {
    if (ctx.path === '/login') {
      ctx.session.renew();
      ctx.session.set('userId', String(ctx.query.user));
    }
    if (ctx.path === '/count') ctx.session.set('counter', (ctx.session.get<number>('counter') ?? 0) + 1);
    ctx.body = { user: ctx.session.get('userId') ?? null, counter: ctx.session.get('counter') ?? null };
  });
  return app;
}

interface Device {
  readonly user: string;
  cookie: string;
  counter: number;
  /** Set once its user is revoked: when revokeUser() had returned. */
  revokedAt?: number;
  ended: boolean;
}

/**
 * 20,000 requests over 50 connections, spread over two servers that share one Redis, while a user is revoked every
 * 50 ms through the first: counts what each server served.
 */
async function loadWhileRevoking(servers: readonly string[], revoke: Revoker, boundMs: number) {
  const devices: Device[] = [];
  for (let u = 0; u < USERS; u++) {
    for (let d = 0; d < 2; d++) {
      const res = await fetch(`${servers[d % servers.length]}/login?user=u${u}`);
      devices.push({ user: `u${u}`, cookie: cookieOf(res), counter: 0, ended: false });
    }
  }
  const problems: string[] = [];
  const statuses = new Map<number, number>();
  let sent = 0;
  let servedAfterBound = 0;
  let longestServedAfterRevocation = 0;
  const revokedUsers = new Set<string>();
  let done = false;
  const revoker = (async () => {
    while (!done && revokedUsers.size < USERS / 2) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const user = `u${Math.floor(Math.random() * USERS)}`;
      if (revokedUsers.has(user)) continue;
      revokedUsers.add(user);
      await revoke(user);
      const at = Date.now();
      for (const device of devices) if (device.user === user) device.revokedAt = at;
    }
  })();
  // Each connection drives its own devices, one request at a time: a device's counter has one writer.
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, c) => {
      const mine = devices.filter((_, i) => i % CONNECTIONS === c);
      while (sent < REQUESTS) {
        const live = mine.filter((device) => !device.ended);
        if (live.length === 0) return;
        const device = live[Math.floor(Math.random() * live.length)] as Device;
        sent += 1;
        const server = servers[Math.floor(Math.random() * servers.length)] as string;
        const started = Date.now();
        const revokedBefore = device.revokedAt;
        const res = await fetch(`${server}/count`, { headers: { cookie: device.cookie } });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status !== 200) continue;
        const body = (await res.json()) as { user: string | null; counter: number };
        if (body.user === device.user) {
          if (revokedBefore !== undefined) {
            longestServedAfterRevocation = Math.max(longestServedAfterRevocation, started - revokedBefore);
            if (started > revokedBefore + boundMs) servedAfterBound += 1;
          }
          if (body.counter !== device.counter + 1) problems.push(`${device.user}: counter ${body.counter} after ${device.counter}`);
          device.counter = body.counter;
          const next = cookieOf(res);
          if (next !== '') device.cookie = next;
        } else if (device.revokedAt !== undefined || revokedUsers.has(device.user)) {
          device.ended = true; // revoked: signed out, as it should be
        } else {
          problems.push(`${device.user}: signed out without a revocation`);
          device.ended = true;
        }
      }
    }),
  );
  done = true;
  await revoker;
  return { statuses, problems, servedAfterBound, longestServedAfterRevocation, revoked: revokedUsers.size, sent };
}

function cookieOf(res: Response): string {
  return res.headers
    .getSetCookie()
    .map((line) => line.slice(0, line.indexOf(';')))
    .filter((pair) => !pair.endsWith('='))
    .join('; ');
}

describe('revoking users under load (20,000 requests over 50 connections, two servers, one Redis)', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  const clients: { destroy(): unknown }[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await redis?.stop();
  });
  const connect = async () => {
    const client = await createClient({ url: redis.url }).connect();
    clients.push(client);
    return client;
  };
  const urlOf = async (app: Koa) => `http://127.0.0.1:${((await listen(app)).address() as AddressInfo).port}`;

  it('should serve no revoked store session once revokeUser() returned, lose no other, and answer no 500', async () => {
    const backends = [0, 1].map(async () => new StoreSessionBackend(new RedisStore(await connect()), new KeyRing([KEY_A]), { userKey: 'userId' }));
    const [first, second] = await Promise.all(backends);
    const servers = [await urlOf(appFor(first as StoreSessionBackend)), await urlOf(appFor(second as StoreSessionBackend))];
    const result = await loadWhileRevoking(servers, (user) => (first as StoreSessionBackend).revokeUser(user), 0);
    expect([...result.statuses.keys()]).to.deep.equal([200]);
    expect(result.sent).to.be.at.least(REQUESTS);
    expect(result.revoked).to.be.at.least(10);
    expect(result.problems).to.deep.equal([]);
    expect(result.servedAfterBound, 'served after revokeUser() returned').to.equal(0);
  });

  it(`should serve no revoked cookie on either server ${CACHE_MS} ms (revocationCacheMs) after revokeUser(), lose no other, and answer no 500`, async () => {
    const make = async () =>
      CookieSessionBackend.private(new KeyRing([KEY_A]), {
        userKey: 'userId',
        revocations: new RedisRevocationStore(await connect()),
        revocationCacheMs: CACHE_MS,
      });
    const first = await make();
    const second = await make();
    const servers = [await urlOf(appFor(first)), await urlOf(appFor(second))];
    const result = await loadWhileRevoking(servers, (user) => first.revokeUser(user), CACHE_MS);
    expect([...result.statuses.keys()]).to.deep.equal([200]);
    expect(result.sent).to.be.at.least(REQUESTS);
    expect(result.revoked).to.be.at.least(10);
    expect(result.problems).to.deep.equal([]);
    expect(result.servedAfterBound, `served more than ${CACHE_MS} ms after revokeUser() returned`).to.equal(0);
    expect(result.longestServedAfterRevocation).to.be.at.most(CACHE_MS);
  });
});
