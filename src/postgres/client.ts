import { invalidOption } from '../core/options.js';

// One way to run a statement through whichever PostgreSQL client the app has (node-postgres' Pool or Client,
// postgres.js), with a bound on the statements waiting and errors that carry nothing of the statement's values.

/**
 * A PostgreSQL client the app already has: a node-postgres (`pg`) `Pool` or connected `Client`, or a postgres.js
 * (`postgres`) `sql` instance. Typed loosely on purpose: neither package is a dependency of this one.
 */
export type PostgresClientLike = object;

/** A row as a statement answers it: every column this store reads is cast to text in its SQL. */
export type Row = Readonly<Record<string, string | null>>;

interface Adapter {
  /** Whether statements are prepared: not with prepare: false, here or on a postgres.js `sql`. */
  readonly prepares: boolean;
  /** A statement with parameters (all text or null), prepared under `name` where the client can, unless told not to. */
  readonly query: (name: string, text: string, params: readonly (string | null)[]) => Promise<readonly Row[]>;
  /** Statements without parameters, as one simple query: PostgreSQL runs them in one transaction. */
  readonly script: (text: string) => Promise<void>;
}

/** A client, adapted: at most `maxPending` statements waiting at once, and errors that name no value. */
export class PostgresConnection {
  readonly #adapter: Adapter;
  readonly #maxPending: number;
  #pending = 0;

  constructor(where: string, client: PostgresClientLike, maxPending: number, prepare: boolean) {
    this.#adapter = adapt(where, client, prepare);
    this.#maxPending = maxPending;
  }

  /** Whether the client prepares statements (parsed once per connection) or parses each one again. */
  get prepares(): boolean {
    return this.#adapter.prepares;
  }

  query(name: string, text: string, params: readonly (string | null)[]): Promise<readonly Row[]> {
    return this.#bounded(() => this.#adapter.query(name, text, params));
  }

  script(text: string): Promise<void> {
    return this.#bounded(() => this.#adapter.script(text));
  }

  /** Runs a statement unless too many wait already: a stalled server must not grow the pool's queue without bound. */
  async #bounded<T>(run: () => Promise<T>): Promise<T> {
    if (this.#pending >= this.#maxPending) throw new Error(`${this.#pending} statements are waiting for PostgreSQL already (maxPending)`);
    this.#pending++;
    try {
      return await run();
    } catch (err) {
      throw safeError(err);
    } finally {
      this.#pending--;
    }
  }
}

function adapt(where: string, client: PostgresClientLike, prepare: boolean): Adapter {
  const c = client as Record<string, unknown>;
  // postgres.js: `sql` is a function, with `unsafe` for a statement given as text.
  if (typeof client === 'function' && typeof c.unsafe === 'function') {
    type Pending = Promise<readonly Row[]> & { simple(): Promise<unknown> };
    const unsafe = c.unsafe as (text: string, params?: readonly (string | null)[], options?: { prepare: boolean }) => Pending;
    // postgres.js' own prepare: false (on `sql`, for a pooler) wins over the store's.
    const options = (c.options ?? {}) as { prepare?: unknown };
    const prepares = prepare && options.prepare !== false;
    return {
      prepares,
      query: (_name, text, params) => unsafe.call(client, text, params, { prepare: prepares }),
      script: async (text) => void (await unsafe.call(client, text).simple()),
    };
  }
  // node-postgres: a Pool, or a Client (which runs one statement at a time, in order).
  if (typeof c.query === 'function' && typeof c.connect === 'function') {
    const query = c.query as (config: object | string) => Promise<{ rows: readonly Row[] }>;
    return {
      prepares: prepare,
      // Without a name, node-postgres sends an unnamed statement, parsed again each time, in one message batch.
      query: prepare
        ? async (name, text, values) => (await query.call(client, { name, text, values })).rows
        : async (_name, text, values) => (await query.call(client, { text, values })).rows,
      script: async (text) => void (await query.call(client, text)),
    };
  }
  throw invalidOption(where, 'client', 'a node-postgres (pg) Pool or connected Client, or a postgres.js sql instance');
}

/**
 * What a client's error may say without saying anything of the statement: its SQLSTATE or system error code and
 * the PostgreSQL error's class. A server's message can quote a value ("invalid input syntax …: "…""), and a
 * client's error object can hold the statement's parameters, so neither is kept.
 */
function safeError(err: unknown): Error {
  const source = err as { code?: unknown; message?: unknown } | null;
  const code = typeof source?.code === 'string' && /^[A-Z0-9_]{1,32}$/.test(source.code) ? source.code : undefined;
  if (code === undefined) {
    // The client's own errors (a closed pool, a lost connection) name no value; a server's always carry a code.
    const message = typeof source?.message === 'string' ? source.message : 'the PostgreSQL client failed';
    return new Error(/^[\w .,:;()'-]{1,200}$/.test(message) ? message : 'the PostgreSQL client failed');
  }
  const failure = new Error(`PostgreSQL failed: ${code}${explain(code)}`);
  (failure as Error & { code: string }).code = code;
  // This store's own errors (KS…) carry a number as their detail, and nothing else.
  const detail = (source as { detail?: unknown }).detail;
  if (code.startsWith('KS') && typeof detail === 'string' && /^\d{1,15}$/.test(detail)) (failure as Error & { detail: string }).detail = detail;
  return failure;
}

// A named statement missing on the server connection (26000), or there already (42P05): what a pooler in
// transaction mode does to prepared statements, and what to do about it.
const PREPARED_HINTS = new Set(['26000', '42P05']);
const PREPARED_HINT =
  ' (a statement this store prepared is missing on the server connection, or is there already: behind a pooler in transaction mode, such as PgBouncer before 1.21, pass prepare: false to PostgresStore)';

/** What a code means, for the error's message: what to do, or the SQLSTATE's class. */
function explain(code: string): string {
  if (PREPARED_HINTS.has(code)) return PREPARED_HINT;
  return /^[0-9A-Z]{5}$/.test(code) ? ` (${sqlStateClass(code)})` : '';
}

/** The class of a SQLSTATE, as PostgreSQL's documentation names the ones a store meets. */
function sqlStateClass(code: string): string {
  const classes: Record<string, string> = {
    '08': 'connection exception',
    '22': 'data exception',
    '23': 'integrity constraint violation',
    '25': 'invalid transaction state',
    '28': 'invalid authorization',
    '3D': 'invalid catalog name',
    '40': 'transaction rollback',
    '42': 'syntax error or access rule violation',
    '53': 'insufficient resources',
    '54': 'program limit exceeded',
    '55': 'object not in prerequisite state',
    '57': 'operator intervention',
    '58': 'system error',
    XX: 'internal error',
  };
  return classes[code.slice(0, 2)] ?? 'see the PostgreSQL documentation, Appendix A';
}
