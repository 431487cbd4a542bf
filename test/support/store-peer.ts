// A second process for store-redis.test.ts: a Koa app on the same Redis, which tells its port to its parent.
import Koa from 'koa';
import { createClient } from 'redis';
import { KeyRing, RedisStore, StoreSessionBackend, session } from '../../src/index.js';
import { KEY_A } from './helpers.js';

const client = await createClient({ url: `redis://127.0.0.1:${process.argv[2]}` }).connect();
const app = new Koa();
app.use(session(new StoreSessionBackend(new RedisStore(client), new KeyRing([KEY_A]))));
app.use((ctx) => {
  if (ctx.path === '/count') ctx.session.set('counter', (ctx.session.get<number>('counter') ?? 0) + 1);
  ctx.body = { counter: ctx.session.get('counter') ?? null, isNew: ctx.session.isNew };
});
const server = app.listen(0, '127.0.0.1', () => {
  process.send?.((server.address() as { port: number }).port);
});
process.on('disconnect', () => process.exit(0));
