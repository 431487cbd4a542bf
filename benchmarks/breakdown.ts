// npm run bench:breakdown: where one HTTP request's server time goes, per case, under the HTTP benchmark's load
// (autocannon, 32 connections, near-limit cookie, each case's app in a process of its own on 127.0.0.1).
//
// For each case: V8's CPU profile of the server over the load, its self time bucketed by the code it ran in (a
// native function counts for the JavaScript that called it); the CPU each of the server's threads used
// (/proc/<pid>/task/*/schedstat), and the load generator's own; where `perf` runs, the kernel's share of the
// server's time by system call, sampled with `perf record -g`; where `strace` runs, the system calls per request
// over sequential requests on one connection; and the bytes of one response. Everything is divided by the requests
// served in the same window. BENCH_BREAKDOWN_SECONDS sets the profiled load (default 6), BENCH_BUSY_US the spin of
// the "echo, busy" control, BENCH_BREAKDOWN_CASES=a,b only the cases whose name holds a or b, BENCH_BREAKDOWN_TOP=N
// lists each case's N functions of most self time. --smoke: echo and signed json, 1 s, no perf or strace, the control
// spinning 100 µs.
import autocannon from 'autocannon';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { median } from './harness.js';
import { seed, startServer, stop } from './http.js';
import type { ServedCase } from './http-server.js';

// "echo, busy" comes last: unless BENCH_BUSY_US says otherwise, it spins for what signed json's main thread does
// besides writing and waiting, beyond echo's, so that it serves about signed json's rate with echo's response.
const ALL_CASES: readonly ServedCase[] = ['echo', 'koa-session', 'signed json', 'signed msgpack', 'private json', 'private msgpack', 'echo, busy'];
const smoke = process.argv.includes('--smoke');
const match = smoke ? ['echo', 'signed json'] : process.env.BENCH_BREAKDOWN_CASES?.split(',');
const cases = ALL_CASES.filter((name) => match === undefined || match.some((part) => name.includes(part)));
const seconds = smoke ? 1 : Number(process.env.BENCH_BREAKDOWN_SECONDS ?? 6);
const connections = 32;
const serverScript = fileURLToPath(new URL('./breakdown-server.js', import.meta.url));
const run = promisify(execFile);
const has = (tool: string) => !smoke && spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const withPerf = has('perf');
const withStrace = has('strace');
const WRITES = 'socket writes (the system call)';
const IDLE = 'idle (waiting for the socket)';
const RESPONSE_HEADERS = 'Node HTTP: headers, the response (checked, written)';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The bucket of the code a profile node ran in; a node with no script (a native function) takes its caller's. */
function bucketOf(url: string, functionName: string): string {
  // _http_common's checks of a header's name and value run when the response's headers are set.
  if (url === 'node:_http_common' && functionName.startsWith('check')) return RESPONSE_HEADERS;
  if (url.includes('/src/codec/') || url.includes('/msgpackr/')) return 'codecs (JSON scan, MessagePack)';
  if (url.includes('/src/crypto/') || url.startsWith('node:internal/crypto') || url === 'node:crypto') return 'crypto (HMAC, AES-GCM, keys)';
  if (url.includes('/build/src/')) return 'middleware, session, backend';
  if (url.includes('/build/benchmarks/')) return "the app's handler";
  if (url.includes('/node_modules/')) return 'Koa and its dependencies';
  if (/^node:_http_(server|common|incoming)$/.test(url)) return 'Node HTTP: parsing, the request';
  if (url === 'node:_http_outgoing') return RESPONSE_HEADERS;
  if (url === 'node:net' || url.startsWith('node:internal/stream') || url.startsWith('node:stream')) return 'socket and streams (JavaScript)';
  if (url === 'node:buffer' || url === 'node:internal/buffer') return 'Buffer';
  if (url.startsWith('node:')) return 'Node: events, timers, microtasks';
  return 'other';
}
const NATIVE_WRITES = new Set(['writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString']);
const SPECIAL = new Map([
  ['(garbage collector)', 'garbage collector (main thread)'],
  ['(idle)', IDLE],
  ['(program)', 'V8 and native, unattributed'],
  ['(root)', 'V8 and native, unattributed'],
]);

