// Sign-in with "remember me", a page of your devices, and "sign out everywhere": open http://127.0.0.1:3001.
// Sessions live in the store backend, indexed by user (userKey), in memory, or in Redis with REDIS_URL.
//   SESSION_KEYS   keys as KeyRing.fromEnv reads them, from `npx koa-sealed-session keygen` (default: a development key)
//   REDIS_URL      redis://host:port to keep sessions in Redis (default: in this process's memory)
//   PORT           default 3001 (0: any free port)
// A demo: anyone may sign in as any name, without a password. A real app checks a password before renew().
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { KeyRing, MemoryStore, RedisStore, StoreSessionBackend, session, type SessionStore, type UserSession } from '../src/index.js';

const DAY = 24 * 60 * 60 * 1000;

function keyRingFromEnvironment(): KeyRing {
  const text = process.env.SESSION_KEYS;
  if (text !== undefined && text.trim() !== '') return KeyRing.fromEnv('SESSION_KEYS');
  console.log('No SESSION_KEYS set: made a development key, so sessions end when this server stops.');
  return new KeyRing([KeyRing.generateKey()]);
}

async function storeFromEnvironment(): Promise<SessionStore> {
  const url = process.env.REDIS_URL;
  if (url === undefined || url === '') return new MemoryStore();
  const { createClient } = await import('redis');
  return new RedisStore(await createClient({ url }).connect());
}

const backend = new StoreSessionBackend(await storeFromEnvironment(), keyRingFromEnvironment(), {
  userKey: 'userId',
  idleTimeout: DAY,
  absoluteTimeout: 30 * DAY,
  // A browser-session cookie unless "remember me": closing the browser signs out.
  maxAge: 'session',
  // What the devices page shows; no IP address kept.
  describe: (ctx) => ({ userAgent: ctx.get('user-agent').slice(0, 200) }),
});

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title: string, body: string) =>
  `<!doctype html><meta charset="utf-8"><title>${escape(title)}</title><style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto}</style>\n${body}`;

/** A small urlencoded form body (this demo needs no body parser). */
async function form(ctx: Koa.Context): Promise<URLSearchParams> {
  let text = '';
  for await (const chunk of ctx.req) {
    text += String(chunk);
    if (text.length > 4096) ctx.throw(413);
  }
  return new URLSearchParams(text);
}

const app = new Koa();
app.use(session(backend));
app.use(async (ctx) => {
  const user = ctx.session.get<string>('userId');
  if (ctx.method === 'POST' && ctx.path === '/login') {
    const fields = await form(ctx);
    const name = (fields.get('user') ?? '').trim().slice(0, 64);
    if (name === '') ctx.throw(400, 'a name, please');
    // Session fixation: a new id at sign-in, and a longer lifetime if remembered.
    ctx.session.renew({ maxAge: fields.get('remember') === 'on' ? 30 * DAY : undefined });
    ctx.session.set('userId', name);
    ctx.redirect('/');
    return;
  }
  if (ctx.method === 'POST' && ctx.path === '/logout') {
    ctx.session.purge();
    ctx.redirect('/');
    return;
  }
  if (ctx.method === 'POST' && user !== undefined && ctx.path === '/devices/revoke') {
    const handle = (await form(ctx)).get('handle') ?? '';
    // Only a session of the signed-in user's own.
    if ((await backend.sessionsOf(user)).some((s) => s.handle === handle)) await backend.revoke(handle);
    ctx.redirect('/devices');
    return;
  }
  if (ctx.method === 'POST' && user !== undefined && ctx.path === '/devices/sign-out-others') {
    await backend.revokeUser(user, { keep: ctx.session });
    ctx.redirect('/devices');
    return;
  }
  if (ctx.method === 'POST' && user !== undefined && ctx.path === '/devices/sign-out-everywhere') {
    await backend.revokeUser(user);
    ctx.redirect('/');
    return;
  }
  if (ctx.method !== 'GET') ctx.throw(user === undefined ? 401 : 404);
  ctx.type = 'html';
  if (ctx.path === '/devices' && user !== undefined) {
    const sessions = await backend.sessionsOf(user, { current: ctx.session });
    const row = (s: UserSession) =>
      `<li>${escape(String((s.info as { userAgent?: string } | undefined)?.userAgent ?? 'unknown'))} — signed in ${new Date(s.createdAt ?? 0).toISOString()}, last seen ${new Date(s.lastSeenAt ?? 0).toISOString()}` +
      (s.current
        ? ' <strong class="current">(this device)</strong>'
        : ` <form method="post" action="/devices/revoke" style="display:inline"><input type="hidden" name="handle" value="${escape(s.handle)}"><button>Sign out</button></form>`) +
      '</li>';
    ctx.body = page(
      'Your devices',
      `<h1>Your devices</h1><ul id="devices">${sessions.map(row).join('')}</ul>
<form method="post" action="/devices/sign-out-others"><button id="sign-out-others">Sign out all other devices</button></form>
<form method="post" action="/devices/sign-out-everywhere"><button id="sign-out-everywhere">Sign out everywhere</button></form>
<p><a href="/">Back</a></p>`,
    );
    return;
  }
  if (ctx.path !== '/') ctx.throw(404);
  ctx.body =
    user === undefined
      ? page(
          'Sign in',
          `<h1>Sign in</h1><form method="post" action="/login"><label>Name <input name="user" id="user" required></label>
<label><input type="checkbox" name="remember" id="remember"> Remember me</label> <button id="sign-in">Sign in</button></form>`,
        )
      : page(
          'Signed in',
          `<h1 id="signed-in">Signed in as ${escape(user)}</h1><p><a href="/devices" id="devices-link">Your devices</a></p>
<form method="post" action="/logout"><button id="sign-out">Sign out</button></form>`,
        );
});

const port = Number(process.env.PORT ?? 3001);
const server = app.listen(port, '127.0.0.1', () => {
  console.log(`Sign-in demo on http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
});
