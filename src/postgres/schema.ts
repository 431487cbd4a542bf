import { invalidOption } from '../core/options.js';

// The PostgreSQL layout of a PostgresStore table and the SQL that reads and writes it, apart from the class that
// sends it: what a record looks like in PostgreSQL is here and only here.

/** Where a store's table lives: its name and schema, as checked names. */
export interface TableName {
  readonly table: string;
  readonly schema: string | undefined;
}

/** The version of the layout below; kept in the write function's comment, which the store checks. */
export const LAYOUT_VERSION = 3;

// Plain lower-case names only: they are quoted anyway. A table's name leaves room for the longest suffix of its
// functions' ("_resize", "_change") within PostgreSQL's 63 bytes: a longer name would be cut, with a notice at each
// statement that names it. Its indexes' names may be cut; no statement names them.
const TABLE = /^[a-z_][a-z0-9_]{0,55}$/;
const SCHEMA = /^[a-z_][a-z0-9_]{0,56}$/;

export function tableName(where: string, table: unknown, schema: unknown): TableName {
  if (typeof table !== 'string' || !TABLE.test(table))
    throw invalidOption(where, 'table', 'a lower-case SQL name of at most 56 characters (a-z, 0-9, _)');
  if (schema === undefined) return { table, schema: undefined };
  if (typeof schema !== 'string' || !SCHEMA.test(schema))
    throw invalidOption(where, 'schema', 'a lower-case SQL name of at most 57 characters (a-z, 0-9, _), or undefined');
  return { table, schema };
}

/** A name as SQL writes it: quoted, and qualified by its schema when there is one. */
export function qualified(name: TableName, suffix = ''): string {
  return `${name.schema === undefined ? '' : `"${name.schema}".`}"${name.table}${suffix}"`;
}

/** The columns of the table, as `information_schema.columns` names their types. */
export const COLUMNS: Readonly<Record<string, string>> = {
  key: 'text',
  fields: 'jsonb',
  size: 'integer',
  created_at: 'bigint',
  idle_until: 'timestamp with time zone',
  absolute_until: 'timestamp with time zone',
  expires_at: 'timestamp with time zone',
  user_hash: 'text',
  seen_at: 'bigint',
  info: 'text',
};

/** The write function's arguments, as `to_regprocedure` takes them. */
const WRITE_ARGUMENTS = 'text, double precision, bigint, bigint, bigint, text, text, integer, text, jsonb, bigint, integer, bigint';

/** The resize function's arguments, as `to_regprocedure` takes them. */
const RESIZE_ARGUMENTS = 'jsonb, bigint, text[], bigint, integer';

/** The parameters of the load and of the change, all text (see {@link Statements}). */
const LOAD_PARAMETERS = 4;
const CHANGE_PARAMETERS = 13;
const textArguments = (n: number) => Array<string>(n).fill('text').join(', ');

/** The error a change raises when the record would pass maxBytes (its DETAIL: the size); it undoes the change. */
export const TOO_LARGE_SQLSTATE = 'KS413';

/** The bytes a member of "fields" counts for maxBytes, as SQL: of its name `k` and its stored value `v`. */
function memberBytes(k: string, v: string): string {
  return `octet_length(${k}) - 2 * (length(${k}) - length(replace(${k}, '%', ''))) + CASE WHEN left(${v}, 1) = 't' THEN octet_length(${v}) - 1
    ELSE (length(${v}) - 1) / 4 * 3 - CASE WHEN ${v} LIKE '%==' THEN 2 WHEN ${v} LIKE '%=' THEN 1 ELSE 0 END END`;
}

/**
 * The table, its indexes and its functions: the one SQL text an operator reads, runs in a migration, or
 * `createTable` runs. Every statement can run again (IF NOT EXISTS, OR REPLACE).
 */
