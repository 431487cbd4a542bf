// One HTTP benchmark case, in a process of its own so that the load generator does not share its core:
// node http-server.js <case>. Prints {"port": N} once it listens on 127.0.0.1; exits on SIGTERM.
import Koa from 'koa';
import koaSession from 'koa-session';
import type { AddressInfo } from 'node:net';
import { CookieSessionBackend, JsonSerializer, KeyRing, MsgpackSerializer, session, type SessionRecord } from '../src/index.js';
import { nearLimitSession } from './fixture.js';

export const HTTP_CASES = [
  'none',
  'echo',
  'koa-session',
  'signed json',
  'signed msgpack',
  'private json',
  'private msgpack',
  'signed json, property access',
] as const;
export type HttpCase = (typeof HTTP_CASES)[number];

/**
 * Apps the breakdown serves beside the HTTP cases: echo that also spins for BENCH_BUSY_US µs (default 40) of
 * plain computation per request, allocating nothing, to see what a slower server costs in the kernel by itself.
 */
export const CONTROL_CASES = ['echo, busy'] as const;
export type ServedCase = HttpCase | (typeof CONTROL_CASES)[number];

const secret = Buffer.from(process.env.BENCH_KEY ?? KeyRing.generateKey().toString('base64url'), 'base64url');

/** The app of one case, as the HTTP benchmark serves it (and the micro benchmark's in-process requests). */
export function appFor(name: ServedCase, data: SessionRecord): Koa {
  const app = new Koa();
  if (name === 'echo, busy') {
    const busyMs = Number(process.env.BENCH_BUSY_US ?? 40) / 1000;
    const echo = appFor('echo', data);
    app.use((_ctx, next) => {
      const until = performance.now() + busyMs;
      while (performance.now() < until);
      return next();
    });
    for (const middleware of echo.middleware) app.use(middleware);
    return app;
  }
  if (name === 'none') {
    app.use((ctx) => void (ctx.body = '1'));
    return app;
  }
  if (name === 'echo') {
    // The ceiling: read the cookie and send it back, with no crypto and no decoding.
    const value = 'e'.repeat(3920);
    app.use((ctx) => {
      const cookie = ctx.path === '/seed' ? value : (/(?:^|;\s*)session=([^;]*)/.exec(ctx.get('cookie'))?.[1] ?? '');
      ctx.set('Set-Cookie', `session=${cookie}; Path=/; HttpOnly; SameSite=Lax`);
      ctx.body = '1';
    });
    return app;
  }
  if (name === 'koa-session') {
    app.keys = [secret.toString('base64url')];
    app.use(koaSession({ maxAge: 86_400_000, signed: true }, app));
    app.use((ctx) => {
      const s = ctx.session as unknown as Record<string, unknown>;
      if (ctx.path === '/seed') Object.assign(s, data);
      const count = ((s.counter as number | undefined) ?? 0) + 1;
      s.counter = count;
      ctx.body = String(count);
    });
    return app;
  }
  if (name === 'signed json, property access') {
    // The same handler as koa-session's case above, word for word, on this library.
    app.use(session(CookieSessionBackend.signed(new KeyRing([secret]))));
    app.use((ctx) => {
      const s = ctx.session as unknown as Record<string, unknown>;
      if (ctx.path === '/seed') Object.assign(s, data);
      const count = ((s.counter as number | undefined) ?? 0) + 1;
      s.counter = count;
      ctx.body = String(count);
    });
    return app;
  }
  const [mode, format] = name.split(' ') as ['signed' | 'private', 'json' | 'msgpack'];
  const serializer = format === 'json' ? new JsonSerializer() : new MsgpackSerializer();
  app.use(session(CookieSessionBackend[mode](new KeyRing([secret]), { serializer })));
  app.use((ctx) => {
    if (ctx.path === '/seed') for (const [key, value] of Object.entries(data)) ctx.session.set(key, value);
    const count = (ctx.session.get<number>('counter') ?? 0) + 1;
    ctx.session.set('counter', count);
    ctx.body = String(count);
  });
  return app;
}

const name = process.argv[2] as HttpCase;
if (HTTP_CASES.includes(name)) {
  const data = { ...nearLimitSession(), counter: 0 };
  const server = appFor(name, data).listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));
  });
  process.on('SIGTERM', () => process.exit(0));
}
