import { expect } from 'chai';
import { MemoryStore, type StoreWrite } from '../../src/index.js';
import { expectSessionError, manualClock } from '../support/helpers.js';

const create = (value = 'v', ttlMs = 60_000): StoreWrite => ({
  create: true,
  createdAt: 1,
  clear: false,
  set: new Map([['k', Buffer.from(value)]]),
  remove: [],
  ttlMs,
});

describe('MemoryStore', () => {
  it('should drop the least recently used session past maxSessions', async () => {
    const store = new MemoryStore({ maxSessions: 3 });
    for (const key of ['a', 'b', 'c']) await store.write(key, create());
    await store.load('a', 60_000); // a is now the most recently used
    await store.write('d', create());
    expect(await store.load('b', 60_000)).to.equal(undefined);
    for (const key of ['a', 'c', 'd']) expect(await store.load(key, 60_000), key).not.to.equal(undefined);
    expect(store.size).to.equal(3);
  });

  it('should expire records, extend them on load, and free the memory of expired ones on later writes', async () => {
    const clock = manualClock();
    const store = new MemoryStore({ now: clock.now });
    for (let i = 0; i < 100; i += 1) await store.write(`old${i}`, create('v', 1000));
    await store.write('kept', create('v', 1000));
    clock.advance(900);
    await store.load('kept', 1000); // extended to 1900
    clock.advance(200);
    expect(await store.load('old1', 1000)).to.equal(undefined); // dropped when found expired
    expect(store.size).to.equal(100);
    // Each write sweeps a few expired entries: after enough writes, none is left in memory.
    for (let i = 0; i < 30; i += 1) await store.write(`new${i}`, create());
    expect(store.size).to.equal(31);
    expect(await store.load('kept', 1000)).not.to.equal(undefined);
  });

  it('should never create over an existing record nor change a missing one, nor what a load handed out', async () => {
    const store = new MemoryStore();
    expect(await store.write('a', { ...create(), create: false })).to.equal(false);
    const written = Buffer.from('one');
    expect(await store.write('a', { ...create(), set: new Map([['k', written]]) })).to.equal(true);
    expect(await store.write('a', create('two'))).to.equal(false);
    // The store keeps its own copy of what it was given.
    written.fill(0);
    const record = await store.load('a', 60_000);
    expect(Buffer.from(record?.fields.get('k') as Uint8Array).toString()).to.equal('one');
    // A later write replaces the value; what the earlier load handed out (the backend's baseline) stays as it was.
    const update = { create: false, createdAt: 0, clear: false, set: new Map([['k', Buffer.from('three')]]), remove: [], ttlMs: 60_000 };
    expect(await store.write('a', update)).to.equal(true);
    expect(Buffer.from(record?.fields.get('k') as Uint8Array).toString()).to.equal('one');
    expect(Buffer.from((await store.load('a', 60_000))?.fields.get('k') as Uint8Array).toString()).to.equal('three');
  });

  it('should refuse options that cannot work', () => {
    expectSessionError(() => new MemoryStore({ maxSessions: 0 }), 'ERR_SESSION_INVALID_OPTION');
    expectSessionError(() => new MemoryStore({ maxsessions: 5 } as never), 'ERR_SESSION_INVALID_OPTION');
  });
});
