// npm run bench: micro benchmarks, then HTTP. Flags: --smoke (a few iterations of everything, as a check),
// --micro-only, --http-only (cookie and store), --store-only, --no-store (micro and cookie HTTP, which the table of
// one request in process against over HTTP needs). BENCH_ROUNDS sets the micro rounds (default 21), BENCH_HTTP_RUNS the cookie HTTP runs (2),
// BENCH_STORE_RUNS the store HTTP rounds (5),
// BENCH_EXPIRED_ROWS the expired rows under the PostgreSQL case that measures them (1,000,000; 0: no such case),
// BENCH_STORE_MATCH=a,b only the store backends whose name holds a or b.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runHttp, summarizeHttp, type HttpCaseResult } from './http.js';
import { runStoreHttp, storeTable, type ExpiredRowsResult, type StoreCaseResult } from './store-http.js';
import { KOA_SESSION_SCHEME, SECURE_SESSION_SCHEME } from './codecs.js';
import { CONFIGS, IN_PROCESS_CASES, runMicro, type MicroResult } from './micro.js';
import { median } from './harness.js';

const args = new Set(process.argv.slice(2));
const smoke = args.has('--smoke');
const log = (line: string) => console.log(line);

const us = (ns: number) => (ns / 1000).toFixed(ns < 10_000 ? 2 : 1);
const spread = (m: { median: number; p25: number; p75: number }) => `±${(((m.p75 - m.p25) / 2 / m.median) * 100).toFixed(0)}%`;

