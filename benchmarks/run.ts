// npm run bench: micro benchmarks, then HTTP. `--smoke` runs a few iterations of everything as a check.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runMicro, CONFIGS } from './micro.js';

const args = new Set(process.argv.slice(2));
const smoke = args.has('--smoke');
const log = (line: string) => console.log(line);

const us = (ns: number) => (ns / 1000).toFixed(ns < 10_000 ? 2 : 1);
const spread = (m: { median: number; p25: number; p75: number }) => `±${(((m.p75 - m.p25) / 2 / m.median) * 100).toFixed(1)}%`;

const machine = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, OpenSSL ${process.versions.openssl}`;
log(`machine: ${machine}`);

const rounds = Number(process.env.BENCH_ROUNDS ?? 21);
const micro = await runMicro(smoke ? { rounds: 2, batchMs: 1 } : { rounds, batchMs: 25 }, log);
const byName = new Map(micro.measurements.map((m) => [m.name, m]));

log('\n| case | cookie bytes | seal µs | open µs | round trip µs | request µs | round-trip ops/s |');
log('|---|---:|---:|---:|---:|---:|---:|');
const rows = [...CONFIGS.map(({ mode, format }) => `${mode} ${format}`), ...CONFIGS.map(({ mode, format }) => `floor ${mode} ${format}`), 'koa-session', '@fastify/secure-session', '@hapi/iron', 'iron-session'];
for (const label of rows) {
  const get = (op: string) => byName.get(`${label} ${op}`);
  const cell = (op: string) => {
    const m = get(op);
    return m === undefined ? '' : `${us(m.median)} ${spread(m)}`;
  };
  const rt = get('round trip');
  log(`| ${label} | ${micro.cookieBytes[label]} | ${cell('seal')} | ${cell('open')} | ${cell('round trip')} | ${cell('request')} | ${rt === undefined ? '' : Math.round(1e9 / rt.median).toLocaleString('en')} |`);
}
log('\nratios (median of per-round ratios; < 1 is faster):');
for (const [name, value] of Object.entries(micro.ratios)) log(`  ${name}: ${value.toFixed(2)}`);

const results = { date: new Date().toISOString(), machine, smoke, micro };
const dir = fileURLToPath(new URL('../../benchmarks/results/', import.meta.url));
mkdirSync(dir, { recursive: true });
const file = `${dir}${smoke ? 'smoke' : results.date.replace(/[:.]/g, '-')}.json`;
writeFileSync(file, JSON.stringify(results, null, 2));
log(`\nraw results: ${file}`);
