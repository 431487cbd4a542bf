// The store backend over HTTP: each backend × session size in its own process, against one redis-server and one
// PostgreSQL of the benchmark's own on 127.0.0.1; autocannon here. Round trips per request come from Redis' INFO
// commandstats, statements per request from PostgreSQL's pg_stat_statements.
import autocannon from 'autocannon';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startPgBouncer, type PgBouncer } from '../test/support/pgbouncer.js';
import { startPostgres, type PostgresServer } from '../test/support/postgres-server.js';
import { roundTrips, startRedis, type RedisServer } from '../test/support/redis-server.js';
import { median } from './harness.js';
import { startServer, stop } from './http.js';
import { KOA_SESSION_PG_TABLE, PG_BOUNCER, STORE_BACKENDS, STORE_OF, STORE_SIZES, type StoreBackendName, type StoreSize } from './store-server.js';

const serverScript = fileURLToPath(new URL('./store-server.js', import.meta.url));
export const STORE_OPS = ['read-only', 'change one key'] as const;
type StoreOp = (typeof STORE_OPS)[number];
const PATHS: Record<StoreOp, string> = { 'read-only': '/read', 'change one key': '/change' };

// koa-redis sends each command on its own (it pipelines nothing): one round trip each.
const KOA_REDIS_COMMANDS = ['get', 'set', 'setex', 'del', 'expire'];

export interface StoreCaseResult {
  readonly backend: StoreBackendName;
  readonly size: StoreSize;
  readonly op: StoreOp;
  readonly requestsPerSecond: number[];
  readonly p99Ms: number[];
  /** Redis round trips, or PostgreSQL statements, per request. */
  readonly roundTrips: number[];
  /** CPU time of the app's process and of the store's server (redis-server, or every PostgreSQL process) per request, in µs (Linux /proc). */
  readonly appCpuUs: number[];
  readonly storeCpuUs: number[];
  readonly errors: number;
  readonly non2xx: number;
}

/**
 * Seeds `count` sessions, one per connection (as many users, not one user's requests racing each other), and
 * checks a read and a change of the first answer as they should; returns their Cookie headers.
 */
async function seed(label: string, url: string, count: number): Promise<string[]> {
  const cookies: string[] = [];
  for (let i = 0; i < count; i++) {
    const seeded = await fetch(`${url}/seed`);
    const cookie = seeded.headers
      .getSetCookie()
      .map((line) => line.slice(0, line.indexOf(';')))
      .join('; ');
    if (seeded.status !== 200 || cookie === '') throw new Error(`${label}: seeding answered ${seeded.status} without a cookie`);
    cookies.push(cookie);
  }
  for (const [path, expected] of [
    ['/read', '1'],
    ['/change', '2'],
    ['/read', '2'],
  ]) {
    const res = await fetch(`${url}${path}`, { headers: { cookie: cookies[0] as string } });
    const body = await res.text();
    if (res.status !== 200 || body !== expected) throw new Error(`${label} ${path}: expected 200 "${expected}", got ${res.status} "${body}"`);
  }
  return cookies;
}

/** autocannon's options for a load with each connection its own session (or none, with no cookies). */
function load(url: string, connections: number, cookies: readonly string[]): autocannon.Options {
  let next = 0;
  return {
    url,
    connections,
    setupClient: (client) => {
      if (cookies.length > 0) client.setHeaders({ cookie: cookies[next++ % cookies.length] as string });
    },
  };
}

/** User and system CPU time of a process, in µs, from /proc (Linux; clock ticks of 10 ms); with its waited-for children's too. */
function cpuUs(pid: number | undefined, children = false): number {
  if (pid === undefined) return Number.NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    const own = Number(fields[11]) + Number(fields[12]);
    return (children ? own + Number(fields[13]) + Number(fields[14]) : own) * 10_000;
  } catch {
    return Number.NaN;
  }
}

/** PostgreSQL's CPU time: the postmaster (with the backends that exited) and every backend, by pid. */
function postgresCpu(pg: PostgresServer): Map<number, number> {
  const [postmaster, ...backends] = pg.processes();
  const times = new Map(backends.map((pid) => [pid, cpuUs(pid)]));
  times.set(postmaster as number, cpuUs(postmaster, true));
  return times;
}

function postgresCpuSince(pg: PostgresServer, before: Map<number, number>): number {
  let total = 0;
  // A backend that began since counts from 0; one that ended is in the postmaster's children's time.
  for (const [pid, time] of postgresCpu(pg)) total += Number.isNaN(time) ? 0 : time - (before.get(pid) ?? 0);
  return total;
}

/**
 * Starts measuring the CPU time of the case's store server (and of the pooler in front of it, when it goes through
 * one); the answer gives the µs spent since.
 */
function storeCpuFrom(server: 'none' | 'redis' | 'postgres', redis: RedisServer, pg: PostgresServer, pooler?: PgBouncer): () => number {
  if (server === 'redis') {
    const before = cpuUs(redis.pid);
    return () => cpuUs(redis.pid) - before;
  }
  if (server === 'postgres') {
    const before = postgresCpu(pg);
    const pids = pooler?.processes() ?? [];
    const poolerBefore = pids.map((pid) => cpuUs(pid));
    return () => postgresCpuSince(pg, before) + pids.reduce((sum, pid, i) => sum + cpuUs(pid) - (poolerBefore[i] ?? 0), 0);
  }
  return () => 0;
}

