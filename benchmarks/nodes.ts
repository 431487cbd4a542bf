// npm run bench:nodes: the micro benchmark on this Node and on every other current Node line (from the npm
// registry's `node` packages), in passes that take turns, so that a noisy minute falls on every Node alike.
// BENCH_NODE_PASSES sets the passes (default 3), BENCH_ROUNDS the micro rounds of each (default 7).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { nodeBinary, OTHER_NODES } from '../test/support/node-versions.js';
import { median } from './harness.js';
import type { MicroResult } from './micro.js';

const run = promisify(execFile);
const script = fileURLToPath(new URL('./run.js', import.meta.url));
const passes = Number(process.env.BENCH_NODE_PASSES ?? 3);
const rounds = process.env.BENCH_ROUNDS ?? '7';

const nodes = [{ version: process.version.slice(1), binary: process.execPath }];
for (const version of OTHER_NODES) nodes.push({ version, binary: await nodeBinary(version) });

/** Per Node, per measurement name: the medians of its passes. */
const medians = new Map<string, Map<string, number[]>>(nodes.map(({ version }) => [version, new Map()]));
const ratios = new Map<string, Map<string, number[]>>(nodes.map(({ version }) => [version, new Map()]));
for (let pass = 1; pass <= passes; pass++) {
  for (const { version, binary } of nodes) {
    console.log(`pass ${pass} of ${passes}: Node ${version}`);
    const { stdout } = await run(binary, [script, '--micro-only'], { env: { ...process.env, BENCH_ROUNDS: rounds }, maxBuffer: 1 << 24 });
    const file = /raw results: (.+)$/m.exec(stdout)?.[1];
    if (file === undefined) throw new Error(`the micro benchmark on Node ${version} wrote no results:\n${stdout}`);
    const micro = (JSON.parse(readFileSync(file, 'utf8')) as { micro: MicroResult }).micro;
    for (const m of micro.measurements) medians.get(version)?.set(m.name, [...(medians.get(version)?.get(m.name) ?? []), m.median]);
    for (const [name, value] of Object.entries(micro.ratios)) ratios.get(version)?.set(name, [...(ratios.get(version)?.get(name) ?? []), value]);
  }
}

const us = (ns: number | undefined) => (ns === undefined ? '' : (ns / 1000).toFixed(1));
const at = (table: Map<string, Map<string, number[]>>, version: string, name: string) => {
  const values = table.get(version)?.get(name);
  return values === undefined ? undefined : median(values);
};
const header = `| case | ${nodes.map(({ version }) => `Node ${version}`).join(' | ')} |`;
const rule = `|---|${nodes.map(() => '---:').join('|')}|`;
const cases = [...new Set(nodes.flatMap(({ version }) => [...(medians.get(version)?.keys() ?? [])]))];

console.log(`\nMedian µs per operation, median of ${passes} passes of ${rounds} rounds each, near-limit session:\n`);
console.log(header);
console.log(rule);
for (const name of cases) console.log(`| ${name} | ${nodes.map(({ version }) => us(at(medians, version, name))).join(' | ')} |`);

console.log('\nRatios within each Node (median of its passes; below 1 is faster):\n');
console.log(header);
console.log(rule);
const names = [...new Set(nodes.flatMap(({ version }) => [...(ratios.get(version)?.keys() ?? [])]))];
for (const name of names) console.log(`| ${name} | ${nodes.map(({ version }) => at(ratios, version, name)?.toFixed(2) ?? '').join(' | ')} |`);

const base = nodes[0]?.version ?? '';
console.log(`\nEach Node against Node ${base}, the medians' ratio over the near-limit round trips (below 1 is faster):\n`);
for (const { version } of nodes.slice(1)) {
  const per = cases
    .filter((name) => name.endsWith(' round trip'))
    .map((name) => (at(medians, version, name) ?? NaN) / (at(medians, base, name) ?? NaN))
    .filter(Number.isFinite);
  console.log(`- Node ${version} / Node ${base}: ${median(per).toFixed(2)} (median over ${per.length} round-trip cases)`);
}
