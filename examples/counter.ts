// The session counter: open http://127.0.0.1:3000 and reload; the count goes up on every visit. /grow adds 5,000
// bytes to the session, past what a cookie holds: a 500, and the browser keeps its previous cookie and count.
//   SESSION_KEYS   keys as KeyRing.fromEnv reads them, from `npx koa-sealed-session keygen` (default: a development key)
//   SESSION_MODE   'signed' or 'private' (default 'private')
//   SESSION_FORMAT 'json' or 'msgpack' (default 'msgpack')
//   PORT           default 3000
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { CookieSessionBackend, JsonSerializer, KeyRing, MsgpackSerializer, session } from '../src/index.js';

function keyRingFromEnvironment(): KeyRing {
  const text = process.env.SESSION_KEYS;
  if (text !== undefined && text.trim() !== '') return KeyRing.fromEnv('SESSION_KEYS');
  const key = KeyRing.generateKey();
  console.log('No SESSION_KEYS set: made a development key, so sessions end when this server stops.');
  // Never printed: a key in a terminal's scrollback or a CI log is a key others have.
  console.log('To keep them across restarts: export SESSION_KEYS=$(npx koa-sealed-session keygen), then npm start.');
  return new KeyRing([key]);
}

const keyRing = keyRingFromEnvironment();
const serializer = process.env.SESSION_FORMAT === 'json' ? new JsonSerializer() : new MsgpackSerializer();
const mode = process.env.SESSION_MODE === 'signed' ? 'signed' : 'private';
const backend = CookieSessionBackend[mode](keyRing, { serializer });

const app = new Koa();
app.use(session(backend));
app.use(async (ctx) => {
  if (ctx.path === '/reset') {
    ctx.session.purge();
    ctx.redirect('/');
    return;
  }
  if (ctx.path === '/grow') {
    ctx.session.set('filler', 'x'.repeat(5000));
    ctx.body = 'grown';
    return;
  }
  if (ctx.path !== '/') ctx.throw(404);
  const count = ctx.session.get<number>('counter');
  ctx.session.set('counter', (count ?? 0) + 1);
  ctx.type = 'html';
  ctx.body = `<!doctype html><title>Session counter</title>
<h1>${count ?? 0}</h1>
<p>Visits before this one, counted in a ${mode} ${serializer.name} session cookie. Reload to count up; <a href="/reset">reset</a>.</p>`;
});

const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.address() as AddressInfo;
  console.log(`Session counter (${mode}, ${serializer.name}) on http://127.0.0.1:${bound}/`);
});
