// The real koa-passport and passport-local, typed as the tests call them (neither ships types for this use).
import type Koa from 'koa';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export type Done = (err: unknown, user?: unknown) => void;

export interface KoaPassport {
  use(strategy: unknown): void;
  serializeUser(fn: (user: { id: string }, done: Done) => void): void;
  deserializeUser(fn: (id: string, done: Done) => void): void;
  initialize(): Koa.Middleware;
  session(): Koa.Middleware;
  authenticate(name: string, options?: object): Koa.Middleware;
}

export const { KoaPassport } = require('koa-passport') as { KoaPassport: new () => KoaPassport };
export const { Strategy: LocalStrategy } = require('passport-local') as {
  Strategy: new (verify: (user: string, pass: string, done: Done) => void) => unknown;
};
