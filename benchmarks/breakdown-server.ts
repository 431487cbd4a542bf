// npm run bench:breakdown's server: one case's app on 127.0.0.1, as the HTTP benchmark serves it, with V8's CPU
// profiler started and stopped by the driver over stdin ("start", "stop" → the profile written to argv[3]), so that
// the profile covers the measured load and nothing before it. node breakdown-server.js <case> <profile file>.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { nearLimitSession } from './fixture.js';
import { appFor, CONTROL_CASES, HTTP_CASES, type ServedCase } from './http-server.js';

const name = process.argv[2] as ServedCase;
const profileFile = process.argv[3];
if (!([...HTTP_CASES, ...CONTROL_CASES] as readonly string[]).includes(name) || profileFile === undefined) {
  throw new Error('usage: breakdown-server.js <case> <profile file>');
}

const inspector = new Session();
inspector.connect();
await inspector.post('Profiler.enable');
await inspector.post('Profiler.setSamplingInterval', { interval: Number(process.env.BENCH_PROFILE_INTERVAL_US ?? 250) });

const server = appFor(name, { ...nearLimitSession(), counter: 0 }).listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));
});
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'start') {
    await inspector.post('Profiler.start');
  } else if (line === 'stop') {
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(profileFile, JSON.stringify(profile));
  } else {
    continue;
  }
  console.log(line);
}
server.close();