/** Microseconds of self time per bucket over the whole profile, and per function (as "bucket: name url:line"). */
function bucketProfile(profile: Profile): { buckets: Map<string, number>; functions: Map<string, number> } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const bucketOfNode = new Map<number, string>();
  const resolve = (id: number): string => {
    const known = bucketOfNode.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id) as ProfileNode;
    const { functionName, url } = node.callFrame;
    const bucket =
      SPECIAL.get(functionName) ??
      (url === '' && NATIVE_WRITES.has(functionName) ? WRITES : undefined) ??
      (url !== '' ? bucketOf(url, functionName) : undefined) ??
      (parent.has(id) ? resolve(parent.get(id) as number) : 'V8 and native, unattributed');
    bucketOfNode.set(id, bucket);
    return bucket;
  };
  const buckets = new Map<string, number>();
  const functions = new Map<string, number>();
  // timeDeltas[i + 1] is the time from sample i to the next: the time sample i stands for.
  for (let i = 0; i < profile.samples.length - 1; i++) {
    const id = profile.samples[i] as number;
    const bucket = resolve(id);
    const time = profile.timeDeltas[i + 1] as number;
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + time);
    const { functionName, url } = (byId.get(id) as ProfileNode).callFrame;
    const where = `${bucket}: ${functionName || '(anonymous)'} ${url.replace(/^.*\/(build|node_modules)\//, '')}`;
    functions.set(where, (functions.get(where) ?? 0) + time);
  }
  return { buckets, functions };
}

/** Nanoseconds each thread of a process has run, by thread name (the main thread as "main"). */
function threadTimes(pid: number): Map<string, number> {
  const times = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const ran = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      const name = Number(tid) === pid ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      times.set(name, (times.get(name) ?? 0) + ran);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return times;
}

function delta(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  return new Map([...after].map(([name, value]) => [name, value - (before.get(name) ?? 0)]));
}

/** Where the kernel's share of a perf sample goes: the system call its stack is in, or what else brought it there. */
function kernelBucket(frames: readonly string[]): string {
  const has = (...names: string[]) => frames.some((frame) => names.some((name) => frame.startsWith(name)));
  if (has('do_writev', '__x64_sys_writev', 'do_iter_write')) {
    // Over loopback the sender's system call also runs the receiver's TCP, and wakes the receiver up.
    if (has('sock_def_readable')) return 'writev: waking the client';
    if (has('tcp_v4_rcv', 'ip_rcv', '__netif_receive_skb')) return 'writev: the client side of loopback TCP';
    return 'writev: sending';
  }
  if (has('__x64_sys_read', 'ksys_read')) return 'read';
  if (has('do_epoll_wait', '__x64_sys_epoll')) return 'epoll_wait';
  if (has('__x64_sys_futex', 'do_futex')) return 'futex';
  if (has('asm_exc_page_fault', 'exc_page_fault')) return 'page faults';
  if (has('__x64_sys_madvise', '__x64_sys_mmap', '__x64_sys_munmap', '__x64_sys_mprotect')) return 'mmap, munmap, madvise';
  return 'other kernel (interrupts, scheduling)';
}

/** Samples of `perf record -g` over the process, as µs per bucket: kernel buckets, and user time by thread. */
async function perfBuckets(file: string, pid: number): Promise<Map<string, number>> {
  const { stdout } = await run('perf', ['script', '-i', file, '-F', 'tid,period,ip,sym,dso'], { maxBuffer: 1 << 30 });
  const buckets = new Map<string, number>();
  for (const block of stdout.split(/\n\s*\n/)) {
    const lines = block.split('\n').filter((line) => line.trim() !== '');
    const head = lines[0]?.trim().split(/\s+/);
    if (head === undefined || head.length < 2) continue;
    const tid = Number(head[0]);
    const period = Number(head[1]) / 1000;
    const frames = lines.slice(1).map((line) => line.trim().split(/\s+/).slice(1).join(' '));
    const kernel = frames[0]?.endsWith('([kernel.kallsyms])') ?? false;
    const thread = tid === pid ? 'main' : 'helpers';
    const bucket = kernel ? `kernel, ${thread}: ${kernelBucket(frames)}` : `user, ${thread}`;
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + period);
  }
  return buckets;
}

/** System calls per request over `requests` sequential requests on one connection, counted by `strace -c`. */
async function straceCounts(pid: number, url: string, cookie: string, requests: number, dir: string): Promise<Map<string, number>> {
  const out = join(dir, 'strace.txt');
  const tracer = spawn('strace', ['-f', '-c', '-o', out, '-p', String(pid)], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  await autocannon({ url: `${url}/`, connections: 1, amount: requests, headers: { cookie } });
  tracer.kill('SIGINT');
  await once(tracer, 'exit');
  const counts = new Map<string, number>();
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    const parts = line.trim().split(/\s+/);
    const name = parts.at(-1);
    if (parts.length < 5 || name === undefined || name === 'syscall' || name === 'total' || !/^\d/.test(parts[0] as string)) continue;
    counts.set(name, Number(parts[3]) / requests);
  }
  return counts;
}

