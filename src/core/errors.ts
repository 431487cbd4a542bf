/**
 * Every failure this library reports, as a stable string. Switch on `err.code`, never on the message:
 * messages are for people and may be reworded.
 *
 * - `ERR_SESSION_TOO_LARGE`: the sealed session would exceed the cookie size limit.
 * - `ERR_SESSION_SERIALIZE`: the serializer could not encode the session (a BigInt with JSON, say).
 * - `ERR_SESSION_UNSUPPORTED_VALUE`: `set()` was given something that is not plain data (a function, a class
 *   instance, a cycle, nesting deeper than {@link MAX_VALUE_DEPTH}).
 * - `ERR_SESSION_INVALID_KEY`: a key ring key is missing, too short, repeated or weak.
 * - `ERR_SESSION_INVALID_OPTION`: an option passed to a constructor or to `session()` is not valid.
 * - `ERR_SESSION_INACTIVE`: the session was changed after its response was committed.
 * - `ERR_SESSION_ASSIGNMENT`: code assigned `ctx.session` something other than `null` or a plain object, or assigned
 *   one of the session's own members by property (`ctx.session.flash = …`; data of that name takes `set()`).
 * - `ERR_SESSION_HEADERS_SENT`: the session changed but the response headers were already sent.
 * - `ERR_SESSION_STORE_UNAVAILABLE`: the session store did not answer in time, or failed; a 503.
 */
export type SessionErrorCode =
  | 'ERR_SESSION_TOO_LARGE'
  | 'ERR_SESSION_SERIALIZE'
  | 'ERR_SESSION_UNSUPPORTED_VALUE'
  | 'ERR_SESSION_INVALID_KEY'
  | 'ERR_SESSION_INVALID_OPTION'
  | 'ERR_SESSION_INACTIVE'
  | 'ERR_SESSION_ASSIGNMENT'
  | 'ERR_SESSION_HEADERS_SENT'
  | 'ERR_SESSION_STORE_UNAVAILABLE';

/**
 * The one error class this library throws. Messages never contain key material, cookie values or session ids.
 *
 * @example
 * ```ts
 * app.on('error', (err) => {
 *   if (err instanceof SessionError && err.code === 'ERR_SESSION_TOO_LARGE') metrics.increment('session.too_large');
 * });
 * ```
 */
export class SessionError extends Error {
  /** Stable identifier of what went wrong. */
  readonly code: SessionErrorCode;
  /** Koa reads this: a session failure is the server's fault, and its message is not shown to the client. */
  readonly expose = false;
  /** The response status Koa gives it: 503 when the store is unavailable (retry later), else 500. */
  readonly status: number;

  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = code === 'ERR_SESSION_STORE_UNAVAILABLE' ? 503 : 500;
    this.name = new.target.name;
  }
}

/**
 * A store's or client's failure as a `cause`: its name and message only. A client's own error carries the
 * command it failed (ioredis' `command.args`: field names, encoded session values, index keys), which any error
 * logger would print.
 */
export function storeFailure(err: unknown): Error {
  const source = err as { name?: unknown; message?: unknown } | null;
  const failure = new Error(typeof source?.message === 'string' ? source.message : 'the store failed');
  if (typeof source?.name === 'string') failure.name = source.name;
  return failure;
}
