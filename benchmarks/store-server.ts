// One store benchmark case in a process of its own:
// node store-server.js <backend> <size> <redis port> <postgres url> <pgbouncer url>.
// Prints {"port": N} once it listens on 127.0.0.1; exits on SIGTERM. GET /seed stores the session, GET /read only
// reads it, GET /change changes one key.
import Koa from 'koa';
import koaSession from 'koa-session';
import redisStore from 'koa-redis';
import { Redis as IORedis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import postgres from 'postgres';
import { createClient } from 'redis';
import {
  KeyRing,
  MemoryStore,
  PostgresStore,
  RedisStore,
  StoreSessionBackend,
  session,
  type SessionRecord,
  type SessionStore,
} from '../src/index.js';
import { nearLimitSession } from './fixture.js';

/** koa-session with a PostgreSQL store written as its README shows an external store: not a published package. */
export const KOA_SESSION_PG = 'koa-session + PostgreSQL store (re-implemented as its README shows)';
/** No session at all: Koa and node-postgres sending as many statements as a session would, each a trivial one. */
export const PG_FLOOR = 'floor: Koa + node-postgres, no session, 1 trivial statement to read, 2 to change';
/**
 * No session either, but the work a per-key store cannot skip: the row read by its key (its jsonb as text, parsed),
 * and a change merging the one changed key into it (jsonb `||`). What PostgresStore's layout could reach with no
 * session work at all.
 */
export const PG_ROW_FLOOR = 'floor: Koa + node-postgres, no session, the row read by key, one key merged in (jsonb ||)';
/** PostgresStore as it runs behind a pooler in transaction mode: the cost of prepare: false, and of the pooler. */
export const PG_BOUNCER = "PostgresStore + node-postgres through PgBouncer (prepare: false; PgBouncer's CPU counted with PostgreSQL's)";
export const STORE_BACKENDS = [
  'MemoryStore',
  'RedisStore + node-redis',
  'RedisStore + ioredis',
  'koa-session + koa-redis',
  'PostgresStore + node-postgres',
  'PostgresStore + postgres.js',
  PG_BOUNCER,
  KOA_SESSION_PG,
  PG_FLOOR,
  PG_ROW_FLOOR,
] as const;
export type StoreBackendName = (typeof STORE_BACKENDS)[number];
/** Which server a backend keeps its sessions in, and the row each is compared with. */
export const STORE_OF: Record<StoreBackendName, { server: 'none' | 'redis' | 'postgres'; baseline: StoreBackendName }> = {
  MemoryStore: { server: 'none', baseline: 'koa-session + koa-redis' },
  'RedisStore + node-redis': { server: 'redis', baseline: 'koa-session + koa-redis' },
  'RedisStore + ioredis': { server: 'redis', baseline: 'koa-session + koa-redis' },
  'koa-session + koa-redis': { server: 'redis', baseline: 'koa-session + koa-redis' },
  'PostgresStore + node-postgres': { server: 'postgres', baseline: KOA_SESSION_PG },
  'PostgresStore + postgres.js': { server: 'postgres', baseline: KOA_SESSION_PG },
  [PG_BOUNCER]: { server: 'postgres', baseline: KOA_SESSION_PG },
  [KOA_SESSION_PG]: { server: 'postgres', baseline: KOA_SESSION_PG },
  [PG_FLOOR]: { server: 'postgres', baseline: KOA_SESSION_PG },
  [PG_ROW_FLOOR]: { server: 'postgres', baseline: KOA_SESSION_PG },
};
/** The re-implemented koa-session store's table. */
export const KOA_SESSION_PG_TABLE = 'koa_session_store';
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

// Pools of the same size for every PostgreSQL client (node-postgres' default).
const POOL = 10;

/**
 * A node-postgres pool that keeps its connections, as under steady traffic (postgres.js' default). node-postgres'
 * default closes them after 10 s idle, which every backend's pool was while the others took their turns: each
 * round began on new connections, preparing its statements again.
 */
function pgPool(pgUrl: string): pg.Pool {
  return new pg.Pool({ connectionString: pgUrl, max: POOL, idleTimeoutMillis: 0 });
}

async function storeFor(name: StoreBackendName, port: number, pgUrl: string, bouncerUrl: string): Promise<SessionStore> {
  if (name === 'MemoryStore') return new MemoryStore();
  if (name === PG_BOUNCER) return new PostgresStore(pgPool(bouncerUrl), { createTable: true, prepare: false });
  if (name === 'PostgresStore + node-postgres') return new PostgresStore(pgPool(pgUrl), { createTable: true });
  if (name === 'PostgresStore + postgres.js') return new PostgresStore(postgres(pgUrl, { max: POOL, onnotice: () => {} }), { createTable: true });
  if (name === 'RedisStore + node-redis') return new RedisStore(await createClient({ url: `redis://127.0.0.1:${port}` }).connect());
  const client = new IORedis(port, '127.0.0.1');
  return new RedisStore(client);
}

/**
 * A koa-session external store in PostgreSQL as its README shows one (get, set, destroy) and as connect-pg-simple
 * keeps sessions: get is a SELECT, set an upsert of the whole session's JSON with its expiry, destroy a DELETE.
 */
async function koaSessionPostgresStore(pgUrl: string): Promise<object> {
  const pool = pgPool(pgUrl);
  const t = KOA_SESSION_PG_TABLE;
  await pool.query(`CREATE TABLE IF NOT EXISTS ${t} (id text PRIMARY KEY, sess json NOT NULL, expire timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS ${t}_expire ON ${t} (expire)`);
  return {
    async get(key: string): Promise<unknown> {
      const { rows } = await pool.query<{ sess: unknown }>(`SELECT sess FROM ${t} WHERE id = $1 AND expire > now()`, [key]);
      return rows[0]?.sess;
    },
    async set(key: string, sess: unknown, maxAge: number | 'session'): Promise<void> {
      const ms = typeof maxAge === 'number' ? maxAge : 86_400_000;
      await pool.query(
        `INSERT INTO ${t} (id, sess, expire) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
ON CONFLICT (id) DO UPDATE SET sess = excluded.sess, expire = excluded.expire`,
        [key, JSON.stringify(sess), ms],
      );
    },
    async destroy(key: string): Promise<void> {
      await pool.query(`DELETE FROM ${t} WHERE id = $1`, [key]);
    },
  };
}

/**
 * What no session can go below: per request the statements a session sends (one to read, two to change), each a
 * trivial one, and a counter per client in memory. The statements name the session table, to be counted.
 */
function floorApp(pgUrl: string): Koa {
  const pool = pgPool(pgUrl);
  const counters = new Map<string, number>();
  const app = new Koa();
  const statement = `SELECT $1::text AS ${KOA_SESSION_PG_TABLE}_floor`;
  app.use(async (ctx) => {
    let id = ctx.cookies.get('floor');
    if (ctx.path === '/seed' || id === undefined) {
      id = String(counters.size);
      counters.set(id, 0);
      ctx.cookies.set('floor', id);
    }
    await pool.query({ name: 'floor', text: statement, values: [id] });
    if (ctx.path === '/change' || ctx.path === '/seed') {
      counters.set(id, (counters.get(id) ?? 0) + 1);
      await pool.query({ name: 'floor', text: statement, values: [id] });
    }
    ctx.body = String(counters.get(id));
  });
  return app;
}

/**
 * The row floor: each session a row of its keys as jsonb (as PostgresStore keeps them, lz4 where the server has it),
 * read by its key, and changed by merging the changed key in; an unsigned id cookie, no deadlines, no size, no user.
 * The table's name holds koa_session_store, to be counted.
 */
async function rowFloorApp(pgUrl: string, data: SessionRecord): Promise<Koa> {
  const pool = pgPool(pgUrl);
  const t = `${KOA_SESSION_PG_TABLE}_rows`;
  await pool.query(`CREATE TABLE IF NOT EXISTS ${t} (id text COLLATE "C" PRIMARY KEY, fields jsonb NOT NULL, expire timestamptz NOT NULL)
WITH (fillfactor = 80);
DO $c$ BEGIN EXECUTE 'ALTER TABLE ${t} ALTER COLUMN fields SET COMPRESSION lz4'; EXCEPTION WHEN OTHERS THEN NULL; END $c$`);
  const app = new Koa();
  app.use(async (ctx) => {
    let id = ctx.cookies.get('floor');
    if (ctx.path === '/seed' || id === undefined) {
      id = randomUUID();
      await pool.query({
        name: 'row_floor_create',
        text: `INSERT INTO ${t} (id, fields, expire) VALUES ($1, $2::jsonb, now() + interval '1 day')`,
        values: [id, JSON.stringify({ ...data, counter: 1 })],
      });
      ctx.cookies.set('floor', id);
      ctx.body = '1';
      return;
    }
    const { rows } = await pool.query<{ fields: string }>({
      name: 'row_floor_read',
      text: `SELECT fields::text AS fields FROM ${t} WHERE id = $1 AND expire > now()`,
      values: [id],
    });
    const fields = JSON.parse(rows[0]?.fields ?? '{}') as SessionRecord;
    let counter = (fields.counter as number | undefined) ?? 0;
    if (ctx.path === '/change') {
      counter += 1;
      await pool.query({
        name: 'row_floor_change',
        text: `UPDATE ${t} SET fields = fields || $2::jsonb WHERE id = $1 AND expire > now()`,
        values: [id, JSON.stringify({ counter })],
      });
    }
    ctx.body = String(counter);
  });
  return app;
}

async function appFor(name: StoreBackendName, data: SessionRecord, port: number, pgUrl: string, bouncerUrl: string): Promise<Koa> {
  const app = new Koa();
  if (name === PG_FLOOR) return floorApp(pgUrl);
  if (name === PG_ROW_FLOOR) return rowFloorApp(pgUrl, data);
  if (name === KOA_SESSION_PG) {
    app.keys = [secret.toString('base64url')];
    app.use(koaSession({ maxAge: 86_400_000, store: (await koaSessionPostgresStore(pgUrl)) as never }, app));
  } else if (name === 'koa-session + koa-redis') {
    app.keys = [secret.toString('base64url')];
    // koa-redis makes its own ioredis 4 client, as its README shows; its types lag its code, hence the casts.
    const store = redisStore({ host: '127.0.0.1', port } as never) as never;
    app.use(koaSession({ maxAge: 86_400_000, store }, app));
  } else {
    app.use(session(new StoreSessionBackend(await storeFor(name, port, pgUrl, bouncerUrl), new KeyRing([secret]))));
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

const [name, size, redisPort, pgUrl, bouncerUrl] = process.argv.slice(2) as [StoreBackendName, StoreSize, string, string, string];
if (STORE_BACKENDS.includes(name) && STORE_SIZES.includes(size)) {
  const app = await appFor(name, storeSession(size), Number(redisPort), pgUrl, bouncerUrl);
  const server = app.listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));
  });
  process.on('SIGTERM', () => process.exit(0));
}
