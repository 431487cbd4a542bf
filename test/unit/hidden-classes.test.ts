// What a request hands between the backend and the middleware (the stored session, the write) must be plain fast
// objects of one hidden class across requests, or V8 keeps their properties in old space, which then holds the
// request's values past every young-generation collection (issue 21: megabytes
// promoted per scavenge, 24-39% of the req/s over HTTP). An object literal with a getter of its own is a
// dictionary-mode object, whose property dictionary is the culprit. Checked with V8's own %HasFastProperties and
// %HaveSameMap, in a child process.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const index = fileURLToPath(new URL('../../src/index.js', import.meta.url));

const SCRIPT = `
import { CookieSessionBackend, KeyRing, JsonSerializer, MsgpackSerializer, MemoryStore, StoreSessionBackend, session } from ${JSON.stringify(index)};
const ring = new KeyRing([KeyRing.generateKey()]);
const results = {};
for (const [label, backend] of [
  ['cookie json', CookieSessionBackend.signed(ring, { serializer: new JsonSerializer() })],
  ['cookie msgpack', CookieSessionBackend.private(ring, { serializer: new MsgpackSerializer() })],
]) {
  const value = backend.seal({ a: 1, b: 'two' });
  const stored = [];
  const writes = [];
  for (let i = 0; i < 2; i++) {
    const ctx = { request: { headers: { cookie: 'session=' + value } }, res: { getHeader() {}, setHeader() {} }, secure: false };
    const handle = backend.load(ctx);
    stored.push(handle.read());
    const write = handle.write.bind(handle);
    handle.write = (change) => { writes.push(change); return write(change); };
    const middleware = session({ load: () => handle });
    await middleware(ctx, async () => { ctx.session.set('a', i + 2); });
  }
  const fast = (o) => %HasFastProperties(o);
  results[label] = {
    stored: fast(stored[0]) && fast(stored[1]) && %HaveSameMap(stored[0], stored[1]),
    writes: writes.length === 2 && fast(writes[0]) && fast(writes[1]) && %HaveSameMap(writes[0], writes[1]),
    data: stored[0].data.b,
    spread: { ...writes[1] }.data?.a,
  };
}
console.log(JSON.stringify(results));
`;

describe('the objects of each request share their hidden classes (no class of their own per request)', () => {
  it('should make the stored session and the write of each request fast objects of one hidden class, data still an own property', async () => {
    const { stdout } = await run(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', SCRIPT]);
    const results = JSON.parse(stdout) as Record<string, { stored: boolean; writes: boolean; data: unknown }>;
    expect(results).to.deep.equal({
      'cookie json': { stored: true, writes: true, data: 'two', spread: 3 },
      'cookie msgpack': { stored: true, writes: true, data: 'two', spread: 3 },
    });
  });
});
