import { SessionError } from '../core/errors.js';
import { MAX_COOKIE_AGE_MS } from '../policy/lifetime.js';
import { checkOptionNames, invalidOption } from '../core/options.js';
import { recordTooLarge, type SessionStore, type StoreRecord, type StoreWrite, type UserIndex, type UserRecord } from '../backends/store/store.js';
import { createHash } from 'node:crypto';
import { PostgresConnection, type PostgresClientLike, type Row } from './client.js';
import { escapeName, fieldsOf, memberOf } from './members.js';
import {
  COLUMNS,
  LAYOUT_VERSION,
  TOO_LARGE_SQLSTATE,
  qualified,
  schemaSql,
  statements,
  tableName,
  FUNCTIONS,
  signatures,
  type Statements,
  type TableName,
} from './schema.js';

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /** The table's name: lower-case letters, digits and `_`, at most 56. @default 'koa_sessions' */
  readonly table?: string;
  /** The table's schema. @default undefined (the connection's `search_path`, usually `public`) */
  readonly schema?: string;
  /**
   * Create the table, its indexes and its functions ({@link PostgresStore.schema}) at first use, if they do not
   * exist yet: safe when several app servers start at once. Without it, run the schema in a migration of your own;
   * the store refuses to run on a table of another shape. @default false
   */
  readonly createTable?: boolean;
  /**
   * Expired rows each write that starts a session deletes, at most (only those add rows): pruning needs no
   * scheduled job. 0 leaves it all to {@link PostgresStore.prune}. @default 10
   */
  readonly pruneBatch?: number;
  /**
   * Most statements waiting for PostgreSQL at once. Past it, a call fails at once (the request answers 503) instead
   * of queueing in the pool while PostgreSQL is stalled. @default 10_000
   */
  readonly maxPending?: number;
  /**
   * Send named prepared statements, which PostgreSQL parses and plans once per connection. Set `false` behind a
   * pooler in transaction mode that keeps no prepared statements (PgBouncer before 1.21, or without
   * `max_prepared_statements`): the store then reads and changes through one-line calls of the schema's
   * `_load` and `_change` functions, whose plans PostgreSQL keeps per connection. A postgres.js `sql` made with
   * `prepare: false` is seen and treated the same. @default true
   */
  readonly prepare?: boolean;
}

/** A read moves the idle deadline only when that moves it by more than this (or a twentieth of the TTL, if less). */
export const TOUCH_STEP_MS = 60_000;

/**
 * Sessions in PostgreSQL, one row per session in a table of its own ({@link PostgresStore.schema}), through a
 * node-postgres `Pool` or `Client` or a postgres.js `sql`. Reading a session is one statement (the idle deadline
 * moves in the same one), changing it one more (an UPDATE of only the keys that changed, atomic),
 * and a request without a valid id cookie sends none.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * pool.on('error', (err) => console.error('postgres:', err.message)); // an idle client's error, without a listener, crashes the process
 * app.use(session(new StoreSessionBackend(new PostgresStore(pool, { createTable: true }), keyRing)));
 * ```
 */
export class PostgresStore implements SessionStore, UserIndex {
  /** The table, as SQL names it (quoted, with its schema when given). */
  readonly table: string;
  readonly #name: TableName;
  readonly #sql: Statements;
  readonly #db: PostgresConnection;
  readonly #createTable: boolean;
  readonly #pruneBatch: number;
  // The prepared statements' names begin with it: one per qualified table (two schemas' tables of one name share a
  // pool), short enough that no two of them meet in PostgreSQL's 63 bytes, whatever the table's name.
  readonly #prefix: string;
  // Checked (and created, with createTable) once: the first call waits for it; a failure is tried again next call.
  #ready: Promise<void> | undefined;
  // PostgreSQL's clock minus this process's, learnt from each write; undefined until the first.
  #offset: number | undefined;