/** Header and body bytes of one response, read off the socket. */
async function responseBytes(url: string, cookie: string): Promise<{ head: number; body: number }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.end(`GET / HTTP/1.1\r\nHost: ${hostname}\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  const all = Buffer.concat(chunks);
  const head = all.indexOf('\r\n\r\n') + 4;
  return { head, body: all.length - head };
}

interface CaseResult {
  name: ServedCase;
  requests: number;
  wallUs: number;
  profile: Map<string, number>;
  functions: Map<string, number>;
  threads: Map<string, number>;
  clientUs: number;
  perf?: Map<string, number>;
  perfRequests?: number;
  strace?: Map<string, number>;
  bytes: { head: number; body: number };
}

async function ask(child: ChildProcess, lines: Interface, command: string): Promise<void> {
  child.stdin?.write(`${command}\n`);
  const [answer] = (await once(lines, 'line')) as [string];
  if (answer !== command) throw new Error(`the breakdown server answered "${answer}" to "${command}"`);
}

async function measure(name: ServedCase, dir: string, busyUs: number | undefined, countCalls: boolean): Promise<CaseResult> {
  const profileFile = join(dir, 'profile.cpuprofile');
  const { child, url } = await startServer(serverScript, [name, profileFile], name, {
    nodeArgs: withPerf ? ['--perf-basic-prof-only-functions'] : [],
    env: busyUs === undefined ? process.env : { ...process.env, BENCH_BUSY_US: String(busyUs) },
    stdin: 'pipe',
  });
  // The server's answers to "start" and "stop", after the line with its port.
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  try {
    const pid = child.pid as number;
    const cookie = await seed(name, url);
    const bytes = await responseBytes(url, cookie);
    await autocannon({ url: `${url}/`, connections, duration: 2, headers: { cookie } }); // warm-up

    const threadsBefore = threadTimes(pid);
    const clientBefore = process.cpuUsage();
    await ask(child, lines, 'start');
    const started = performance.now();
    const loaded = await autocannon({ url: `${url}/`, connections, duration: seconds, headers: { cookie } });
    const wallUs = (performance.now() - started) * 1000;
    await ask(child, lines, 'stop');
    const client = process.cpuUsage(clientBefore);
    const threads = delta(threadTimes(pid), threadsBefore);
    const requests = loaded.requests.total;
    if (loaded.non2xx + loaded.errors > 0) throw new Error(`${name}: ${loaded.non2xx} non-2xx answers, ${loaded.errors} errors`);
    const { buckets: profile, functions } = bucketProfile(JSON.parse(readFileSync(profileFile, 'utf8')) as Profile);
    const result: CaseResult = { name, requests, wallUs, profile, functions, threads, clientUs: client.user + client.system, bytes };

    if (withPerf) {
      const perfFile = join(dir, 'perf.data');
      const perfSeconds = Math.max(2, Math.round(seconds / 2));
      // The load starts before the recording and ends after it: the recording sees a steady rate throughout.
      const perfLoad = autocannon({ url: `${url}/`, connections, duration: perfSeconds + 1, headers: { cookie } });
      await new Promise((resolve) => setTimeout(resolve, 400));
      const recorder = spawn(
        'perf',
        ['record', '-q', '-e', 'cpu-clock', '-F', '2000', '-g', '-p', String(pid), '-o', perfFile, '--', 'sleep', String(perfSeconds)],
        {
          stdio: 'ignore',
        },
      );
      await once(recorder, 'exit');
      const perfLoaded = await perfLoad;
      result.perf = await perfBuckets(perfFile, pid);
      result.perfRequests = (perfLoaded.requests.total / (perfSeconds + 1)) * perfSeconds;
    }
    if (withStrace && countCalls) result.strace = await straceCounts(pid, url, cookie, 2000, dir);
    return result;
  } finally {
    lines.close();
    await stop(child);
  }
}

const runs = smoke ? 1 : Number(process.env.BENCH_BREAKDOWN_RUNS ?? 3);
/** What the control spins in a smoke run, µs a request. */
const SMOKE_BUSY_US = 100;
const dir = mkdtempSync(join(tmpdir(), 'koa-sealed-session-breakdown-'));
const byCase = new Map<ServedCase, CaseResult[]>(cases.map((name) => [name, []]));
try {
  for (let runIndex = 0; runIndex < runs; runIndex++) {
    // Alternate the order between runs, so that drift over time does not favour one case; the control stays last.
    const others = cases.filter((name) => name !== 'echo, busy');
    const order = [...(runIndex % 2 === 0 ? others : others.reverse()), ...cases.filter((name) => name === 'echo, busy')];
    const thisRun = new Map<ServedCase, CaseResult>();
    for (const name of order) {
      let busyUs: number | undefined;
      const echo = thisRun.get('echo');
      const signed = thisRun.get('signed json');
      if (name === 'echo, busy' && process.env.BENCH_BUSY_US === undefined && smoke) {
        // One second on a machine running other tests calibrates nothing (echo's window may be the slower one).
        busyUs = SMOKE_BUSY_US;
      } else if (name === 'echo, busy' && process.env.BENCH_BUSY_US === undefined && echo !== undefined && signed !== undefined) {
        const working = (r: CaseResult) => (r.wallUs - (r.profile.get(WRITES) ?? 0) - (r.profile.get(IDLE) ?? 0)) / r.requests;
        busyUs = Math.max(1, Math.round(working(signed) - working(echo)));
      }
      console.log(`run ${runIndex + 1} of ${runs}: ${name}${busyUs === undefined ? '' : ` (spinning ${busyUs} µs a request)`}`);
      // System calls are counted once: they do not vary between runs.
      const result = await measure(name, dir, busyUs, runIndex === 0);
      thisRun.set(name, result);
      byCase.get(name)?.push(result);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const results = cases.map((name) => byCase.get(name) as CaseResult[]);
const us = (value: number) => (value < 10 ? value.toFixed(1) : value.toFixed(0));
const header = (first: string) => [`| ${first} | ${cases.join(' | ')} |`, `|---|${cases.map(() => '---:').join('|')}|`];
/** A row of the median over the runs of `value`, per case. */
const row = (label: string, value: (r: CaseResult) => number | undefined, format = us) =>
  `| ${label} | ${results
    .map((list) => {
      const values = list.map(value).filter((v): v is number => v !== undefined);
      return values.length === 0 ? '' : format(median(values));
    })
    .join(' | ')} |`;
const all = results.flat();

console.log(
  `\nµs of the server's main thread per request, from V8's CPU profile over ${seconds} s of load (${connections} connections), median of ${runs} runs:\n`,
);
for (const line of header('where')) console.log(line);
console.log(
  row(
    'req/s',
    (r) => r.requests / (r.wallUs / 1e6),
    (v) => String(Math.round(v)),
  ),
);
console.log(row('**µs per request (wall)**', (r) => r.wallUs / r.requests));
const buckets = [...new Set(all.flatMap((r) => [...r.profile.keys()]))].sort(
  (a, b) => Math.max(...all.map((r) => (r.profile.get(b) ?? 0) / r.requests)) - Math.max(...all.map((r) => (r.profile.get(a) ?? 0) / r.requests)),
);
for (const bucket of buckets) console.log(row(bucket, (r) => (r.profile.get(bucket) ?? 0) / r.requests));

const top = Number(process.env.BENCH_BREAKDOWN_TOP ?? 0);
for (const r of top > 0 ? results.map((list) => list[0] as CaseResult) : []) {
  console.log(`\nThe ${top} functions of most self time in ${r.name} (first run), µs per request:\n`);
  for (const [where, time] of [...r.functions].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`  ${us(time / r.requests).padStart(5)}  ${where}`);
}

console.log(`\nCPU per request, by thread (/proc schedstat), and the load generator's, median of ${runs} runs:\n`);
for (const line of header('thread')) console.log(line);
const threadNames = [...new Set(all.flatMap((r) => [...r.threads.keys()]))].filter((name) =>
  all.some((r) => (r.threads.get(name) ?? 0) / r.requests > 50),
);
for (const name of threadNames) console.log(row(`server: ${name}`, (r) => (r.threads.get(name) ?? 0) / 1000 / r.requests));
console.log(row('load generator (autocannon)', (r) => r.clientUs / r.requests));

if (withPerf) {
  console.log(`\nThe server process by perf (all threads, kernel time by system call), µs per request, median of ${runs} runs:\n`);
  for (const line of header('where')) console.log(line);
  const names = [...new Set(all.flatMap((r) => [...(r.perf?.keys() ?? [])]))].sort();
  for (const name of names) console.log(row(name, (r) => (r.perf === undefined ? undefined : (r.perf.get(name) ?? 0) / (r.perfRequests ?? 1))));
}
if (withStrace) {
  console.log('\nSystem calls per request (strace -c -f, 2,000 sequential requests on one connection):\n');
  for (const line of header('system call')) console.log(line);
  const names = [...new Set(all.flatMap((r) => [...(r.strace?.keys() ?? [])]))].filter((name) => all.some((r) => (r.strace?.get(name) ?? 0) >= 0.05));
  for (const name of names)
    console.log(
      row(
        name,
        (r) => r.strace?.get(name) ?? (r.strace === undefined ? undefined : 0),
        (v) => v.toFixed(2),
      ),
    );
}
console.log('\nOne response:\n');
for (const line of header('bytes')) console.log(line);
console.log(row('status line and headers', (r) => r.bytes.head, String));
console.log(row('body', (r) => r.bytes.body, String));
