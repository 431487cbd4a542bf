import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const script = fileURLToPath(new URL('../../benchmarks/run.js', import.meta.url));
const breakdown = fileURLToPath(new URL('../../benchmarks/breakdown.js', import.meta.url));

/** The numbers of a markdown table's row whose label starts with `label`. */
function cells(stdout: string, label: string): number[] {
  const line = stdout.split('\n').find((l) => l.startsWith(`| ${label}`));
  expect(line, `a row "${label}"`).to.be.a('string');
  return (line as string)
    .split('|')
    .slice(2, -1)
    .map((cell) => Number(cell.trim()));
}

describe('the benchmark script (smoke run)', function () {
  // It starts a server per backend and session size, and checks each: about 16 s alone, longer beside other tests.
  this.timeout(120_000);
  it('should run every case, each checked to round-trip its session, and print the tables', async () => {
    // The script throws, and so exits non-zero, when any codec or HTTP case fails to round-trip.
    const { stdout } = await run(process.execPath, [script, '--smoke'], { timeout: 120_000 });
    for (const row of [
      '| signed json |',
      '| private msgpack |',
      '| floor signed json |',
      '| koa-session (scheme, re-implemented) |',
      '| @hapi/iron |',
      '| iron-session |',
      '| @fastify/secure-session (scheme, re-implemented) |',
    ]) {
      expect(stdout).to.contain(row);
    }
    expect(stdout).to.match(/- signed json request \/ floor round trip: \d+\.\d\d/);
    expect(stdout).to.match(/- private msgpack oldest \/ newest of 5 keys: \d+\.\d\d/);
    expect(stdout).to.contain('http: checking every case once');
  });

  it("should break a request's server time down by the code it ran in (npm run bench:breakdown, smoke run)", async () => {
    const { stdout } = await run(process.execPath, [breakdown, '--smoke'], { timeout: 120_000 });
    expect(stdout).to.contain('| where | echo | signed json | echo, busy |');
    // echo seals nothing and decodes nothing: time in those buckets is signed json's alone, which has some.
    for (const label of ['crypto (HMAC', 'codecs (JSON scan', 'middleware, session, backend']) {
      const [echo, signed, busy] = cells(stdout, label);
      expect(echo, label).to.equal(0);
      expect(busy, label).to.equal(0);
      expect(signed, label).to.be.greaterThan(0);
    }
    // The control spins in its handler (100 µs a request in a smoke run): the profile puts that time in the handler's
    // and Node's buckets, and not in the session's. Its own buckets against echo's, not wall times of two windows,
    // which the machine's other work moves.
    expect(stdout).to.contain('echo, busy (spinning 100 µs a request)');
    const spin = (column: number) =>
      ["the app's handler", 'Node: events, timers, microtasks'].reduce((sum, label) => sum + (cells(stdout, label)[column] as number), 0);
    expect(spin(2) - spin(0)).to.be.greaterThan(50);
    const [, , busyHeaders] = cells(stdout, 'status line and headers');
    const [echoHeaders] = cells(stdout, 'status line and headers');
    expect(busyHeaders).to.equal(echoHeaders).and.to.be.greaterThan(3900);
  });
});