export function schemaSql(name: TableName): string {
  const t = qualified(name);
  const sql = statements(name);
  const bytes = qualified(name, '_bytes');
  const resize = qualified(name, '_resize');
  const index = (suffix: string) => `"${name.table}${suffix}"`;
  return `-- koa-sealed-session: the sessions of a PostgresStore (layout ${LAYOUT_VERSION}; PostgreSQL 12 or later).
-- One row per session. "key" is the SHA-256 of the session id (base64url): the table holds no usable cookie.
-- A write that changes no deadline and no user is a HOT update: fillfactor leaves room for it on the row's page.
CREATE TABLE IF NOT EXISTS ${t} (
  "key"            text COLLATE "C" PRIMARY KEY,
  -- One member per session key: its encoded value, as "t" and the text when it is ASCII, else "b" and base64.
  -- Requests that change different keys both keep theirs.
  "fields"         jsonb NOT NULL,
  -- Bytes of the keys' names and values (the backend's maxBytes), kept by each write. -1: the row is no session but
  -- the marker a renewal leaves under the old key for a few seconds (graceMs), which nothing touches or changes.
  "size"           integer NOT NULL,
  -- When the session began, ms since the epoch (the app's clock).
  "created_at"     bigint NOT NULL,
  -- The session ends at the first of its idle deadline (moved by requests) and its absolute one (fixed).
  "idle_until"     timestamptz NOT NULL,
  "absolute_until" timestamptz NOT NULL,
  "expires_at"     timestamptz GENERATED ALWAYS AS (LEAST("idle_until", "absolute_until")) STORED,
  -- With userKey: a hash of the signed-in user's id (never the id), when it was last seen (ms) and describe()'s JSON.
  "user_hash"      text COLLATE "C",
  "seen_at"        bigint,
  "info"           text
) WITH (fillfactor = 80);
-- Pruning takes the oldest expired rows first.
CREATE INDEX IF NOT EXISTS ${index('_expires_at')} ON ${t} ("expires_at");
-- sessionsOf() and revokeUser() find a user's sessions.
CREATE INDEX IF NOT EXISTS ${index('_user_hash')} ON ${t} ("user_hash") WHERE "user_hash" IS NOT NULL;
-- Each write stores the whole "fields" value again: lz4 (PostgreSQL 14 and later, where the server has it) costs a
-- half to a quarter of the default pglz; without it, the values are kept uncompressed, which costs about half.
DO $compression$ BEGIN
  EXECUTE 'ALTER TABLE ${t} ALTER COLUMN "fields" SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
  EXECUTE 'ALTER TABLE ${t} ALTER COLUMN "fields" SET STORAGE EXTERNAL';
END $compression$;
-- The bytes one member of "fields" counts for maxBytes: its name's ("%00" and "%25" stand for one byte each) and
-- its value's ("t" text, or "b" base64 decoded).
CREATE OR REPLACE FUNCTION ${bytes}(k text, v text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $bytes$
  SELECT ${memberBytes('k', 'v')}
$bytes$;
-- A change's size: p_size less the bytes of the members p_names names (those it sets anew or removes) that p_fields
-- holds, plus p_added; passed through when within p_max_bytes (0: no limit), else ${TOO_LARGE_SQLSTATE} with the size as
-- DETAIL, which undoes the change. A loop of simple expressions: cheaper for PostgreSQL than a subquery over the names.
CREATE OR REPLACE FUNCTION ${resize}(p_fields jsonb, p_size bigint, p_names text[], p_added bigint, p_max_bytes integer)
RETURNS integer LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $resize$
DECLARE
  v_total bigint := p_size + p_added;
  v_name text;
  v_value text;
BEGIN
  FOREACH v_name IN ARRAY p_names LOOP
    v_value := p_fields ->> v_name;
    IF v_value IS NOT NULL THEN
      v_total := v_total - (${memberBytes('v_name', 'v_value')});
    END IF;
  END LOOP;
  IF p_max_bytes > 0 AND v_total > p_max_bytes THEN
    RAISE EXCEPTION 'the session record would pass maxBytes' USING ERRCODE = '${TOO_LARGE_SQLSTATE}', DETAIL = v_total::text;
  END IF;
  RETURN v_total;
END
$resize$;
-- A read's touch, called by the load only when the row needs it (so that most reads are a plain SELECT): the idle
-- deadline moved to p_ttl ms from now, and seen_at noted when a minute old, unless another request did it meanwhile.
CREATE OR REPLACE FUNCTION ${qualified(name, '_touch')}(p_key text, p_ttl bigint, p_step bigint, p_seen bigint) RETURNS boolean
LANGUAGE sql AS $touch$
  UPDATE ${t} SET
    "idle_until" = GREATEST("idle_until", now() + p_ttl * interval '1 millisecond'),
    "seen_at" = CASE WHEN p_seen IS NOT NULL AND "user_hash" IS NOT NULL AND ("seen_at" IS NULL OR p_seen - "seen_at" >= 60000)
      THEN p_seen ELSE "seen_at" END
  WHERE "key" = p_key AND "expires_at" > now() AND "size" >= 0 AND ("idle_until" < now() + (p_ttl - p_step) * interval '1 millisecond'
    OR (p_seen IS NOT NULL AND "user_hash" IS NOT NULL AND ("seen_at" IS NULL OR p_seen - "seen_at" >= 60000)))
  RETURNING true
$touch$;
-- A new session, in one call (one statement, one transaction): a write that reaches the server after p_deadline (ms
-- since the epoch, the server's clock; 0: none) changes nothing; create only if absent, and renew (p_replaces) only
-- if the replaced session still lives, deleting it in the same transaction (or, with p_grace ms, turning it into
-- the marker that tells a request still carrying the old id that it was renewed); then up to p_prune expired rows
-- deleted, skipping any that another server is deleting. o_status: 1 written, 0 the id exists or the replaced
-- session is gone, -1 too late, -2 too large (o_size bytes). A change of a session is the UPDATE of the store's
-- statements, not this function.
CREATE OR REPLACE FUNCTION ${qualified(name, '_write')}(
  p_key text, p_deadline double precision, p_ttl bigint, p_absolute bigint, p_created_at bigint, p_user text,
  p_info text, p_max_bytes integer, p_replaces text, p_set jsonb, p_size bigint, p_prune integer, p_grace bigint,
  OUT o_status integer, OUT o_size bigint, OUT o_now double precision)
LANGUAGE plpgsql AS $write$
DECLARE
  v_now timestamptz := clock_timestamp();
BEGIN
  o_now := extract(epoch FROM v_now) * 1000;
  o_size := p_size;
  IF p_deadline > 0 AND o_now > p_deadline THEN
    o_status := -1;
    RETURN;
  END IF;
  IF p_max_bytes > 0 AND o_size > p_max_bytes THEN
    o_status := -2;
    RETURN;
  END IF;
  IF p_replaces IS NOT NULL AND p_grace > 0 THEN
    UPDATE ${t} s SET "fields" = '{}', "size" = -1, "user_hash" = NULL, "seen_at" = NULL, "info" = NULL,
      "idle_until" = v_now + p_grace * interval '1 millisecond', "absolute_until" = v_now + p_grace * interval '1 millisecond'
    WHERE s."key" = p_replaces AND s."expires_at" > v_now AND s."size" >= 0;
    IF NOT FOUND THEN
      o_status := 0;
      RETURN;
    END IF;
  ELSIF p_replaces IS NOT NULL THEN
    DELETE FROM ${t} s WHERE s."key" = p_replaces AND s."expires_at" > v_now AND s."size" >= 0;
    IF NOT FOUND THEN
      o_status := 0;
      RETURN;
    END IF;
  END IF;
  INSERT INTO ${t} ("key", "fields", "size", "created_at", "idle_until", "absolute_until", "user_hash", "info")
    VALUES (p_key, p_set, o_size, p_created_at, v_now + p_ttl * interval '1 millisecond', v_now + p_absolute * interval '1 millisecond',
      nullif(p_user, ''), CASE WHEN nullif(p_user, '') IS NOT NULL THEN p_info END)
    ON CONFLICT ("key") DO NOTHING;
  IF NOT FOUND THEN
    o_status := 0;
    RETURN;
  END IF;
  -- The lock on a replaced row may have been waited for: a write that would now commit after its deadline is
  -- rolled back.
  IF p_deadline > 0 AND extract(epoch FROM clock_timestamp()) * 1000 > p_deadline THEN
    RAISE EXCEPTION 'the write reached its deadline' USING ERRCODE = '57014';
  END IF;
  -- Only a new session adds a row: each one deletes up to p_prune expired rows, so they never pile up.
  IF p_prune > 0 THEN
    DELETE FROM ${t} s WHERE s."key" IN (
      SELECT x."key" FROM ${t} x WHERE x."expires_at" <= v_now ORDER BY x."expires_at" LIMIT p_prune FOR UPDATE SKIP LOCKED);
  END IF;
  o_status := 1;
END
$write$;
-- The load and the change of the statements below, as functions, for prepare: false (behind a pooler that keeps no
-- prepared statements): PostgreSQL keeps a function's plans for the connection, so that what is parsed and planned
-- at each call is a one-line call instead of the whole statement. The same SQL, its parameters as text.
CREATE OR REPLACE FUNCTION ${qualified(name, '_load')}(${textArguments(LOAD_PARAMETERS)})
RETURNS TABLE (o_fields text, o_created_at text, o_user_hash text, o_renewed text, o_touched text) LANGUAGE plpgsql AS $load$
BEGIN
  RETURN QUERY ${sql.load};
END
$load$;
CREATE OR REPLACE FUNCTION ${qualified(name, '_change')}(${textArguments(CHANGE_PARAMETERS)}) RETURNS text LANGUAGE plpgsql AS $change$
DECLARE
  v_now text;
BEGIN
  ${sql.change}
  INTO v_now;
  RETURN v_now;
END
$change$;
COMMENT ON FUNCTION ${qualified(name, '_write')}(${WRITE_ARGUMENTS}) IS 'koa-sealed-session layout ${LAYOUT_VERSION}';
`;
}

