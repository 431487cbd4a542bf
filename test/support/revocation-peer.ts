// A second process for cookie-revocation.test.ts: a Koa app whose cookie sessions check revocations in the same
// Redis, with the cache bound given; it tells its port to its parent.
import Koa from 'koa';
import { createClient } from 'redis';
import { CookieSessionBackend, KeyRing, RedisRevocationStore, session } from '../../src/index.js';
import { KEY_A } from './helpers.js';

const client = await createClient({ url: `redis://127.0.0.1:${process.argv[2]}` }).connect();
const app = new Koa();
const revocations = new RedisRevocationStore(client);
app.use(session(CookieSessionBackend.private(new KeyRing([KEY_A]), { userKey: 'userId', revocations, revocationCacheMs: Number(process.argv[3]) })));
app.use((ctx) => {
  ctx.body = { user: ctx.session.get('userId') ?? null };
});
const server = app.listen(0, '127.0.0.1', () => {
  process.send?.((server.address() as { port: number }).port);
});
process.on('disconnect', () => process.exit(0));
