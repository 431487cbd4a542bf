// npm run bench:compare -- DIR: this build's micro benchmarks beside those of another checkout's build (DIR, a
// clone built with `npm run build`), in one process, the two alternating run by run so that both see the same
// machine. Prints each case of this library (not the alternatives) with both medians and their ratio. --http
// compares the HTTP cases too (requests per second through a real server, 5 s a case and run); --http-only, only them.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runHttp, summarizeHttp } from './http.js';
import { runMicro, type MicroResult } from './micro.js';

const dir = process.argv.slice(2).find((arg) => !arg.startsWith('--'));
const httpOnly = process.argv.includes('--http-only');
const withHttp = httpOnly || process.argv.includes('--http');
if (dir === undefined) {
  console.error('usage: node build/benchmarks/compare.js <other checkout, built>');
  process.exit(2);
}
const other = (await import(pathToFileURL(resolve(dir, 'build/benchmarks/micro.js')).href)) as { runMicro: typeof runMicro };
const otherHttp = (await import(pathToFileURL(resolve(dir, 'build/benchmarks/http.js')).href)) as { runHttp: typeof runHttp };
const runs = Number(process.env.BENCH_COMPARE_RUNS ?? 3);
const options = { rounds: Number(process.env.BENCH_ROUNDS ?? 11), batchMs: 25 };
const quiet = () => undefined;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};
if (!httpOnly) await compareMicro();

if (withHttp) {
  const rps = { base: new Map<string, number[]>(), here: new Map<string, number[]>() };
  for (let run = 0; run < runs; run++) {
    const order = run % 2 === 0 ? (['base', 'here'] as const) : (['here', 'base'] as const);
    for (const which of order) {
      const results = await (which === 'base' ? otherHttp.runHttp : runHttp)({ runs: 1, seconds: 5, connections: 32, checkOnly: false }, quiet);
      for (const { name, rps: value } of summarizeHttp(results)) rps[which].set(name, [...(rps[which].get(name) ?? []), value]);
    }
    console.error(`http run ${run + 1} of ${runs} done`);
  }
  console.log(`\nHTTP requests per second, median of ${runs} runs of 5 s per case; ratio above 1: this build is faster\n`);
  console.log(`| case | ${dir} | this build | ratio |`);
  console.log('|---|---:|---:|---:|');
  for (const [name, values] of rps.here) {
    const old = median(rps.base.get(name) ?? []);
    const now = median(values);
    console.log(`| ${name} | ${Math.round(old).toLocaleString('en')} | ${Math.round(now).toLocaleString('en')} | ${(now / old).toFixed(2)} |`);
  }
}

async function compareMicro(): Promise<void> {
  const results: { base: MicroResult[]; here: MicroResult[] } = { base: [], here: [] };
  for (let run = 0; run < runs; run++) {
    // Alternating, base first on even runs: neither build always runs on a warmer machine.
    const order = run % 2 === 0 ? (['base', 'here'] as const) : (['here', 'base'] as const);
    for (const which of order) results[which].push(await (which === 'base' ? other.runMicro : runMicro)(options, quiet));
    console.error(`run ${run + 1} of ${runs} done`);
  }
  const medians = (list: MicroResult[]) => {
    const byName = new Map<string, number[]>();
    for (const result of list) for (const m of result.measurements) byName.set(m.name, [...(byName.get(m.name) ?? []), m.median]);
    return new Map([...byName].map(([name, values]) => [name, median(values)]));
  };
  const base = medians(results.base);
  const here = medians(results.here);
  console.log(`\nMedian µs per operation over ${runs} runs of ${options.rounds} rounds each; ratio below 1: this build is faster\n`);
  console.log(`| case | ${dir} | this build | ratio |`);
  console.log('|---|---:|---:|---:|');
  for (const [name, ns] of here) {
    if (!/^(signed|private) /.test(name)) continue; // this library's own cases only
    const old = base.get(name);
    if (old === undefined) continue;
    console.log(`| ${name} | ${(old / 1000).toFixed(2)} | ${(ns / 1000).toFixed(2)} | ${(ns / old).toFixed(2)} |`);
  }
}