/**
 * The statements a PostgresStore sends, for one table. Every parameter is sent as text (`$1::text::bigint`), so that
 * no client's own serializers apply (postgres.js would JSON-encode a jsonb parameter again), and every answer's
 * columns are text.
 */
export interface Statements {
  readonly load: string;
  readonly create: string;
  readonly change: string;
  /** The load and the change through their functions (prepare: false): the same columns, `now` null when unchanged. */
  readonly loadCall: string;
  readonly changeCall: string;
  readonly clock: string;
  readonly destroy: string;
  readonly sessionsOf: string;
  readonly destroyUser: string;
  readonly prune: string;
  readonly shape: string;
}

export function statements(name: TableName): Statements {
  const t = qualified(name);
  return {
    // $1 key, $2 ttl ms, $3 step ms, $4 seen at (ms, or null). The row as it is; only when its idle deadline would
    // move by more than $3, or its seen_at is a minute old, the touch function writes it in the same statement. The
    // check is repeated here so that most reads are a plain index lookup, and none plans an UPDATE.
    // A renewal's marker (size -1) answers renewed, and is never touched.
    load: `SELECT "fields"::text AS fields, "created_at"::text AS created_at, "user_hash", CASE WHEN "size" < 0 THEN 't' END AS renewed,
  CASE WHEN "size" >= 0 AND "idle_until" < now() + ($2::text::bigint - $3::text::bigint) * interval '1 millisecond'
    OR "size" >= 0 AND ($4::text::bigint IS NOT NULL AND "user_hash" IS NOT NULL AND ("seen_at" IS NULL OR $4::text::bigint - "seen_at" >= 60000))
  THEN ${qualified(name, '_touch')}($1::text, $2::text::bigint, $3::text::bigint, $4::text::bigint)::text END AS touched
FROM ${t} WHERE "key" = $1::text AND "expires_at" > now()`,
    // One value, the record (o_status,o_size,o_now) as text: cheaper for PostgreSQL than a row from FROM.
    create: `SELECT ${qualified(name, '_write')}($1::text, $2::text::float8, $3::text::bigint, $4::text::bigint, $5::text::bigint, $6::text, $7::text,
  $8::text::integer, $9::text, $10::text::jsonb, $11::text::bigint, $12::text::integer, $13::text::bigint)::text AS result`,
    change: changeSql(t, qualified(name, '_resize')),
    loadCall: `SELECT o_fields AS fields, o_created_at AS created_at, o_user_hash AS user_hash, o_renewed AS renewed, o_touched AS touched
FROM ${qualified(name, '_load')}(${parameters(LOAD_PARAMETERS)})`,
    changeCall: `SELECT ${qualified(name, '_change')}(${parameters(CHANGE_PARAMETERS)}) AS now`,
    // The server's clock: after a change that changed nothing, whether it came too late or the session is gone.
    clock: `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::text AS now`,
    // $1 key, $2 deadline (server ms; 0: none). A delete that reaches the server after its deadline deletes nothing.
    destroy: `WITH clock AS (SELECT extract(epoch FROM clock_timestamp()) * 1000 AS now),
gone AS (DELETE FROM ${t} WHERE "key" = $1::text AND ($2::text::float8 = 0 OR (SELECT now FROM clock) <= $2::text::float8) RETURNING 1)
SELECT (SELECT now FROM clock)::text AS now, ($2::text::float8 > 0 AND (SELECT now FROM clock) > $2::text::float8)::text AS late,
  (SELECT count(*) FROM gone)::text AS removed`,
    sessionsOf: `SELECT "key", "created_at"::text AS created_at, "seen_at"::text AS seen_at, "info" FROM ${t}
WHERE "user_hash" = $1::text AND "expires_at" > now()`,
    // Expired rows of the user go too, counted apart.
    destroyUser: `WITH gone AS (DELETE FROM ${t} WHERE "user_hash" = $1::text AND "key" IS DISTINCT FROM $2::text RETURNING "expires_at")
SELECT count(*) FILTER (WHERE "expires_at" > now())::text AS removed FROM gone`,
    // $1 batch size. One batch of the oldest expired rows, skipping rows another server is deleting.
    prune: `WITH gone AS (DELETE FROM ${t} WHERE "key" IN (
  SELECT "key" FROM ${t} WHERE "expires_at" <= now() ORDER BY "expires_at" LIMIT $1::text::integer FOR UPDATE SKIP LOCKED) RETURNING 1)
SELECT count(*)::text AS removed FROM gone`,
    // The table's columns and types, and the write function's comment (its layout), to refuse an unknown shape.
    // The layout is null when the touch ($4), resize ($5), load ($6) or change ($7) function is missing: a schema
    // half run is of no known layout.
    shape: `WITH f AS (SELECT CASE WHEN to_regprocedure($4::text) IS NOT NULL AND to_regprocedure($5::text) IS NOT NULL
  AND to_regprocedure($6::text) IS NOT NULL AND to_regprocedure($7::text) IS NOT NULL THEN obj_description(to_regprocedure($3::text), 'pg_proc') END AS layout)
SELECT c.column_name::text AS name, c.data_type::text AS type, (SELECT layout FROM f) AS layout
FROM information_schema.columns c
WHERE c.table_name = $1::text AND c.table_schema = coalesce($2::text, current_schema())
UNION ALL SELECT NULL, NULL, (SELECT layout FROM f)`,
  };
}

