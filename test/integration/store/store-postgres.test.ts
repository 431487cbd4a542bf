import { expect } from 'chai';
import fc from 'fast-check';
import { inspect } from 'node:util';
import type Koa from 'koa';
import pg from 'pg';
import postgres from 'postgres';
import request from 'supertest';
import {
  KeyRing,
  PostgresStore,
  SessionError,
  StoreSessionBackend,
  type PostgresClientLike,
  type PostgresStoreOptions,
  type StoreSessionOptions,
} from '../../../src/index.js';
import { KEY_A, appWith, cookieValue, expectSessionError, listen } from '../../support/helpers.js';
import { startPgBouncer, type PgBouncer } from '../../support/pgbouncer.js';
import { startPostgres, type PostgresServer } from '../../support/postgres-server.js';
import { LAYOUT_VERSION, statements, tableName } from '../../../src/postgres/schema.js';

// What only PostgreSQL shows: its schema, its statements, its pruning and its outages. Every store behaviour the
// other stores share runs on it too, through eachStore (store-backend and user-sessions).

const KEY_RING = new KeyRing([KEY_A]);

const handler: Koa.Middleware = async (ctx) => {
  const session = ctx.session;
  if (ctx.path === '/count') session.set('counter', (session.get<number>('counter') ?? 0) + 1);
  if (ctx.path === '/set') session.set(String(ctx.query.key), String(ctx.query.value));
  if (ctx.path === '/secret') session.set('csrfSecret', 'csrf-9d2f7a1c');
  if (ctx.path === '/login') session.set('userId', 'alice');
  if (ctx.path === '/renew') session.renew();
  if (ctx.path === '/purge') session.purge();
  ctx.body = { ...session.toJSON(), isNew: session.isNew };
};

interface Client {
  readonly client: PostgresClientLike;
  close(): Promise<void>;
}

interface ClientCase {
  readonly label: string;
  readonly make: (url: string, max?: number) => Client;
  /** Through PgBouncer in transaction mode, with prepare: false set on the store or on the client (postgres.js). */
  readonly pooled?: 'store' | 'client';
}

const postgresJs = (url: string, max = 10, prepare = true): Client => {
  const sql = postgres(url, { max, prepare, onnotice: () => undefined });
  return { client: sql, close: () => sql.end({ timeout: 1 }) };
};

const nodePostgres: ClientCase = {
  label: 'node-postgres (Pool)',
  make: (url, max = 10) => {
    const pool = new pg.Pool({ connectionString: url, max });
    pool.on('error', () => undefined); // connections the tests kill
    return { client: pool, close: () => pool.end() };
  },
};

const CLIENTS: readonly ClientCase[] = [
  nodePostgres,
  { label: 'postgres.js', make: (url, max) => postgresJs(url, max) },
  { ...nodePostgres, label: "node-postgres (Pool) behind PgBouncer in transaction mode (the store's prepare: false)", pooled: 'store' },
  {
    label: "postgres.js behind PgBouncer in transaction mode (postgres.js' own prepare: false)",
    make: (url, max) => postgresJs(url, max, false),
    pooled: 'client',
  },
];