/** The statements the case's app sent: those naming a session table (psql's own name pg_stat). */
function statementCount(pg: PostgresServer): number {
  return Number(
    pg.psql(
      `SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE (query LIKE '%koa_sessions%' OR query LIKE '%${KOA_SESSION_PG_TABLE}%') AND query NOT LIKE '%pg_stat%'`,
    ),
  );
}

function clientCalls(redis: RedisServer, pg: PostgresServer, backend: StoreBackendName): number {
  if (STORE_OF[backend].server === 'postgres') return statementCount(pg);
  const counts = redis.commandCounts();
  if (backend === 'koa-session + koa-redis') return KOA_REDIS_COMMANDS.reduce((sum, name) => sum + (counts[name] ?? 0), 0);
  // node-redis pipelines a read's two commands; through ioredis the read is a script (as the tests count them).
  return roundTrips(counts, backend === 'RedisStore + node-redis');
}

/** What a table of a million expired rows did under load: the rows before and after, and the reads' speed. */
export interface ExpiredRowsResult {
  readonly expiredBefore: number;
  readonly expiredAfter: number;
  readonly rowsAfter: number;
  readonly seconds: number;
  readonly readRps: number;
  readonly readP99Ms: number;
  readonly changeRps: number;
  readonly newSessionRps: number;
}

export async function runStoreHttp(
  options: { runs: number; seconds: number; connections: number; checkOnly: boolean; expiredRows: number },
  log: (line: string) => void,
): Promise<{ cases: StoreCaseResult[]; expired: ExpiredRowsResult | undefined }> {
  const redis = await startRedis();
  const pg = await startPostgres().catch(async (err: unknown) => {
    await redis.stop();
    throw err;
  });
  // As many server connections as each app's pool holds.
  const bouncer = await startPgBouncer(pg, 10).catch(async (err: unknown) => {
    await Promise.all([redis.stop(), pg.stop()]);
    throw err;
  });
  type Entry = StoreCaseResult & { errors: number; non2xx: number };
  const results = new Map<string, Entry>();
  // BENCH_STORE_MATCH=PostgreSQL,postgres: only the backends whose name holds one of these.
  const match = process.env.BENCH_STORE_MATCH?.split(',').filter((part) => part !== '');
  const backends = STORE_BACKENDS.filter((name) => match === undefined || match.some((part) => name.includes(part)));
  const args = (backend: StoreBackendName, size: StoreSize) => [backend, size, String(redis.port), pg.url, bouncer.url];
  let expired: ExpiredRowsResult | undefined;
  try {
    pg.psql('CREATE EXTENSION pg_stat_statements');
    const runs = options.checkOnly ? 1 : options.runs;
    for (const size of STORE_SIZES) {
      // Every backend of the size runs at once, idle but for its turn: the runs of one request go round the
      // backends in turn, so that a slow second of the machine falls on one slice of each, not on one backend.
      const servers: { backend: StoreBackendName; child: ChildProcess; url: string; cookies: string[] }[] = [];
      try {
        for (const backend of backends) {
          const label = `${backend}, ${size}`;
          const { child, url } = await startServer(serverScript, args(backend, size), label);
          // Listed before seeding, so that a server whose seeding fails is stopped too.
          const entry = { backend, child, url, cookies: [] as string[] };
          servers.push(entry);
          entry.cookies = await seed(label, url, options.checkOnly ? 1 : options.connections);
        }
        if (options.checkOnly) continue;
        for (const op of STORE_OPS) {
          for (let run = 0; run < runs; run++) {
            const first = run % servers.length;
            const order = [...servers.slice(first), ...servers.slice(0, first)];
            for (const { backend, child, url, cookies } of order) {
              const target = load(`${url}${PATHS[op]}`, options.connections, cookies);
              await autocannon({ ...target, duration: run === 0 ? 1 : 0.5 }); // warm-up, discarded
              const server = STORE_OF[backend].server;
              if (server === 'redis') redis.resetStats();
              if (server === 'postgres') pg.psql('SELECT pg_stat_statements_reset()');
              const app0 = cpuUs(child.pid);
              const storeCpu = storeCpuFrom(server, redis, pg, backend === PG_BOUNCER ? bouncer : undefined);
              const result = await autocannon({ ...target, duration: options.seconds });
              const app = cpuUs(child.pid) - app0;
              const store = storeCpu();
              const key = `${backend}, ${size}, ${op}`;
              const entry: Entry = results.get(key) ?? {
                backend,
                size,
                op,
                requestsPerSecond: [],
                p99Ms: [],
                roundTrips: [],
                appCpuUs: [],
                storeCpuUs: [],
                errors: 0,
                non2xx: 0,
              };
              const total = Math.max(1, result.requests.total);
              entry.requestsPerSecond.push(result.requests.average);
              entry.p99Ms.push(result.latency.p99);
              entry.roundTrips.push(server === 'none' ? 0 : clientCalls(redis, pg, backend) / total);
              entry.appCpuUs.push(app / total);
              entry.storeCpuUs.push(store / total);
              entry.errors += result.errors + result.timeouts;
              entry.non2xx += result.non2xx;
              results.set(key, entry);
              log(`  store run ${run + 1}: ${key}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms`);
            }
          }
        }
      } finally {
        await Promise.all(servers.map(({ child }) => stop(child)));
      }
    }
    if (options.expiredRows > 0) expired = await expiredRows(pg, options, args('PostgresStore + node-postgres', '2-3 KB'), log);
  } finally {
    await bouncer.stop();
    await Promise.all([redis.stop(), pg.stop()]);
  }
  return { cases: [...results.values()], expired };
}

