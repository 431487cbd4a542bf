// The HTTP benchmark: each case's server in a child process, autocannon here, on 127.0.0.1 only, bounded in time.
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { HTTP_CASES, type HttpCase, type ServedCase } from './http-server.js';
import { median } from './harness.js';

const serverScript = fileURLToPath(new URL('./http-server.js', import.meta.url));

export interface HttpOptions {
  readonly runs: number;
  readonly seconds: number;
  readonly connections: number;
  /** Check every case answers and round-trips, without load. */
  readonly checkOnly: boolean;
}

export interface HttpCaseResult {
  readonly name: HttpCase;
  readonly requestsPerSecond: number[];
  readonly p99Ms: number[];
  readonly errors: number;
  readonly non2xx: number;
}

/**
 * Starts a benchmark server script in its own process; resolves once it printed {"port": N}. `stdin: 'pipe'` keeps a
 * channel to it open; `nodeArgs` go before the script, `env` replaces the environment.
 */
export async function startServer(
  script: string,
  args: readonly string[],
  label: string,
  options: { readonly nodeArgs?: readonly string[]; readonly env?: NodeJS.ProcessEnv; readonly stdin?: 'pipe' } = {},
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], {
    stdio: [options.stdin ?? 'ignore', 'pipe', 'inherit'],
    env: options.env ?? process.env,
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  let timer: NodeJS.Timeout | undefined;
  const [line] = (await Promise.race([
    once(lines, 'line'),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${label}: the server did not start`)), 10_000))),
  ]).finally(() => clearTimeout(timer))) as [string];
  lines.close();
  const { port } = JSON.parse(line) as { port: number };
  return { child, url: `http://127.0.0.1:${port}` };
}

function start(name: HttpCase): Promise<{ child: ChildProcess; url: string }> {
  return startServer(serverScript, [name], name);
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}

/** Seeds a near-limit session and checks one request opens it and writes it back; returns the Cookie header. */
export async function seed(name: ServedCase, url: string): Promise<string> {
  const seeded = await fetch(`${url}/seed`);
  const cookie = seeded.headers
    .getSetCookie()
    .map((line) => line.slice(0, line.indexOf(';')))
    .join('; ');
  if (seeded.status !== 200) throw new Error(`${name}: seeding answered ${seeded.status}`);
  const res = await fetch(`${url}/`, { headers: cookie === '' ? {} : { cookie } });
  const body = await res.text();
  const expected = name === 'none' || name.startsWith('echo') ? '1' : '2';
  if (res.status !== 200 || body !== expected) throw new Error(`${name}: expected 200 "${expected}", got ${res.status} "${body}"`);
  if (name !== 'none' && res.headers.getSetCookie().length === 0) throw new Error(`${name}: no Set-Cookie in the answer`);
  if (name !== 'none' && cookie.length < 3000) throw new Error(`${name}: the seeded cookie is only ${cookie.length} bytes`);
  return cookie;
}

async function load(url: string, cookie: string, seconds: number, connections: number): Promise<autocannon.Result> {
  return autocannon({ url: `${url}/`, connections, duration: seconds, headers: cookie === '' ? {} : { cookie } });
}

export async function runHttp(options: HttpOptions, log: (line: string) => void): Promise<HttpCaseResult[]> {
  const results = new Map<HttpCase, { rps: number[]; p99: number[]; errors: number; non2xx: number }>(
    HTTP_CASES.map((name) => [name, { rps: [], p99: [], errors: 0, non2xx: 0 }]),
  );
  const runs = options.checkOnly ? 1 : options.runs;
  for (let run = 0; run < runs; run++) {
    // Alternate the order between runs, so that drift over time does not favour one case.
    const order = run % 2 === 0 ? [...HTTP_CASES] : [...HTTP_CASES].reverse();
    for (const name of order) {
      const { child, url } = await start(name);
      try {
        const cookie = await seed(name, url);
        if (options.checkOnly) continue;
        await load(url, cookie, 1, options.connections); // warm-up, discarded
        const result = await load(url, cookie, options.seconds, options.connections);
        const entry = results.get(name);
        entry?.rps.push(result.requests.average);
        entry?.p99.push(result.latency.p99);
        if (entry !== undefined) {
          entry.errors += result.errors + result.timeouts;
          entry.non2xx += result.non2xx;
        }
        log(`  http run ${run + 1}: ${name}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms`);
      } finally {
        await stop(child);
      }
    }
  }
  return [...results].map(([name, r]) => ({ name, requestsPerSecond: r.rps, p99Ms: r.p99, errors: r.errors, non2xx: r.non2xx }));
}

export function summarizeHttp(results: readonly HttpCaseResult[]): { name: HttpCase; rps: number; p99: number }[] {
  return results.map((r) => ({ name: r.name, rps: median(r.requestsPerSecond), p99: median(r.p99Ms) }));
}