describe('the store backend on a real PostgreSQL (PostgresStore)', function () {
  this.timeout(60_000);
  let server: PostgresServer;
  let bouncer: PgBouncer;
  before(async () => {
    server = await startPostgres();
    server.psql('CREATE EXTENSION pg_stat_statements; CREATE EXTENSION pageinspect');
    bouncer = await startPgBouncer(server);
  });
  after(async () => {
    await bouncer?.stop();
    await server?.stop();
  });

  for (const { label, make, pooled } of CLIENTS) {
    describe(`through ${label}`, () => {
      let clients: Client[];
      const connect = (max?: number) => {
        const made = make(pooled ? bouncer.url : server.url, max);
        clients.push(made);
        return made.client;
      };
      /** A store on a client of this case's own. */
      const storeOf = (options: PostgresStoreOptions = {}, max?: number) =>
        new PostgresStore(connect(max), { ...options, ...(pooled === 'store' ? { prepare: false } : {}) });
      // Behind PgBouncer, the tests of what a pooler between the store and PostgreSQL can change (statements,
      // outages, restarts, servers starting at once, concurrency, errors); the others test the same SQL on the same
      // server, and run directly only.
      const direct = pooled ? () => undefined : it;
      const serve = async (options: StoreSessionOptions = {}, store = storeOf({ createTable: true }), ...before: Koa.Middleware[]) => {
        const app = appWith(new StoreSessionBackend(store, KEY_RING, options), ...before, handler);
        return { app, store, server: await listen(app) };
      };
      beforeEach(() => {
        clients = [];
        server.psql(
          'DROP TABLE IF EXISTS koa_sessions; DROP FUNCTION IF EXISTS koa_sessions_write; DROP FUNCTION IF EXISTS koa_sessions_fits; DROP FUNCTION IF EXISTS koa_sessions_resize; DROP FUNCTION IF EXISTS koa_sessions_touch; DROP FUNCTION IF EXISTS koa_sessions_bytes; DROP FUNCTION IF EXISTS koa_sessions_load; DROP FUNCTION IF EXISTS koa_sessions_change',
        );
      });
      afterEach(async () => {
        server.resume();
        await Promise.all(clients.map((c) => c.close()));
      });

      it('should cost no statement without a valid cookie, one to read, two to change (pg_stat_statements)', async () => {
        const { server: app } = await serve();
        const cookie = `session=${cookieValue(await request(app).get('/count').expect(200))}`;
        await request(app).get('/').set('Cookie', cookie).expect(200);
        // Statements of the store only: they name its table (psql's own do not).
        const statements = () =>
          Number(
            server.psql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%koa_sessions%' AND query NOT LIKE '%pg_stat%'"),
          );
        const cases: [string, string | undefined, number][] = [
          ['/', undefined, 0],
          ['/', 'session=garbage', 0],
          ['/', `session=${cookie.slice(9, -2)}AA`, 0],
          ['/', cookie, 1],
          ['/count', cookie, 2],
          ['/count', undefined, 1],
          ['/renew', cookie, 2],
        ];
        for (const [path, header, expected] of cases) {
          server.psql('SELECT pg_stat_statements_reset()');
          const req = request(app).get(path);
          await (header === undefined ? req : req.set('Cookie', header)).expect(200);
          expect(statements(), `${path} ${header ?? 'no cookie'}`).to.equal(expected);
        }
        // Without prepared statements, the read and the change are calls of their functions; with them, the SQL itself.
        const fresh = `session=${cookieValue(await request(app).get('/count').expect(200))}`; // the one above was renewed
        server.psql('SELECT pg_stat_statements_reset()');
        await request(app).get('/count').set('Cookie', fresh).expect(200, { counter: 2, isNew: false });
        const sent = server.psql(
          "SELECT query FROM pg_stat_statements WHERE query LIKE '%koa_sessions%' AND query NOT LIKE '%pg_stat%' ORDER BY query",
        );
        const calls = ['FROM "koa_sessions_load"(', 'SELECT "koa_sessions_change"('];
        if (pooled) for (const call of calls) expect(sent).to.include(call);
        else for (const call of calls) expect(sent).not.to.include(call);
      });

      direct('should write nothing on a read within the touch step, and move the idle deadline once it is due', async () => {
        const { server: app } = await serve({ idleTimeout: 3_600_000 });
        const cookie = `session=${cookieValue(await request(app).get('/count').expect(200))}`;
        const version = () => server.psql('SELECT xmin::text, idle_until FROM koa_sessions');
        const before = version();
        for (let i = 0; i < 3; i++) await request(app).get('/').set('Cookie', cookie).expect(200, { counter: 1, isNew: false });
        expect(version(), 'reads within a minute of the deadline rewrite no row').to.equal(before);
        server.psql("UPDATE koa_sessions SET idle_until = now() + interval '10 minutes'");
        await request(app).get('/').set('Cookie', cookie).expect(200, { counter: 1, isNew: false });
        const left = Number(server.psql('SELECT extract(epoch FROM idle_until - now()) FROM koa_sessions'));
        expect(left).to.be.within(3500, 3600);
      });

      direct(
        'should change a session within the touch step in place (a HOT update, the deadlines as they were), and move them once due',
        async () => {
          const { server: app } = await serve({ idleTimeout: 3_600_000 });
          const cookie = `session=${cookieValue(await request(app).get('/count').expect(200))}`;
          const deadline = () => server.psql('SELECT idle_until FROM koa_sessions');
          // Entries of the (one-page) indexes: a HOT update adds none, any other update one to each.
          const entries = (index: string) => Number(server.psql(`SELECT count(*) FROM bt_page_items('${index}', 1)`));
          const before = deadline();
          for (let i = 2; i <= 6; i++) await request(app).get('/count').set('Cookie', cookie).expect(200, { counter: i, isNew: false });
          expect(deadline(), 'changes within a minute of the deadline keep it').to.equal(before);
          expect(entries('koa_sessions_pkey'), 'every change a HOT update').to.equal(1);
          expect(entries('koa_sessions_expires_at'), 'every change a HOT update').to.equal(1);
          server.psql("UPDATE koa_sessions SET idle_until = now() + interval '10 minutes'");
          await request(app).get('/count').set('Cookie', cookie).expect(200, { counter: 7, isNew: false });
          expect(Number(server.psql('SELECT extract(epoch FROM idle_until - now()) FROM koa_sessions'))).to.be.within(3500, 3600);
        },
      );

      direct('should keep ASCII values as text PostgreSQL can compress, any other as base64, and read both back exactly', async () => {
        const { server: app } = await serve();
        const cookie = `session=${cookieValue(await request(app).get('/set').query({ key: 'plain', value: 'a "quoted" value' }).expect(200))}`;
        const values = { accents: 'Ada Lovelace, café ☕', nul: 'a\u0000b', 'key with % and \u0000': 'x' };
        for (const [key, value] of Object.entries(values)) await request(app).get('/set').query({ key, value }).set('Cookie', cookie).expect(200);
        const members = JSON.parse(server.psql('SELECT fields FROM koa_sessions')) as Record<string, string>;
        // The JSON serializer's entries: a format byte, then the JSON text.
        expect(members.plain).to.equal('t\u0001{"plain":"a \\"quoted\\" value"}');
        expect(members.accents?.[0]).to.equal('b');
        expect(members.nul, 'JSON writes NUL as an escape').to.equal('t\u0001{"nul":"a\\u0000b"}');
        expect(members['key with %25 and %00']?.[0]).to.equal('t');
        await request(app)
          .get('/')
          .set('Cookie', cookie)
          .expect(200, { plain: 'a "quoted" value', ...values, isNew: false });
      });

      direct('should hold no usable id: a dump of the whole table names no id and no cookie', async () => {
        const { server: app } = await serve();
        const token = cookieValue(await request(app).get('/count').expect(200));
        const id = Buffer.from(token, 'base64url').subarray(23, 55);
        const dump = server.psql('SELECT row_to_json(s)::text FROM koa_sessions s');
        expect(dump).to.include('"key"');
        for (const form of [token, id.toString('base64url'), id.toString('hex'), id.toString('base64')]) expect(dump).not.to.include(form);
      });

      direct('should refuse, with a 503 that says what to do, a missing table and a table of another shape', async () => {
        const bare = await serve({}, new PostgresStore(connect()));
        const cookie = `session=${cookieValue(
          await request((await serve()).server)
            .get('/count')
            .expect(200),
        )}`;
        server.psql('DROP TABLE koa_sessions');
        await request(bare.server).get('/').set('Cookie', cookie).expect(503);
        expect((bare.app.errors[0] as Error).message).to.match(/no table "koa_sessions".*PostgresStore\.schema\(\)/);
        server.psql('CREATE TABLE koa_sessions (key text PRIMARY KEY, data json, expire timestamptz)'); // connect-pg-simple's shape
        const other = await serve({}, new PostgresStore(connect()));
        await request(other.server).get('/').set('Cookie', cookie).expect(503);
        expect((other.app.errors[0] as Error).message).to.match(/not a session table of this shape: it lacks "fields" jsonb/);
        // Nor does createTable change a table that exists: it refuses it too.
        const creating = await serve({}, new PostgresStore(connect(), { createTable: true }));
        await request(creating.server).get('/').set('Cookie', cookie).expect(503);
        expect((creating.app.errors[0] as Error).message).to.match(/not a session table.*Drop it or name another table/);
        for (const { app } of [bare, other, creating]) expect((app.errors[0] as SessionError).code).to.equal('ERR_SESSION_STORE_UNAVAILABLE');
      });

      direct("should run on a table made by the operator's migration from PostgresStore.schema(), in a schema of its own", async () => {
        server.psql(
          `CREATE SCHEMA IF NOT EXISTS app; DROP TABLE IF EXISTS app.web_sessions; ${PostgresStore.schema({ table: 'web_sessions', schema: 'app' })}`,
        );
        const store = new PostgresStore(connect(), { table: 'web_sessions', schema: 'app' });
        expect(store.table).to.equal('"app"."web_sessions"');
        const { server: app } = await serve({}, store);
        const cookie = `session=${cookieValue(await request(app).get('/count').expect(200))}`;
        await request(app).get('/count').set('Cookie', cookie).expect(200, { counter: 2, isNew: false });
        expect(server.psql('SELECT count(*) FROM app.web_sessions')).to.equal('1');
        // The schema runs again unchanged (a migration replayed), and the function refuses to run on another layout.
        server.psql(PostgresStore.schema({ table: 'web_sessions', schema: 'app' }));
        server.psql("COMMENT ON FUNCTION app.web_sessions_write IS 'koa-sealed-session layout 0'");
        const stale = await serve({}, new PostgresStore(connect(), { table: 'web_sessions', schema: 'app' }));
        await request(stale.server).get('/').set('Cookie', cookie).expect(503);
        expect((stale.app.errors[0] as Error).message).to.match(
          new RegExp(
            `functions "app"\\."web_sessions_write", .* is missing, or of another layout than ${LAYOUT_VERSION}\\. Run the SQL of PostgresStore\\.schema\\(\\) again`,
          ),
        );
        // A schema half run (a function of the read or of the change missing) is refused the same way.
        for (const missing of ['web_sessions_touch', 'web_sessions_resize', 'web_sessions_load', 'web_sessions_change']) {
          server.psql(`${PostgresStore.schema({ table: 'web_sessions', schema: 'app' })}; DROP FUNCTION app.${missing}`);
          const half = await serve({}, new PostgresStore(connect(), { table: 'web_sessions', schema: 'app' }));
          await request(half.server).get('/').set('Cookie', cookie).expect(503);
          expect((half.app.errors[0] as Error).message, missing).to.match(/is missing, or of another layout/);
        }
        // With createTable, functions of an earlier layout (or missing) are made anew, and the rows stay.
        server.psql("COMMENT ON FUNCTION app.web_sessions_write IS 'koa-sealed-session layout 1'");
        const upgraded = await serve({}, new PostgresStore(connect(), { table: 'web_sessions', schema: 'app', createTable: true }));
        await request(upgraded.server).get('/count').set('Cookie', cookie).expect(200, { counter: 3, isNew: false });
        expect(server.psql("SELECT obj_description('app.web_sessions_write'::regproc, 'pg_proc')")).to.equal(
          `koa-sealed-session layout ${LAYOUT_VERSION}`,
        );
        expect(server.psql("SELECT to_regprocedure('app.web_sessions_resize(jsonb, bigint, text[], bigint, integer)') IS NOT NULL")).to.equal('t');
      });

      direct('should serve tables of one name in two schemas, and a table named with 56 characters, on one connection', async () => {
        server.psql('DROP SCHEMA IF EXISTS one CASCADE; DROP SCHEMA IF EXISTS two CASCADE; CREATE SCHEMA one; CREATE SCHEMA two');
        const client = connect(1);
        const stores = [
          new PostgresStore(client, { schema: 'one', table: 'sessions', createTable: true }),
          new PostgresStore(client, { schema: 'two', table: 'sessions', createTable: true }),
          // Its statements' names, if made of it, would pass 63 bytes and meet (destroy and destroyUser).
          new PostgresStore(client, { table: 'x'.repeat(56), createTable: true }),
        ];
        const write = { create: true, createdAt: Date.now(), clear: false, set: new Map([['a', Buffer.from('1')]]), remove: [], ttlMs: 60_000 };
        for (const [i, store] of stores.entries()) {
          expect(await store.write(`key${i}`, { ...write, user: 'u' })).to.equal(true);
          expect((await store.load(`key${i}`, 60_000))?.user).to.equal('u');
          expect(await store.sessionsOf('u')).to.have.length(1);
          await store.destroy(`key${i}`);
          expect(await store.destroyUser('u')).to.equal(0);
          await store.destroy(`key${i}`);
        }
        server.psql(`DROP SCHEMA one CASCADE; DROP SCHEMA two CASCADE; DROP TABLE ${'x'.repeat(56)}`);
      });

      it('should create the table once when many app servers start at once', async () => {
        const stores = Array.from({ length: 8 }, () => storeOf({ createTable: true }, 2));
        const write = { create: true, createdAt: Date.now(), clear: false, set: new Map([['a', Buffer.from('1')]]), remove: [], ttlMs: 60_000 };
        const created = await Promise.all(stores.map((store, i) => store.write(`key${i}`, write)));
        expect(created).to.deep.equal(Array(8).fill(true));
        expect(server.psql('SELECT count(*) FROM koa_sessions')).to.equal('8');
        // A rolling deploy: app servers of a newer build start at once on a table of an earlier layout.
        server.psql("COMMENT ON FUNCTION koa_sessions_write IS 'koa-sealed-session layout 1'; DROP FUNCTION koa_sessions_resize");
        const upgrading = Array.from({ length: 8 }, () => storeOf({ createTable: true }, 2));
        const changed = await Promise.all(
          upgrading.map((store, i) => store.write(`key${i}`, { ...write, create: false, set: new Map([['b', Buffer.from('2')]]) })),
        );
        expect(changed).to.deep.equal(Array(8).fill(true));
        expect(server.psql("SELECT count(*) FROM koa_sessions WHERE fields ? 'a' AND fields ? 'b'")).to.equal('8');
      });

      it('should keep every change of many concurrent requests that each change their own key', async () => {
        const { server: app } = await serve();
        const cookie = `session=${cookieValue(await request(app).get('/count').expect(200))}`;
        const keys = Array.from({ length: 24 }, (_, i) => `k${i}`);
        await Promise.all(keys.map((key) => request(app).get(`/set?key=${key}&value=${key}`).set('Cookie', cookie).expect(200)));
        const body = (await request(app).get('/').set('Cookie', cookie).expect(200)).body as Record<string, unknown>;
        for (const key of keys) expect(body[key], key).to.equal(key);
        expect(body.counter).to.equal(1);
      });

      direct("should keep each row's size, counted by the changes alone, equal to its data's bytes after any sequence of writes", async () => {
        const store = new PostgresStore(connect(), { createTable: true });
        await store.prune(); // creates the table
        // Names with the bytes the store escapes ("%", NUL) and multi-byte ones; values of any length.
        const name = fc.constantFrom('a', 'b', '%', 'x%25', 'n\u0000ul', 'ключ', '😀');
        const op = fc.oneof(
          fc.record({ set: fc.dictionary(name, fc.uint8Array({ maxLength: 40 }), { maxKeys: 3 }), remove: fc.uniqueArray(name, { maxLength: 2 }) }),
          fc.constant({ clear: true as const }),
        );
        await fc.assert(
          fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
            server.psql('TRUNCATE koa_sessions');
            const model = new Map<string, Uint8Array>();
            const base = { createdAt: Date.now(), ttlMs: 60_000, maxBytes: 65_536 };
            expect(await store.write('k', { ...base, create: true, clear: false, set: new Map(), remove: [] })).to.equal(true);
            for (const o of ops) {
              const set = new Map('clear' in o ? [] : Object.entries(o.set));
              const remove = 'clear' in o ? [] : o.remove.filter((key) => !set.has(key));
              expect(await store.write('k', { ...base, create: false, clear: 'clear' in o, set, remove })).to.equal(true);
              if ('clear' in o) model.clear();
              for (const key of remove) model.delete(key);
              for (const [key, value] of set) model.set(key, value);
            }
            const bytes = [...model].reduce((sum, [key, value]) => sum + Buffer.byteLength(key) + value.length, 0);
            const [size, recounted] = server
              .psql('SELECT size, (SELECT coalesce(sum(koa_sessions_bytes(e.k, e.v)), 0) FROM jsonb_each_text(fields) AS e(k, v)) FROM koa_sessions')
              .split('|')
              .map(Number);
            expect({ size, recounted }).to.deep.equal({ size: bytes, recounted: bytes });
          }),
          { numRuns: 40 },
        );
      });

      direct('should bring back no row that expired after its read: a change, a renewal and a read of it write nothing', async () => {
        const store = new PostgresStore(connect(), { createTable: true });
        const base = { createdAt: Date.now(), clear: false, remove: [], ttlMs: 60_000 };
        expect(await store.write('old', { ...base, create: true, set: new Map([['a', Buffer.from('1')]]) })).to.equal(true);
        expect(await store.load('old', 60_000)).to.not.equal(undefined);
        // Expired in the meantime, and not pruned yet: the row is there, past its idle deadline.
        server.psql("UPDATE koa_sessions SET idle_until = now() - interval '1 second'");
        const before = server.psql('SELECT fields, idle_until, absolute_until FROM koa_sessions');
        expect(await store.write('old', { ...base, create: false, set: new Map([['b', Buffer.from('2')]]) })).to.equal(false);
        expect(await store.write('new', { ...base, create: true, replaces: 'old', set: new Map([['a', Buffer.from('1')]]) })).to.equal(false);
        expect(await store.load('old', 60_000, Date.now())).to.equal(undefined);
        expect(server.psql('SELECT fields, idle_until, absolute_until FROM koa_sessions')).to.equal(before);
        expect(server.psql('SELECT count(*) FROM koa_sessions')).to.equal('1');
      });

      direct('should never open an expired row, whatever pruning did, and prune in bounded batches on new sessions and in prune()', async () => {
        const { server: app, store } = await serve();
        const cookie = `session=${cookieValue(await request(app).get('/count').expect(200))}`;
        server.psql("UPDATE koa_sessions SET idle_until = now() - interval '1 second'");
        await request(app).get('/').set('Cookie', cookie).expect(200, { isNew: true });
        server.psql(`INSERT INTO koa_sessions (key, fields, size, created_at, idle_until, absolute_until)
          SELECT 'x' || i, '{}', 0, 0, now() - interval '1 hour', now() + interval '1 hour' FROM generate_series(1, 5000) i`);
        const rows = () => Number(server.psql('SELECT count(*) FROM koa_sessions'));
        expect(rows()).to.equal(5001);
        // Each write that starts a session deletes at most pruneBatch (10) expired rows: five new sessions, 50 rows.
        const fresh = `session=${cookieValue(await request(app).get('/count').expect(200))}`;
        for (let i = 0; i < 4; i++) await request(app).get('/count').expect(200);
        expect(rows()).to.equal(5001 + 5 - 50);
        // A change adds no row, and prunes none.
        await request(app).get('/count').set('Cookie', fresh).expect(200, { counter: 2, isNew: false });
        expect(rows()).to.equal(5001 + 5 - 50);
        // The store's read plans on the primary key, however many rows have expired: as a custom plan and as the
        // generic plan a prepared statement settles on after five runs.
        server.psql('ANALYZE koa_sessions');
        const load = statements(tableName('test', 'koa_sessions', undefined)).load;
        const explain = "EXPLAIN EXECUTE l('x1', '60000', '3000', NULL);";
        const plans = server.psql(
          `PREPARE l(text, text, text, text) AS ${load};\n${explain}\n${"EXECUTE l('x1', '60000', '3000', NULL);\n".repeat(6)}${explain}`,
        );
        expect(plans.match(/Index Scan using koa_sessions_pkey/g)).to.have.length(2);
        expect(plans).to.match(/Index Cond: \(key = \$1\)/);
        // prune() from two servers at once: each skips the rows the other holds, and together they remove them all.
        const other = new PostgresStore(connect(), { createTable: true });
        const [a, b] = await Promise.all([store.prune({ batch: 100 }), other.prune({ batch: 100 })]);
        expect(a + b).to.equal(5001 - 50);
        expect(rows()).to.equal(5);
        expect(await store.prune({ limit: 10 })).to.equal(0);
      });

      it('should answer 503 within storeTimeout while PostgreSQL is stalled (SIGSTOP), and never apply later the write it gave up', async () => {
        // The read answers; the write then meets a stalled server, and the app is told it failed.
        let paused = false;
        const stalling: Koa.Middleware = async (ctx, next) => {
          if (ctx.path === '/stall') {
            ctx.session.get('a');
            server.pause();
            paused = true;
            ctx.session.set('a', 'given up');
          }
          await next();
        };
        const { app, server: web } = await serve({ storeTimeout: 300 }, storeOf({ createTable: true }), stalling);
        const cookie = `session=${cookieValue(await request(web).get('/set?key=a&value=before').expect(200))}`;
        await request(web).get('/set?key=a&value=settled').set('Cookie', cookie).expect(200);
        const started = Date.now();
        const res = await request(web).get('/stall').set('Cookie', cookie);
        expect(res.status).to.equal(503);
        expect(Date.now() - started).to.be.below(1500);
        expect(paused).to.equal(true);
        for (const path of ['/', '/count']) {
          const began = Date.now();
          expect((await request(web).get(path).set('Cookie', cookie)).status, path).to.equal(503);
          expect(Date.now() - began).to.be.below(1000);
        }
        await new Promise((resolve) => setTimeout(resolve, 400)); // past the write's deadline in the server's clock
        server.resume();
        await waitFor(async () => (await request(web).get('/').set('Cookie', cookie)).status === 200);
        await request(web).get('/').set('Cookie', cookie).expect(200, { a: 'settled', isNew: false });
        expect(app.errors.map((err) => (err as SessionError).code)).to.include('ERR_SESSION_STORE_UNAVAILABLE');
      });

      it('should refuse, never report as a session gone, a change that reached PostgreSQL after its deadline, and apply none of it', async () => {
        const store = storeOf({ createTable: true });
        const base = { clear: false, remove: [], ttlMs: 60_000, createdAt: Date.now() };
        // The first write tells the store the server's clock; deadlines are sent from then on.
        expect(await store.write('late-change', { ...base, create: true, set: new Map([['a', Buffer.from('"kept"')]]) })).to.equal(true);
        server.pause();
        const change = store.write('late-change', { ...base, create: false, set: new Map([['a', Buffer.from('"late"')]]), timeoutMs: 200 });
        const outcome = change.then(
          (changed) => `answered ${String(changed)}`,
          (err: unknown) => `refused: ${(err as Error).message}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 400)); // past the deadline (half the timeout) on the server's clock
        server.resume();
        expect(await outcome).to.match(/^refused: .*after the deadline/);
        expect((await store.load('late-change', 60_000))?.fields.get('a')?.toString()).to.equal('"kept"');
        // A change of a session that is gone, in time, is answered as such.
        await store.destroy('late-change');
        expect(await store.write('late-change', { ...base, create: false, set: new Map([['a', Buffer.from('"gone"')]]), timeoutMs: 2000 })).to.equal(
          false,
        );
      });

      direct('should answer 503 within storeTimeout while the pool is exhausted, and serve again once a connection is free', async () => {
        const pool = make(server.url, 2);
        clients.push(pool);
        const store = new PostgresStore(pool.client, { createTable: true });
        const { server: web } = await serve({ storeTimeout: 300 }, store);
        const cookie = `session=${cookieValue(await request(web).get('/count').expect(200))}`;
        // Two long statements hold both connections.
        const blockers = holdConnections(pool.client, 2, 1.5);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const began = Date.now();
        expect((await request(web).get('/').set('Cookie', cookie)).status).to.equal(503);
        expect(Date.now() - began).to.be.within(250, 1000);
        await blockers;
        await request(web).get('/').set('Cookie', cookie).expect(200, { counter: 1, isNew: false });
      });

      direct('should answer 503 at once past maxPending statements waiting, queueing nothing more', async () => {
        const store = new PostgresStore(connect(), { createTable: true, maxPending: 2 });
        const { server: web } = await serve({ storeTimeout: 2000 }, store);
        const cookie = `session=${cookieValue(await request(web).get('/count').expect(200))}`;
        server.pause();
        const read = () => Promise.resolve(request(web).get('/').set('Cookie', cookie)).then((res) => res.status);
        const waiting = [read(), read()];
        await new Promise((resolve) => setTimeout(resolve, 100));
        const began = Date.now();
        expect(await read()).to.equal(503);
        expect(Date.now() - began).to.be.below(300);
        server.resume();
        expect(await Promise.all(waiting)).to.deep.equal([200, 200]);
      });

      it('should open the same cookies with their data after PostgreSQL restarts, and after its connections are killed', async () => {
        const { server: web } = await serve({ storeTimeout: 2000 });
        const cookie = `session=${cookieValue(await request(web).get('/count').expect(200))}`;
        await server.restart();
        // A connection the restart closed may fail one request (503), never give an empty session.
        await waitFor(async () => {
          const res = await request(web).get('/').set('Cookie', cookie);
          if (res.status === 200) expect(res.body).to.deep.equal({ counter: 1, isNew: false });
          else expect(res.status).to.equal(503);
          return res.status === 200;
        });
        server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
        await waitFor(async () => {
          const res = await request(web).get('/count').set('Cookie', cookie);
          if (res.status !== 200) expect(res.status).to.equal(503);
          return res.status === 200;
        });
        await request(web).get('/').set('Cookie', cookie).expect(200, { counter: 2, isNew: false });
      });

      it("should keep the session's data, ids and SQL parameters out of errors when PostgreSQL refuses a write", async () => {
        const { app, server: web } = await serve({ userKey: 'userId' });
        const cookie = `session=${cookieValue(await request(web).get('/count').expect(200))}`;
        const key = server.psql('SELECT key FROM koa_sessions');
        // Every write now fails inside PostgreSQL, on a constraint that names the row's values in its detail.
        server.psql("ALTER TABLE koa_sessions ADD CONSTRAINT no_secrets CHECK (NOT fields ? 'csrfSecret')");
        server.psql('ALTER TABLE koa_sessions ADD CONSTRAINT no_users CHECK (user_hash IS NULL)');
        await request(web).get('/secret').set('Cookie', cookie).expect(503);
        await request(web).get('/login').set('Cookie', cookie).expect(503);
        expect(app.errors).to.have.length(2);
        for (const err of app.errors) {
          expect((err as SessionError).code).to.equal('ERR_SESSION_STORE_UNAVAILABLE');
          expect(String((err as { cause?: { message?: string } }).cause?.message)).to.match(/23514 \(integrity constraint violation\)/);
          const printed = inspect(err, { depth: 10, showHidden: true });
          for (const secret of ['csrf-9d2f7a1c', 'csrfSecret', 'alice', key, cookie.slice(8)]) expect(printed).not.to.include(secret);
        }
      });
    });
  }

  it('should say to pass prepare: false when a pooler in transaction mode loses its prepared statements', async () => {
    const direct = new pg.Pool({ connectionString: server.url, max: 2 });
    const pooled = new pg.Pool({ connectionString: bouncer.url, max: 10 });
    pooled.on('error', () => undefined);
    try {
      server.psql('DROP TABLE IF EXISTS koa_sessions');
      const seeding = await listen(appWith(new StoreSessionBackend(new PostgresStore(direct, { createTable: true }), KEY_RING), handler));
      const cookies = await Promise.all(
        Array.from({ length: 32 }, async () => `session=${cookieValue(await request(seeding).get('/count').expect(200))}`),
      );
      // Ten client connections, each preparing the read once, over PgBouncer's three server connections: at least
      // two prepare it on the same one (42P05), and a connection's next transaction may land where it is missing (26000).
      const app = appWith(new StoreSessionBackend(new PostgresStore(pooled), KEY_RING), handler);
      const web = await listen(app);
      const statuses = await Promise.all(cookies.map(async (cookie) => (await request(web).get('/').set('Cookie', cookie)).status));
      expect(statuses.every((status) => status === 200 || status === 503)).to.equal(true);
      expect(statuses).to.include(503);
      for (const err of app.errors) {
        expect((err as SessionError).code).to.equal('ERR_SESSION_STORE_UNAVAILABLE');
        expect(String((err as { cause?: { message?: string } }).cause?.message)).to.match(/^PostgreSQL failed: (26000|42P05) .*pass prepare: false/);
      }
    } finally {
      await Promise.all([direct.end(), pooled.end()]);
    }
  });

  it('should refuse an option it does not know, a table name SQL would have to quote, and a client it cannot use', () => {
    const pool = new pg.Pool({ connectionString: server.url });
    try {
      expectSessionError(() => new PostgresStore(pool, { tabel: 'x' } as never), 'ERR_SESSION_INVALID_OPTION');
      for (const table of ['Sessions', 'a-b', 'x"; DROP TABLE users; --', '', 'a'.repeat(57)])
        expectSessionError(() => new PostgresStore(pool, { table }), 'ERR_SESSION_INVALID_OPTION');
      expectSessionError(() => new PostgresStore(pool, { schema: 'Public' }), 'ERR_SESSION_INVALID_OPTION');
      expectSessionError(() => new PostgresStore(pool, { pruneBatch: -1 }), 'ERR_SESSION_INVALID_OPTION');
      expectSessionError(() => new PostgresStore(pool, { prepare: 'no' as never }), 'ERR_SESSION_INVALID_OPTION');
      expectSessionError(() => new PostgresStore({}), 'ERR_SESSION_INVALID_OPTION');
      expectSessionError(() => PostgresStore.schema({ table: 'no way' }), 'ERR_SESSION_INVALID_OPTION');
    } finally {
      void pool.end();
    }
  });
});

/** Holds `n` of the client's connections busy for `seconds` (pg_sleep), answering once they are free again. */
async function holdConnections(client: PostgresClientLike, n: number, seconds: number): Promise<void> {
  const sleep = `SELECT pg_sleep(${seconds})`;
  const run =
    typeof client === 'function'
      ? () => (client as unknown as { unsafe(text: string): Promise<unknown> }).unsafe(sleep)
      : () => (client as pg.Pool).query(sleep);
  await Promise.all(Array.from({ length: n }, run));
}

/** Polls `done` every 50 ms for up to 10 s. */
async function waitFor(done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await done()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('not done within 10 s');
}