const machine = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, OpenSSL ${process.versions.openssl}`;
log(`machine: ${machine}`);

let micro: MicroResult | undefined;
if (!args.has('--http-only') && !args.has('--store-only')) {
  micro = await runMicro(smoke ? { rounds: 2, batchMs: 1 } : { rounds: Number(process.env.BENCH_ROUNDS ?? 21), batchMs: 25 }, log);
  const byName = new Map(micro.measurements.map((m) => [m.name, m]));
  log('\nMedian µs per operation (± half the interquartile range), near-limit session:\n');
  log('| case | cookie bytes | seal | open | round trip | request | request, property access | round trips/s |');
  log('|---|---:|---:|---:|---:|---:|---:|---:|');
  const labels = CONFIGS.map(({ mode, format }) => `${mode} ${format}`);
  const rows = [...labels, ...labels.map((label) => `floor ${label}`), KOA_SESSION_SCHEME, SECURE_SESSION_SCHEME, '@hapi/iron', 'iron-session'];
  for (const label of rows) {
    const cell = (op: string) => {
      const m = byName.get(`${label} ${op}`);
      return m === undefined ? '' : `${us(m.median)} ${spread(m)}`;
    };
    const rt = byName.get(`${label} round trip`);
    log(
      `| ${label} | ${micro.cookieBytes[label]} | ${cell('seal')} | ${cell('open')} | ${cell('round trip')} | ${cell('request')} | ${cell('request, property access')} | ${rt === undefined ? '' : Math.round(1e9 / rt.median).toLocaleString('en')} |`,
    );
  }
  log('\nOperations per second (from the medians):\n');
  log('| case | seal | open | round trip | request |');
  log('|---|---:|---:|---:|---:|');
  for (const label of rows) {
    const rate = (op: string) => {
      const m = byName.get(`${label} ${op}`);
      return m === undefined ? '' : Math.round(1e9 / m.median).toLocaleString('en');
    };
    log(`| ${label} | ${rate('seal')} | ${rate('open')} | ${rate('round trip')} | ${rate('request')} |`);
  }
  log(
    "\nOne request of the HTTP benchmark's apps, served in this process (µs, ± half the interquartile range; × echo: echo's time over the case's):\n",
  );
  log('| case | request, in process | × echo | / the request row above |');
  log('|---|---:|---:|---:|');
  for (const name of IN_PROCESS_CASES) {
    const m = byName.get(`${name} request, in process`);
    const x = name === 'echo' ? 1 : micro.ratios[`${name} request, in process: × echo`];
    const over = micro.ratios[`${name} request, in process / request`];
    log(`| ${name} | ${m === undefined ? '' : `${us(m.median)} ${spread(m)}`} | ${x?.toFixed(2) ?? ''} | ${over?.toFixed(2) ?? ''} |`);
  }
  log('\nRatios (median of per-round ratios; below 1 is faster):\n');
  for (const [name, value] of Object.entries(micro.ratios)) log(`- ${name}: ${value.toFixed(2)}`);
}

let http: HttpCaseResult[] | undefined;
if (!args.has('--micro-only') && !args.has('--store-only')) {
  const runs = Number(process.env.BENCH_HTTP_RUNS ?? 2);
  log(smoke ? '\nhttp: checking every case once, no load' : `\nhttp: ${runs} runs of 5 s per case, 32 connections, autocannon on 127.0.0.1`);
  http = await runHttp({ runs, seconds: 5, connections: 32, checkOnly: smoke }, log);
  if (!smoke) {
    const summary = summarizeHttp(http);
    const rps = (name: string) => summary.find((s) => s.name === name)?.rps ?? NaN;
    log('\n| HTTP case | req/s | p99 ms | × koa-session | × echo |');
    log('|---|---:|---:|---:|---:|');
    for (const s of summary) {
      log(
        `| ${s.name} | ${Math.round(s.rps).toLocaleString('en')} | ${s.p99} | ${(s.rps / rps('koa-session')).toFixed(2)} | ${(s.rps / rps('echo')).toFixed(2)} |`,
      );
    }
    const failures = http.reduce((sum, r) => sum + r.errors + r.non2xx, 0);
    log(`\nhttp errors and non-2xx answers: ${failures}`);
    if (micro !== undefined) {
      // The same apps, one request served in this process (no socket, no parser, no load generator): what is left
      // of the HTTP gap to echo once the network stack is taken away.
      const inProcess = new Map(micro.measurements.map((m) => [m.name, m.median]));
      log("\nOne request, in process against over HTTP (the same app; × echo: echo's time over the case's, or req/s over echo's):\n");
      log('| case | in process µs | × echo in process | × echo over HTTP | HTTP server µs per request (1 core) |');
      log('|---|---:|---:|---:|---:|');
      for (const name of IN_PROCESS_CASES) {
        const ns = inProcess.get(`${name} request, in process`) ?? NaN;
        const x = name === 'echo' ? 1 : (micro.ratios[`${name} request, in process: × echo`] ?? NaN);
        log(`| ${name} | ${us(ns)} | ${x.toFixed(2)} | ${(rps(name) / rps('echo')).toFixed(2)} | ${(1e6 / rps(name)).toFixed(1)} |`);
      }
    }
  }
}

let store: { cases: StoreCaseResult[]; expired: ExpiredRowsResult | undefined } | undefined;
if (!args.has('--micro-only') && !args.has('--no-store')) {
  const runs = Number(process.env.BENCH_STORE_RUNS ?? 5);
  log(
    smoke
      ? '\nstore: checking every case once, no load'
      : `\nstore: ${runs} rounds of 2 s per case and request, the backends in turn, 32 connections, one redis-server and one PostgreSQL of its own`,
  );
  const expiredRows = smoke ? 1000 : Number(process.env.BENCH_EXPIRED_ROWS ?? 1_000_000);
  store = await runStoreHttp({ runs, seconds: 2, connections: 32, checkOnly: smoke, expiredRows }, log);
  if (!smoke) {
    for (const server of ['redis', 'postgres'] as const) {
      log('');
      for (const line of storeTable(store.cases, server)) log(line);
    }
    const failures = store.cases.reduce((sum, r) => sum + r.errors + r.non2xx, 0);
    log(`\nstore http errors and non-2xx answers: ${failures}`);
    const e = store.expired;
    if (e !== undefined) {
      const base = store.cases.find((r) => r.backend === 'PostgresStore + node-postgres' && r.size === '2-3 KB' && r.op === 'read-only');
      const ratio =
        base === undefined ? '' : ` (${(e.readRps / median(base.requestsPerSecond)).toFixed(2)}× the same read on the table without them)`;
      log(
        `\nPostgresStore + node-postgres, 2-3 KB, on a table of ${e.expiredBefore.toLocaleString('en')} expired rows (filled in ${e.seconds.toFixed(0)} s):`,
      );
      log(`- read-only: ${Math.round(e.readRps).toLocaleString('en')} req/s, p99 ${e.readP99Ms} ms${ratio}`);
      log(
        `- change one key: ${Math.round(e.changeRps).toLocaleString('en')} req/s; new sessions: ${Math.round(e.newSessionRps).toLocaleString('en')} req/s`,
      );
      log(
        `- after: ${e.expiredAfter.toLocaleString('en')} expired rows left of ${e.rowsAfter.toLocaleString('en')} (each new session prunes up to 10)`,
      );
    }
  }
}

const results = { date: new Date().toISOString(), machine, smoke, micro, http, store };
const dir = fileURLToPath(new URL('../../benchmarks/results/', import.meta.url));
mkdirSync(dir, { recursive: true });
const file = `${dir}${smoke ? 'smoke' : results.date.replace(/[:.]/g, '-')}.json`;
writeFileSync(file, JSON.stringify(results, null, 2));
log(`\nraw results: ${file}`);
