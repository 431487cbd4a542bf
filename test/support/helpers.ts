import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import * as chai from 'chai';
import Koa from 'koa';
import type { Response } from 'supertest';
import { seal } from '../../src/crypto/envelope.js';
import { keysFor } from '../../src/crypto/key-ring.js';
import {
  CookieSessionBackend,
  JsonSerializer,
  KeyRing,
  MsgpackSerializer,
  SessionError,
  session,
  type CookieSessionOptions,
  type SealMode,
  type Serializer,
  type SessionBackend,
  type SessionErrorCode,
  type SessionMiddlewareOptions,
} from '../../src/index.js';

/** Deterministic test keys, so known-answer fixtures stay valid. Never use keys like these in an app. */
export function testKey(label: string): Buffer {
  return createHash('sha256').update(`koa-sealed-session test key ${label}`).digest();
}

export const KEY_A = testKey('A');
export const KEY_B = testKey('B');
export const KEY_C = testKey('C');

export const MODES: readonly SealMode[] = ['signed', 'private'];

/** The four mode × serializer pairs every behaviour is checked with. */
export const COMBINATIONS: readonly { mode: SealMode; serializer: () => Serializer; label: string }[] = MODES.flatMap((mode) => [
  { mode, serializer: () => new JsonSerializer(), label: `${mode} + json` },
  { mode, serializer: () => new MsgpackSerializer(), label: `${mode} + msgpack` },
]);

export function backendFor(mode: SealMode, ring: KeyRing, options?: CookieSessionOptions): CookieSessionBackend {
  return CookieSessionBackend[mode](ring, options);
}

/** A clock the test moves by hand. */
export function manualClock(start = Date.UTC(2026, 0, 1)): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => void (time += ms) };
}

/** The example's counter handler. */
export const counter: Koa.Middleware = (ctx) => {
  const count = ctx.session.get<number>('counter');
  ctx.session.set('counter', (count ?? 0) + 1);
  ctx.body = String(count ?? 0);
};

/** A Koa app with the session middleware in front of `handlers`; errors are collected instead of logged. */
export function appWith(backend: SessionBackend, ...handlers: Koa.Middleware[]): Koa & { errors: unknown[] } {
  const app = new Koa() as Koa & { errors: unknown[] };
  app.errors = [];
  app.silent = true;
  app.on('error', (err: unknown) => app.errors.push(err));
  app.use(session(backend));
  for (const handler of handlers.length === 0 ? [counter] : handlers) app.use(handler);
  return app;
}

/**
 * An app whose outermost middleware turns every error into a response (its status, body 'handled'), in front of
 * the session middleware: how apps answer 4xx errors without Koa's default handler dropping their headers.
 */
export function appWithErrorHandler(backend: SessionBackend, options: SessionMiddlewareOptions, handler: Koa.Middleware): Koa {
  const app = new Koa();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      ctx.status = (err as { status?: number }).status ?? 500;
      ctx.body = 'handled';
    }
  });
  app.use(session(backend, options));
  app.use(handler);
  return app;
}

const servers = new Set<Server>();

/** Serves `app` on 127.0.0.1 only, on a free port; closed after each test. */
export async function listen(app: Koa): Promise<Server> {
  const handle = app.callback();
  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.add(server);
  return server;
}

export function urlOf(server: Server): string {
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

export async function closeServers(): Promise<void> {
  const closing = [...servers].map((server) => new Promise((resolve) => server.close(resolve)));
  servers.clear();
  await Promise.all(closing);
}

/** The Set-Cookie lines of a response. */
export function setCookies(res: Response): string[] {
  const header = res.headers['set-cookie'] as string[] | string | undefined;
  if (header === undefined) return [];
  return Array.isArray(header) ? header : [header];
}

/** The Set-Cookie line for cookie `name`, or undefined. */
export function setCookieFor(res: Response, name = 'session'): string | undefined {
  return setCookies(res).find((line) => line.startsWith(`${name}=`));
}

/** The value the response set for cookie `name`; fails the test when there is none. */
export function cookieValue(res: Response, name = 'session'): string {
  const line = setCookieFor(res, name);
  if (line === undefined) throw new Error(`expected a Set-Cookie for "${name}", got: ${JSON.stringify(setCookies(res))}`);
  return line.slice(name.length + 1, line.indexOf(';'));
}

/** A response read off a raw socket: status code and header lines. */
export interface RawResponse {
  readonly status: number;
  readonly headers: string[];
  readonly body: string;
}

/**
 * Sends one GET over a raw socket to 127.0.0.1, with header lines written byte for byte (latin1), so a test can
 * send what no HTTP client would: stray bytes, duplicated Cookie headers, oversized headers. Bounded in time.
 */
export function rawGet(server: Server, headerLines: readonly string[], timeoutMs = 5000): Promise<RawResponse> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined); // a reset after node's own 4xx answer is fine; 'close' decides
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const [statusLine = '', ...headers] = head.split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0);
      if (status === 0) reject(new Error(`no HTTP answer: ${JSON.stringify(text.slice(0, 80))}`));
      else resolve({ status, headers, body });
    });
    socket.write(
      Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headerLines.map((line) => `${line}\r\n`).join('')}\r\n`, 'latin1'),
    );
  });
}

/** The value of a Set-Cookie header line for `name` in a raw response, or undefined. */
export function rawCookie(res: RawResponse, name = 'session'): string | undefined {
  const line = res.headers.find((header) => header.toLowerCase().startsWith(`set-cookie: ${name}=`));
  return line?.slice(`set-cookie: ${name}=`.length).split(';')[0];
}

/**
 * Asserts through chai's `expect(fn).to.throw` that `fn` throws a SessionError with `code`, and returns the error
 * for further checks of its message.
 */
export function expectSessionError(fn: () => unknown, code: SessionErrorCode): SessionError {
  const assertion = chai.expect(fn).to.throw(SessionError);
  const err = chai.util.flag(assertion, 'object') as SessionError;
  chai.expect(err.code).to.equal(code);
  return err;
}

/**
 * Seals `payload` as it is under any serializer id, as only a holder of the key could: for hostile but correctly
 * sealed cookies. Expires an hour after `now`.
 */
export function sealBytes(mode: SealMode, ring: KeyRing, serializerId: number, payload: Uint8Array, name = 'session', now = Date.now()): string {
  return seal(mode, keysFor(ring, name), serializerId, { expiresAt: now + 3_600_000, createdAt: now, maxAge: undefined }, payload).toString(
    'base64url',
  );
}

/** A test app's sign-in, as the README shows it: GET /login?user=…&remember=1 renews the session (for 30 days if remembered), then sets its user. */
export function signIn(ctx: Koa.Context): string {
  const user = String(ctx.query.user);
  ctx.session.renew({ maxAge: ctx.query.remember === '1' ? 30 * 86_400_000 : undefined });
  ctx.session.set('userId', user);
  return user;
}
