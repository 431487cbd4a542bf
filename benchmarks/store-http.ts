// The store backend over HTTP: each backend × session size in its own process, against one redis-server of the
// benchmark's own on 127.0.0.1; autocannon here. Round trips per request come from Redis' INFO commandstats.
import autocannon from 'autocannon';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { roundTrips, startRedis, type RedisServer } from '../test/support/redis-server.js';
import { median } from './harness.js';
import { startServer, stop } from './http.js';
import { STORE_BACKENDS, STORE_SIZES, type StoreBackendName, type StoreSize } from './store-server.js';

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
  readonly roundTrips: number[];
  /** CPU time of the app's process and of redis-server per request, in µs (Linux /proc). */
  readonly appCpuUs: number[];
  readonly redisCpuUs: number[];
  readonly errors: number;
  readonly non2xx: number;
}

/** Seeds the session and checks a read and a change answer as they should; returns the Cookie header. */
async function seed(label: string, url: string): Promise<string> {
  const seeded = await fetch(`${url}/seed`);
  const cookie = seeded.headers
    .getSetCookie()
    .map((line) => line.slice(0, line.indexOf(';')))
    .join('; ');
  if (seeded.status !== 200 || cookie === '') throw new Error(`${label}: seeding answered ${seeded.status} without a cookie`);
  for (const [path, expected] of [
    ['/read', '1'],
    ['/change', '2'],
    ['/read', '2'],
  ]) {
    const res = await fetch(`${url}${path}`, { headers: { cookie } });
    const body = await res.text();
    if (res.status !== 200 || body !== expected) throw new Error(`${label} ${path}: expected 200 "${expected}", got ${res.status} "${body}"`);
  }
  return cookie;
}

/** User and system CPU time of a process, in µs, from /proc (Linux; clock ticks of 10 ms). */
function cpuUs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return Number.NaN;
  }
}

function clientCalls(redis: RedisServer, backend: StoreBackendName): number {
  const counts = redis.commandCounts();
  if (backend === 'koa-session + koa-redis') return KOA_REDIS_COMMANDS.reduce((sum, name) => sum + (counts[name] ?? 0), 0);
  // node-redis pipelines a read's two commands; through ioredis the read is a script (as the tests count them).
  return roundTrips(counts, backend === 'RedisStore + node-redis');
}

export async function runStoreHttp(
  options: { runs: number; seconds: number; connections: number; checkOnly: boolean },
  log: (line: string) => void,
): Promise<StoreCaseResult[]> {
  const redis = await startRedis();
  type Entry = StoreCaseResult & { errors: number; non2xx: number };
  const results = new Map<string, Entry>();
  const cases = STORE_SIZES.flatMap((size) => STORE_BACKENDS.map((backend) => ({ backend, size })));
  try {
    const runs = options.checkOnly ? 1 : options.runs;
    for (let run = 0; run < runs; run++) {
      const order = run % 2 === 0 ? cases : [...cases].reverse();
      for (const { backend, size } of order) {
        const label = `${backend}, ${size}`;
        const { child, url } = await startServer(serverScript, [backend, size, String(redis.port)], label);
        try {
          const cookie = await seed(label, url);
          if (options.checkOnly) continue;
          for (const op of STORE_OPS) {
            const target = { url: `${url}${PATHS[op]}`, connections: options.connections, headers: { cookie } };
            await autocannon({ ...target, duration: 1 }); // warm-up, discarded
            redis.resetStats();
            const [app0, redis0] = [cpuUs(child.pid), cpuUs(redis.pid)];
            const result = await autocannon({ ...target, duration: options.seconds });
            const [app1, redis1] = [cpuUs(child.pid), cpuUs(redis.pid)];
            const key = `${label}, ${op}`;
            const entry: Entry = results.get(key) ?? {
              backend,
              size,
              op,
              requestsPerSecond: [],
              p99Ms: [],
              roundTrips: [],
              appCpuUs: [],
              redisCpuUs: [],
              errors: 0,
              non2xx: 0,
            };
            const total = Math.max(1, result.requests.total);
            entry.requestsPerSecond.push(result.requests.average);
            entry.p99Ms.push(result.latency.p99);
            entry.roundTrips.push(clientCalls(redis, backend) / total);
            entry.appCpuUs.push((app1 - app0) / total);
            entry.redisCpuUs.push((redis1 - redis0) / total);
            entry.errors += result.errors + result.timeouts;
            entry.non2xx += result.non2xx;
            results.set(key, entry);
            log(`  store run ${run + 1}: ${key}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms`);
          }
        } finally {
          await stop(child);
        }
      }
    }
  } finally {
    await redis.stop();
  }
  return [...results.values()];
}

/** The pasteable table: medians, and each case against koa-session + koa-redis with the same size and request. */
export function storeTable(results: readonly StoreCaseResult[]): string[] {
  const rps = (r: StoreCaseResult) => median(r.requestsPerSecond);
  const lines = [
    '| backend | session | request | req/s | p99 ms | round trips / request | app CPU µs / request | Redis CPU µs / request | × koa-session + koa-redis |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const base = results.find((b) => b.backend === 'koa-session + koa-redis' && b.size === r.size && b.op === r.op);
    const trips = r.backend === 'MemoryStore' ? '0' : median(r.roundTrips).toFixed(2);
    const times = base === undefined ? '' : (rps(r) / rps(base)).toFixed(2);
    const redisCpu = r.backend === 'MemoryStore' ? '0' : median(r.redisCpuUs).toFixed(0);
    lines.push(
      `| ${r.backend} | ${r.size} | ${r.op} | ${Math.round(rps(r)).toLocaleString('en')} | ${median(r.p99Ms)} | ${trips} | ` +
        `${median(r.appCpuUs).toFixed(0)} | ${redisCpu} | ${times} |`,
    );
  }
  return lines;
}