/**
 * A change of a session: one UPDATE (one transaction) of the row as it is when the statement holds its lock, so that
 * requests that change different keys both keep theirs. $1 key, $2 deadline (server ms; 0: none), $3 ttl ms, $4 step
 * ms, $5 absolute ms (null: unchanged), $6 clear, $7 user ('': none, null: unchanged), $8 info, $9 maxBytes (0: none),
 * $10 the members set (jsonb), $11 the members removed, $12 the members set or removed, $13 the bytes of $10.
 *
 * Only a row that exists and has not expired is changed (a session that ended is never brought back), and only
 * while the server's clock is within the deadline: PostgreSQL checks the WHERE again after waiting for the row's
 * lock, so a change that waited past it changes nothing. The size is the row's less the members this change replaces
 * or removes, plus $13, checked against maxBytes under the lock (the resize function). The idle deadline moves only
 * when that moves it by more than $4 ms (or when it is earlier): most changes touch no index and are HOT updates.
 * Answers the server's clock when the row was changed, and no row when it was not (the clock statement tells why).
 */
function changeSql(t: string, resize: string): string {
  const ms = (param: string) => `${param}::text::bigint * interval '1 millisecond'`;
  const idle = `(now() + ${ms('$3')})`;
  const user = '$7::text';
  return `UPDATE ${t} s SET
  "fields" = CASE WHEN $6::text::boolean THEN $10::text::jsonb ELSE (s."fields" - $11::text::text[]) || $10::text::jsonb END,
  "size" = ${resize}(s."fields", CASE WHEN $6::text::boolean THEN 0 ELSE s."size" END,
    CASE WHEN $6::text::boolean THEN '{}' ELSE $12::text::text[] END, $13::text::bigint, $9::text::integer),
  "idle_until" = CASE WHEN s."idle_until" > ${idle} OR s."idle_until" < ${idle} - ${ms('$4')} THEN ${idle} ELSE s."idle_until" END,
  "absolute_until" = LEAST(s."absolute_until", now() + ${ms('$5')}),
  "user_hash" = CASE WHEN ${user} IS NULL THEN s."user_hash" ELSE nullif(${user}, '') END,
  "info" = CASE WHEN ${user} IS NULL THEN s."info" WHEN ${user} = '' THEN NULL ELSE coalesce($8::text, s."info") END,
  "seen_at" = CASE WHEN ${user} IS NULL THEN s."seen_at" WHEN ${user} = '' OR ${user} IS DISTINCT FROM s."user_hash" THEN NULL ELSE s."seen_at" END
WHERE s."key" = $1::text AND s."expires_at" > now() AND s."size" >= 0
  AND ($2::text::float8 = 0 OR extract(epoch FROM clock_timestamp()) * 1000 <= $2::text::float8)
RETURNING (extract(epoch FROM clock_timestamp()) * 1000)::text AS now`;
}

/** `$1::text, $2::text, …`: n parameters passed on as text. */
function parameters(n: number): string {
  return Array.from({ length: n }, (_, i) => `$${i + 1}::text`).join(', ');
}

/**
 * The functions the store calls, each a suffix of the table's name and its arguments: the write first (its comment
 * holds the layout), then those the shape check requires beside it, in the order of its parameters $3 to $7.
 */
export const FUNCTIONS: readonly (readonly [suffix: string, args: string])[] = [
  ['_write', WRITE_ARGUMENTS],
  ['_touch', 'text, bigint, bigint, bigint'],
  ['_resize', RESIZE_ARGUMENTS],
  ['_load', textArguments(LOAD_PARAMETERS)],
  ['_change', textArguments(CHANGE_PARAMETERS)],
];

/** The store's functions' signatures, as `to_regprocedure` takes them, in {@link FUNCTIONS}' order. */
export function signatures(name: TableName): string[] {
  return FUNCTIONS.map(([suffix, args]) => `${qualified(name, suffix)}(${args})`);
}
