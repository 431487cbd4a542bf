// One store benchmark case in a process of its own: node store-server.js <backend> <size> <redis port>.
// Prints {"port": N} once it listens on 127.0.0.1; exits on SIGTERM. GET /seed stores the session, GET /read only
// reads it, GET /change changes one key.
import Koa from 'koa';
import koaSession from 'koa-session';
import redisStore from 'koa-redis';
import { Redis as IORedis } from 'ioredis';
import type { AddressInfo } from 'node:net';
import { createClient } from 'redis';
import { KeyRing, MemoryStore, RedisStore, StoreSessionBackend, session, type SessionRecord, type SessionStore } from '../src/index.js';
import { nearLimitSession } from './fixture.js';

export const STORE_BACKENDS = ['MemoryStore', 'RedisStore + node-redis', 'RedisStore + ioredis', 'koa-session + koa-redis'] as const;
export type StoreBackendName = (typeof STORE_BACKENDS)[number];
export const STORE_SIZES = ['2-3 KB', '32 KB'] as const;
export type StoreSize = (typeof STORE_SIZES)[number];

/** The same data for every backend: the realistic session of the cookie benchmark, or that grown to 32 KB. */
export function storeSession(size: StoreSize): SessionRecord {
  const base = { ...nearLimitSession(), counter: 0 };
  if (size === '2-3 KB') return base;
  const history: SessionRecord[] = [];
  while (JSON.stringify({ ...base, history }).length < 32_000) {
    const i = history.length;
    history.push({
      sku: `SKU-${(100000 + i * 7919).toString(36).toUpperCase()}`,
      viewedAt: 1_764_000_000_000 + i * 61_000,
      from: i % 3 === 0 ? 'search' : 'category',
    });
  }
  return { ...base, history };
}

const secret = Buffer.from(process.env.BENCH_KEY ?? KeyRing.generateKey().toString('base64url'), 'base64url');

async function storeFor(name: StoreBackendName, port: number): Promise<SessionStore> {
  if (name === 'MemoryStore') return new MemoryStore();
  if (name === 'RedisStore + node-redis') return new RedisStore(await createClient({ url: `redis://127.0.0.1:${port}` }).connect());
  const client = new IORedis(port, '127.0.0.1');
  return new RedisStore(client);
}

async function appFor(name: StoreBackendName, data: SessionRecord, port: number): Promise<Koa> {
  const app = new Koa();
  if (name === 'koa-session + koa-redis') {
    app.keys = [secret.toString('base64url')];
    // koa-redis makes its own ioredis 4 client, as its README shows; its types lag its code, hence the casts.
    const store = redisStore({ host: '127.0.0.1', port } as never) as never;
    app.use(koaSession({ maxAge: 86_400_000, store }, app));
  } else {
    app.use(session(new StoreSessionBackend(await storeFor(name, port), new KeyRing([secret]))));
  }
  // Property access, as koa-session apps write it, on both.
  app.use((ctx) => {
    const s = ctx.session as unknown as Record<string, unknown>;
    if (ctx.path === '/seed') Object.assign(s, data);
    const count = (s.counter as number | undefined) ?? 0;
    if (ctx.path === '/change' || ctx.path === '/seed') s.counter = count + 1;
    ctx.body = String(s.counter);
  });
  return app;
}

const [name, size, redisPort] = process.argv.slice(2) as [StoreBackendName, StoreSize, string];
if (STORE_BACKENDS.includes(name) && STORE_SIZES.includes(size)) {
  const app = await appFor(name, storeSession(size), Number(redisPort));
  const server = app.listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));
  });
  process.on('SIGTERM', () => process.exit(0));
}
