import { expect } from 'chai';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { nearLimitSession } from '../../../benchmarks/fixture.js';
import { KeyRing } from '../../../src/index.js';
import { KEY_A, appWith, backendFor, listen, testKey } from '../../support/helpers.js';

const LONG = process.env.HARDENING_LONG === '1';
const TOTAL = LONG ? 100_000 : 20_000;
const CONNECTIONS = 50;
const HEAP_BOUND = 24 * 2 ** 20;

function heapAfterGc(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

function get(port: number, agent: Agent, cookie: string): Promise<{ status: number; body: string; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', agent, headers: { cookie }, timeout: 10_000 }, (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, setCookie: res.headers['set-cookie'] ?? [] }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('under load', () => {
  it(`should answer ${TOTAL} requests over ${CONNECTIONS} connections with near-limit cookies, losing none, with a flat heap and a key rotation midway`, async function () {
    this.timeout(LONG ? 600_000 : 180_000);
    const newKey = testKey('rotation');
    const backend = backendFor('signed', new KeyRing([KEY_A]));
    const rotated = new KeyRing([newKey, KEY_A]);
    const newOnly = backendFor('signed', new KeyRing([newKey]));
    const either = backendFor('signed', rotated);
    const cookie = `session=${backend.seal(nearLimitSession())}`;
    expect(cookie.length).to.be.greaterThan(3800);

    const app = appWith(backend);
    const server = await listen(app);
    const { port } = server.address() as AddressInfo;
    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });

    let issued = 0;
    let swappedBefore = -1;
    let quarterHeap = 0;
    const failures: string[] = [];
    const started = process.hrtime.bigint();

    async function client(): Promise<void> {
      while (issued < TOTAL && failures.length < 10) {
        const index = issued++;
        if (index === TOTAL / 4) quarterHeap = heapAfterGc();
        if (index === TOTAL / 2) {
          backend.setKeyRing(rotated);
          swappedBefore = index;
        }
        try {
          const res = await get(port, agent, cookie);
          const line = res.setCookie.find((header) => header.startsWith('session='));
          const value = line?.slice('session='.length, line.indexOf(';')) ?? '';
          if (res.status !== 200 || res.body !== '0') failures.push(`#${index}: ${res.status} ${res.body.slice(0, 40)}`);
          else if (either.open(value)?.counter !== 1) failures.push(`#${index}: the returned cookie does not open`);
          else if (swappedBefore >= 0 && index >= swappedBefore && newOnly.open(value) === undefined) {
            failures.push(`#${index}: issued after the rotation, but does not open with the new key alone`);
          }
        } catch (err) {
          failures.push(`#${index}: ${(err as Error).message}`);
        }
      }
    }
    await Promise.all(Array.from({ length: CONNECTIONS }, client));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    agent.destroy();
    const endHeap = heapAfterGc();

    console.log(
      `      load: ${TOTAL} requests in ${seconds.toFixed(1)} s (${Math.round(TOTAL / seconds)} req/s), ${failures.length} errors, ` +
        `heap ${(quarterHeap / 2 ** 20).toFixed(1)} MiB at the first quarter, ${(endHeap / 2 ** 20).toFixed(1)} MiB at the end`,
    );
    expect(failures).to.deep.equal([]);
    expect(issued).to.equal(TOTAL);
    expect(app.errors).to.deep.equal([]);
    expect(endHeap - quarterHeap, 'heap growth from the first quarter to the end').to.be.lessThan(HEAP_BOUND);
  });
});