  constructor(client: PostgresClientLike, options: PostgresStoreOptions = {}) {
    checkOptionNames('PostgresStore', options, ['table', 'schema', 'createTable', 'pruneBatch', 'maxPending', 'prepare']);
    this.#name = tableName('PostgresStore', options.table ?? 'koa_sessions', options.schema);
    const maxPending = options.maxPending ?? 10_000;
    if (!Number.isInteger(maxPending) || maxPending < 1) throw invalidOption('PostgresStore', 'maxPending', 'a whole number from 1');
    const pruneBatch = options.pruneBatch ?? 10;
    if (!Number.isInteger(pruneBatch) || pruneBatch < 0 || pruneBatch > 10_000)
      throw invalidOption('PostgresStore', 'pruneBatch', 'a whole number from 0 to 10,000');
    if (options.createTable !== undefined && typeof options.createTable !== 'boolean')
      throw invalidOption('PostgresStore', 'createTable', 'a boolean');
    this.#createTable = options.createTable ?? false;
    if (options.prepare !== undefined && typeof options.prepare !== 'boolean') throw invalidOption('PostgresStore', 'prepare', 'a boolean');
    this.#pruneBatch = pruneBatch;
    this.#db = new PostgresConnection('PostgresStore', client, maxPending, options.prepare ?? true);
    const sql = statements(this.#name);
    // Unprepared (prepare: false), the load and the change go through their functions' calls.
    this.#sql = this.#db.prepares ? sql : { ...sql, load: sql.loadCall, change: sql.changeCall };
    this.table = qualified(this.#name);
    this.#prefix = `kss_${createHash('sha256').update(this.table).digest('hex').slice(0, 16)}_`;
    Object.seal(this);
  }

  /**
   * The SQL that creates the table, its indexes and its functions (`CREATE … IF NOT EXISTS`, `CREATE OR
   * REPLACE`): for a migration of your own, or to read. `npx koa-sealed-session schema postgres` prints it.
   */
  static schema(options: Pick<PostgresStoreOptions, 'table' | 'schema'> = {}): string {
    return schemaSql(tableName('PostgresStore.schema', options.table ?? 'koa_sessions', options.schema));
  }

  async load(key: string, ttlMs: number, seenAt?: number): Promise<StoreRecord | undefined> {
    await this.#check();
    const ttl = wholeMs(ttlMs);
    const step = stepOf(ttl);
    const seen = seenAt === undefined ? null : String(Math.floor(seenAt));
    const [row] = await this.#db.query(`${this.#prefix}load`, this.#sql.load, [key, String(ttl), String(step), seen]);
    if (row === undefined) return undefined;
    if (row.renewed === 't') return RENEWED;
    const fields = fieldsOf(row.fields);
    // A row whose fields are not what this store writes is no session: it starts afresh under a new id.
    if (fields === undefined) return undefined;
    return { fields, createdAt: numberOf(row.created_at), user: row.user_hash ?? undefined };
  }

  async write(key: string, write: StoreWrite): Promise<boolean> {
    await this.#check();
    const set: Record<string, string> = {};
    let added = 0;
    for (const [name, value] of write.set) {
      set[escapeName(name)] = memberOf(value);
      added += Buffer.byteLength(name) + value.byteLength;
    }
    const ttl = wholeMs(write.ttlMs);
    // The absolute deadline: the row never outlives it, however it is written. Unknown: none past the longest
    // lifetime when created, unchanged when changed.
    const absolute =
      write.absoluteMs !== undefined ? String(Math.max(ttl, wholeMs(write.absoluteMs))) : write.create ? String(MAX_COOKIE_AGE_MS) : null;
    const user = write.user === undefined ? null : (write.user ?? '');
    const maxBytes = String(write.maxBytes ?? 0);
    const deadline = this.#deadline(write.timeoutMs);
    if (write.create) {
      const [row] = await this.#db.query(`${this.#prefix}create`, this.#sql.create, [
        key,
        deadline,
        String(ttl),
        absolute,
        String(Math.floor(write.createdAt)),
        user,
        write.info ?? null,
        maxBytes,
        write.replaces ?? null,
        JSON.stringify(set),
        String(added),
        String(this.#pruneBatch),
        String(write.replaces === undefined || write.graceMs === undefined ? 0 : Math.max(0, Math.ceil(write.graceMs))),
      ]);
      // "(status,size,now)".
      const [, answered, size, now] = /^\((-?\d+),(\d*),([\d.e+]+)\)$/.exec(row?.result ?? '') ?? [];
      const status = Number(answered);
      this.#learn(now);
      if (status === -1) throw late();
      if (status === -2) throw recordTooLarge(Number(size), write.maxBytes as number);
      if (status !== 0 && status !== 1) throw new Error('PostgreSQL answered the write with no status');
      return status === 1;
    }
    const remove = write.remove.map(escapeName);
    let row: Row | undefined;
    try {
      [row] = await this.#db.query(`${this.#prefix}change`, this.#sql.change, [
        key,
        deadline,
        String(ttl),
        String(stepOf(ttl)),
        absolute,
        String(write.clear),
        user,
        write.info ?? null,
        maxBytes,
        JSON.stringify(set),
        arrayLiteral(remove),
        // The members whose bytes the row no longer counts: those set anew and those removed.
        arrayLiteral([...new Set([...Object.keys(set), ...remove])]),
        String(added),
      ]);
    } catch (err) {
      const failure = err as { code?: unknown; detail?: unknown };
      if (failure.code === TOO_LARGE_SQLSTATE) throw recordTooLarge(Number(failure.detail), write.maxBytes as number);
      throw err;
    }
    // No row (the statement), or a null clock (the function's call): nothing changed.
    if (row?.now !== undefined && row.now !== null) {
      this.#learn(row.now);
      return true;
    }
    // Nothing changed: the session is gone, or the change came too late (the deadline passed on the server's clock).
    // The clock is read after the change: a change that was in time for a session gone meanwhile may read as late,
    // which errs towards the 503, never towards a change taken for done.
    if (deadline === '0') return false;
    const [clock] = await this.#db.query(`${this.#prefix}clock`, this.#sql.clock, []);
    this.#learn(clock?.now);
    if (clock?.now === undefined || clock.now === null || Number(clock.now) > Number(deadline)) throw late();
    return false;
  }

  async destroy(key: string, timeoutMs?: number): Promise<void> {
    await this.#check();
    const [row] = await this.#db.query(`${this.#prefix}destroy`, this.#sql.destroy, [key, this.#deadline(timeoutMs)]);
    this.#learn(row?.now);
    if (row?.late !== 'false') throw new Error('the session record was not deleted: the server answered after the deadline');
  }

  async sessionsOf(user: string): Promise<readonly UserRecord[]> {
    await this.#check();
    const rows = await this.#db.query(`${this.#prefix}sessions_of`, this.#sql.sessionsOf, [user]);
    return rows.map((row) => ({
      key: String(row.key),
      createdAt: numberOf(row.created_at),
      lastSeenAt: numberOf(row.seen_at),
      info: row.info ?? undefined,
    }));
  }

  async destroyUser(user: string, keep?: string): Promise<number> {
    await this.#check();
    const [row] = await this.#db.query(`${this.#prefix}destroy_user`, this.#sql.destroyUser, [user, keep ?? null]);
    return Number(row?.removed ?? 0);
  }

  /**
   * Deletes expired rows, in batches of `batch`, until none is left or `limit` are gone; answers how many went.
   * Each new session prunes a few already (`pruneBatch`): call this from a scheduled job when sessions are rarely
   * started, or after setting `pruneBatch: 0`. Several servers may run it at once: each skips the rows another is
   * deleting.
   */
  async prune(options: { readonly batch?: number; readonly limit?: number } = {}): Promise<number> {
    const batch = options.batch ?? 1000;
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (!Number.isInteger(batch) || batch < 1 || batch > 100_000)
      throw invalidOption('PostgresStore.prune', 'batch', 'a whole number from 1 to 100,000');
    if (!(limit >= 0)) throw invalidOption('PostgresStore.prune', 'limit', 'a number from 0');
    await this.#check();
    let removed = 0;
    while (removed < limit) {
      const size = Math.min(batch, limit - removed);
      const [row] = await this.#db.query(`${this.#prefix}prune`, this.#sql.prune, [String(size)]);
      const gone = Number(row?.removed ?? 0);
      removed += gone;
      if (gone < size) break;
    }
    return removed;
  }

  /** The table checked once (created first, with createTable); a failure is tried again at the next call. */
  #check(): Promise<void> {
    this.#ready ??= this.#prepare().catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  async #prepare(): Promise<void> {
    let types = await this.#shape();
    // With createTable, a table of this shape whose functions are of an earlier layout gets this layout's: the
    // schema's statements can all run again, and they leave the rows as they are.
    if (this.#createTable && (types.size === 0 || (wrongColumns(types).length === 0 && types.get(LAYOUT) !== CURRENT_LAYOUT))) {
      // One simple query is one transaction: the advisory lock keeps app servers that start at once from creating
      // the same objects together (CREATE … IF NOT EXISTS alone can fail then).
      await this.#db.script(
        `SET LOCAL client_min_messages = warning;\nSELECT pg_advisory_xact_lock(${lockOf(this.table)});\n${schemaSql(this.#name)}`,
      );
      types = await this.#shape();
    }
    const fix = this.#createTable
      ? 'Drop it or name another table (the table option).'
      : 'Create it with the SQL of PostgresStore.schema() (or `npx koa-sealed-session schema postgres`), or pass createTable: true.';
    if (types.size === 0) throw shapeError(`PostgresStore: there is no table ${this.table}. ${fix}`);
    const wrong = wrongColumns(types);
    if (wrong.length > 0) {
      const list = wrong.map(([column, type]) => `"${column}" ${type}`).join(', ');
      throw shapeError(`PostgresStore: the table ${this.table} is not a session table of this shape: it lacks ${list}. ${fix}`);
    }
    if (types.get(LAYOUT) !== CURRENT_LAYOUT) {
      const functions = FUNCTIONS.map(([suffix]) => qualified(this.#name, suffix)).join(', ');
      throw shapeError(
        `PostgresStore: one of the functions ${functions} is missing, or of another layout than ${LAYOUT_VERSION}. Run the SQL of PostgresStore.schema() again (or \`npx koa-sealed-session schema postgres\`: it keeps the rows), or pass createTable: true.`,
      );
    }
  }

  /** The table's columns and their types, and under {@link LAYOUT} the functions' layout; empty without a table. */
  async #shape(): Promise<Map<string, string | null>> {
    const rows = await this.#db.query(`${this.#prefix}shape`, this.#sql.shape, [
      this.#name.table,
      this.#name.schema ?? null,
      ...signatures(this.#name),
    ]);
    const types = new Map<string, string | null>(rows.filter((row) => row.name !== null).map((row) => [row.name as string, row.type ?? null]));
    if (types.size > 0) types.set(LAYOUT, rows[rows.length - 1]?.layout ?? null);
    return types;
  }

  /** Learns PostgreSQL's clock from an answer (taken on receipt: errs towards earlier deadlines). */
  #learn(now: string | null | undefined): void {
    const serverNow = Number(now);
    if (now !== null && now !== undefined && Number.isFinite(serverNow)) this.#offset = serverNow - Date.now();
  }

  /** Half the timeout from now, in the server's time; "0" (none) until a first answer told the server's clock. */
  #deadline(timeoutMs: number | undefined): string {
    if (timeoutMs === undefined || this.#offset === undefined) return '0';
    return String(Math.floor(Date.now() + this.#offset + timeoutMs / 2));
  }
}

/** What `load` answers for a key renewed within its grace. */
const RENEWED: StoreRecord = Object.freeze({ fields: new Map<string, Uint8Array>(), renewed: true });

function late(): Error {
  return new Error('the session record was not written: the server answered after the deadline');
}

function shapeError(message: string): SessionError {
  return new SessionError('ERR_SESSION_STORE_UNAVAILABLE', message);
}

// Not a column name (those are lower-case): the functions' layout, in #shape's answer.
const LAYOUT = 'Layout';
const CURRENT_LAYOUT = `koa-sealed-session layout ${LAYOUT_VERSION}`;

/** The columns of the layout that a table's columns (as #shape answers them) lack, or have of another type. */
function wrongColumns(types: ReadonlyMap<string, string | null>): [string, string][] {
  return Object.entries(COLUMNS).filter(([column, type]) => types.get(column) !== type);
}

/** How far a deadline must move before a read or write moves it. */
function stepOf(ttl: number): number {
  return Math.min(TOUCH_STEP_MS, Math.floor(ttl / 20));
}

/** A TTL in whole milliseconds, at least 1. */
function wholeMs(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

/** A text[] literal: every element quoted, `"` and `\` escaped. */
function arrayLiteral(items: readonly string[]): string {
  return `{${items.map((item) => `"${item.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(',')}}`;
}

function numberOf(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** A 63-bit advisory lock number for a table, the same in every process. */
function lockOf(table: string): string {
  let h = 0n;
  for (const byte of Buffer.from(`koa-sealed-session ${table}`)) h = (h * 131n + BigInt(byte)) & 0x3fffffffffffffffn;
  return h.toString();
}