const count = (pg: PostgresServer, where: string) => Number(pg.psql(`SELECT count(*) FROM koa_sessions WHERE ${where}`));

/**
 * PostgresStore through node-postgres on a table holding `expiredRows` expired rows: reads, changes, and new
 * sessions (each a write that prunes a batch) under load, and how many expired rows are left.
 */
async function expiredRows(
  pg: PostgresServer,
  options: { seconds: number; connections: number; checkOnly: boolean; expiredRows: number },
  args: string[],
  log: (line: string) => void,
): Promise<ExpiredRowsResult> {
  const label = `PostgresStore + node-postgres, ${options.expiredRows.toLocaleString('en')} expired rows`;
  log(`  store: filling a table with ${options.expiredRows.toLocaleString('en')} expired rows`);
  const started = Date.now();
  // Rows ended over the last day, as a busy site leaves them; the keys look like the store's (base64url SHA-256).
  pg.psql(
    `TRUNCATE koa_sessions; INSERT INTO koa_sessions (key, fields, size, created_at, idle_until, absolute_until)
SELECT encode(sha256(i::text::bytea), 'base64'), '{}'::jsonb, 0, 0, now() - (1 + i % 86400) * interval '1 second', now() + interval '1 day'
FROM generate_series(1, ${options.expiredRows}) AS i`,
    300_000,
  );
  pg.psql('VACUUM ANALYZE koa_sessions', 300_000);
  const seconds = (Date.now() - started) / 1000;
  const expiredBefore = count(pg, 'expires_at <= now()');
  const { child, url } = await startServer(serverScript, args, label);
  try {
    const cookies = await seed(label, url, options.checkOnly ? 1 : options.connections);
    const run = async (path: string, sessions: readonly string[]) => {
      if (options.checkOnly) return { requests: { average: 0 }, latency: { p99: 0 } };
      const target = load(`${url}${path}`, options.connections, sessions);
      await autocannon({ ...target, duration: 1 });
      return autocannon({ ...target, duration: options.seconds });
    };
    const read = await run('/read', cookies);
    const change = await run('/change', cookies);
    // No cookie: each request starts a session, one create-if-absent write that prunes a batch.
    const fresh = await run('/change', []);
    const result = {
      expiredBefore,
      expiredAfter: count(pg, 'expires_at <= now()'),
      rowsAfter: count(pg, 'true'),
      seconds,
      readRps: read.requests.average,
      readP99Ms: read.latency.p99,
      changeRps: change.requests.average,
      newSessionRps: fresh.requests.average,
    };
    log(`  store: ${label}: ${JSON.stringify(result)}`);
    return result;
  } finally {
    await stop(child);
  }
}

/** The pasteable tables, one per store server: medians, and each case against koa-session on the same server. */
export function storeTable(results: readonly StoreCaseResult[], server: 'redis' | 'postgres'): string[] {
  const rps = (r: StoreCaseResult) => median(r.requestsPerSecond);
  const rows = results.filter((r) => STORE_OF[r.backend].server === server || (server === 'redis' && r.backend === 'MemoryStore'));
  const baseline = server === 'redis' ? 'koa-session + koa-redis' : 'koa-session + PostgreSQL store';
  const lines = [
    server === 'redis'
      ? `| backend | session | request | req/s | p99 ms | round trips / request | app CPU µs / request | Redis CPU µs / request | × ${baseline} |`
      : `| backend | session | request | req/s | p99 ms | statements / request | app CPU µs / request | PostgreSQL CPU µs / request | × ${baseline} |`,
    '|---|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const base = results.find((b) => b.backend === STORE_OF[r.backend].baseline && b.size === r.size && b.op === r.op);
    // Run i of every backend ran in the same round: the ratio is the median of the rounds' ratios.
    const times =
      base === undefined ? '' : median(r.requestsPerSecond.map((value, i) => value / (base.requestsPerSecond[i] ?? Number.NaN))).toFixed(2);
    lines.push(
      `| ${r.backend} | ${r.size} | ${r.op} | ${Math.round(rps(r)).toLocaleString('en')} | ${median(r.p99Ms)} | ${median(r.roundTrips).toFixed(2)} | ` +
        `${median(r.appCpuUs).toFixed(0)} | ${median(r.storeCpuUs).toFixed(0)} | ${times} |`,
    );
  }
  return lines;
}
