import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const script = fileURLToPath(new URL('../../benchmarks/run.js', import.meta.url));

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
});
