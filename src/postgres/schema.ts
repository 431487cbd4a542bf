import { invalidOption } from '../core/options.js';

// The PostgreSQL layout of a PostgresStore table and the SQL that reads and writes it, apart from the class that
// sends it: what a record looks like in PostgreSQL is here and only here.

/** Where a store's table lives: its name and schema, as checked names. */
export interface TableName {
  readonly table: string;
  readonly schema: string | undefined;
}

/** The version of the layout below; kept in the write function's comment, which the store checks. */
export const LAYOUT_VERSION = 1;

// Plain lower-case names only: they are quoted anyway, and the function's name adds "_write" within PostgreSQL's
// 63 bytes.
const NAME = /^[a-z_][a-z0-9_]{0,56}$/;

export function tableName(where: string, table: unknown, schema: unknown): TableName {
  if (typeof table !== 'string' || !NAME.test(table))
    throw invalidOption(where, 'table', 'a lower-case SQL name of at most 57 characters (a-z, 0-9, _)');
  if (schema === undefined) return { table, schema: undefined };
  if (typeof schema !== 'string' || !NAME.test(schema))
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
const WRITE_ARGUMENTS =
  'text, double precision, boolean, bigint, bigint, bigint, boolean, bigint, text, text, integer, text, jsonb, text[], text[], bigint, integer';

/** The error a write raises when the record would pass maxBytes (its DETAIL: the size); it undoes the write. */
export const TOO_LARGE_SQLSTATE = 'KS413';

/**
 * The table, its indexes and its functions: the one SQL text an operator reads, runs in a migration, or
 * `createTable` runs. Every statement can run again (IF NOT EXISTS, OR REPLACE).
 */
export function schemaSql(name: TableName): string {
  const t = qualified(name);
  const bytes = qualified(name, '_bytes');
  const held = qualified(name, '_held');
  const index = (suffix: string) => `"${name.table}${suffix}"`;
  return `-- koa-sealed-session: the sessions of a PostgresStore (layout ${LAYOUT_VERSION}; PostgreSQL 12 or later).
-- One row per session. "key" is the SHA-256 of the session id (base64url): the table holds no usable cookie.
-- A write that changes no deadline and no user is a HOT update: fillfactor leaves room for it on the row's page.
CREATE TABLE IF NOT EXISTS ${t} (
  "key"            text COLLATE "C" PRIMARY KEY,
  -- One member per session key: its encoded value, as "t" and the text when it is ASCII, else "b" and base64.
  -- Requests that change different keys both keep theirs.
  "fields"         jsonb NOT NULL,
  -- Bytes of the keys' names and values (the backend's maxBytes), kept by each write.
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
  SELECT octet_length(k) - 2 * (length(k) - length(replace(k, '%', ''))) + CASE WHEN left(v, 1) = 't' THEN octet_length(v) - 1
    ELSE (length(v) - 1) / 4 * 3 - CASE WHEN v LIKE '%==' THEN 2 WHEN v LIKE '%=' THEN 1 ELSE 0 END END
$bytes$;
-- The bytes the members named by "keys" count for in "f" (0 for those it lacks): what a write replaces or removes.
CREATE OR REPLACE FUNCTION ${held}(f jsonb, keys text[]) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $held$
DECLARE
  v_total bigint := 0;
  v_key text;
  v_value text;
BEGIN
  FOREACH v_key IN ARRAY keys LOOP
    v_value := f ->> v_key;
    IF v_value IS NOT NULL THEN
      v_total := v_total + ${bytes}(v_key, v_value);
    END IF;
  END LOOP;
  RETURN v_total;
END
$held$;
-- Every change of a session, in one call (one statement, one transaction): a write that reaches the server after
-- p_deadline (ms since the epoch, the server's clock; 0: none), or would commit after it, changes nothing; create
-- only if absent, change only if present and unexpired (a session that ended is never brought back), renew only
-- if the replaced one still lives; maxBytes checked against the row as it is now (its size less the members this
-- write replaces or removes, p_changed, plus p_added, the bytes of p_set); the idle deadline moved only when that
-- moves it by more than p_step ms; then, for a new session, up to p_prune expired rows deleted, skipping any that
-- another server is deleting. o_status: 1 written, 0 the session is gone (or exists, for create), -1 too late, -2 a
-- new session too large (o_size bytes). A change that would be too large raises ${TOO_LARGE_SQLSTATE}, its size as
-- DETAIL, and so undoes itself.
CREATE OR REPLACE FUNCTION ${qualified(name, '_write')}(
  p_key text, p_deadline double precision, p_create boolean, p_ttl bigint, p_step bigint, p_absolute bigint,
  p_clear boolean, p_created_at bigint, p_user text, p_info text, p_max_bytes integer, p_replaces text, p_set jsonb,
  p_remove text[], p_changed text[], p_added bigint, p_prune integer,
  OUT o_status integer, OUT o_size bigint, OUT o_now double precision)
LANGUAGE plpgsql AS $write$
DECLARE
  v_now timestamptz := clock_timestamp();
  v_idle timestamptz := v_now + p_ttl * interval '1 millisecond';
BEGIN
  o_now := extract(epoch FROM v_now) * 1000;
  IF p_deadline > 0 AND o_now > p_deadline THEN
    o_status := -1;
    RETURN;
  END IF;
  IF p_create THEN
    o_size := p_added;
    IF p_max_bytes > 0 AND o_size > p_max_bytes THEN
      o_status := -2;
      RETURN;
    END IF;
    IF p_replaces IS NOT NULL THEN
      DELETE FROM ${t} s WHERE s."key" = p_replaces AND s."expires_at" > v_now;
      IF NOT FOUND THEN
        o_status := 0;
        RETURN;
      END IF;
    END IF;
    INSERT INTO ${t} ("key", "fields", "size", "created_at", "idle_until", "absolute_until", "user_hash", "info")
      VALUES (p_key, p_set, o_size, p_created_at, v_idle, v_now + p_absolute * interval '1 millisecond', nullif(p_user, ''),
        CASE WHEN nullif(p_user, '') IS NOT NULL THEN p_info END)
      ON CONFLICT ("key") DO NOTHING;
    IF NOT FOUND THEN
      o_status := 0;
      RETURN;
    END IF;
  ELSE
    -- Under PostgreSQL's default isolation, a row another write changed meanwhile is updated as that write left it.
    UPDATE ${t} s SET "fields" = CASE WHEN p_clear THEN p_set ELSE (s."fields" - p_remove) || p_set END,
        "size" = CASE WHEN p_clear THEN 0 ELSE s."size" - ${held}(s."fields", p_changed) END + p_added,
        "idle_until" = CASE WHEN s."idle_until" > v_idle OR s."idle_until" < v_idle - p_step * interval '1 millisecond'
          THEN v_idle ELSE s."idle_until" END,
        "absolute_until" = LEAST(s."absolute_until", v_now + p_absolute * interval '1 millisecond'),
        "user_hash" = CASE WHEN p_user IS NULL THEN s."user_hash" ELSE nullif(p_user, '') END,
        "info" = CASE WHEN p_user IS NULL THEN s."info" WHEN p_user = '' THEN NULL ELSE coalesce(p_info, s."info") END,
        "seen_at" = CASE WHEN p_user IS NULL THEN s."seen_at" WHEN p_user = '' OR p_user IS DISTINCT FROM s."user_hash" THEN NULL ELSE s."seen_at" END
      WHERE s."key" = p_key AND s."expires_at" > v_now
      RETURNING s."size" INTO o_size;
    IF NOT FOUND THEN
      o_status := 0;
      RETURN;
    END IF;
    IF p_max_bytes > 0 AND o_size > p_max_bytes THEN
      RAISE EXCEPTION 'the session record would pass maxBytes' USING ERRCODE = '${TOO_LARGE_SQLSTATE}', DETAIL = o_size::text;
    END IF;
  END IF;
  -- The row lock may have been waited for: a write that would now commit after its deadline is rolled back.
  IF p_deadline > 0 AND extract(epoch FROM clock_timestamp()) * 1000 > p_deadline THEN
    RAISE EXCEPTION 'the write reached its deadline' USING ERRCODE = '57014';
  END IF;
  -- Only a new session adds a row: each one deletes up to p_prune expired rows, so they never pile up.
  IF p_create AND p_prune > 0 THEN
    DELETE FROM ${t} s WHERE s."key" IN (
      SELECT x."key" FROM ${t} x WHERE x."expires_at" <= v_now ORDER BY x."expires_at" LIMIT p_prune FOR UPDATE SKIP LOCKED);
  END IF;
  o_status := 1;
END
$write$;
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
  readonly write: string;
  readonly destroy: string;
  readonly sessionsOf: string;
  readonly destroyUser: string;
  readonly prune: string;
  readonly shape: string;
}

export function statements(name: TableName): Statements {
  const t = qualified(name);
  const ms = (param: string) => `${param}::text::bigint * interval '1 millisecond'`;
  return {
    // $1 key, $2 ttl ms, $3 step ms, $4 seen at (ms, or null). The row as it is, and in the same statement its idle
    // deadline moved to $2 from now only when that moves it by more than $3, and its seen_at noted only when a
    // minute old: most reads write nothing.
    load: `WITH hit AS (
  SELECT "fields"::text AS fields, "created_at"::text AS created_at, "user_hash" FROM ${t}
  WHERE "key" = $1::text AND "expires_at" > now()
), touch AS (
  UPDATE ${t} SET
    "idle_until" = GREATEST("idle_until", now() + ${ms('$2')}),
    "seen_at" = CASE WHEN $4::text::bigint IS NOT NULL AND "user_hash" IS NOT NULL AND ("seen_at" IS NULL OR $4::text::bigint - "seen_at" >= 60000)
      THEN $4::text::bigint ELSE "seen_at" END
  WHERE "key" = $1::text AND "expires_at" > now() AND ("idle_until" < now() + ${ms('$2')} - ${ms('$3')}
    OR ($4::text::bigint IS NOT NULL AND "user_hash" IS NOT NULL AND ("seen_at" IS NULL OR $4::text::bigint - "seen_at" >= 60000)))
)
SELECT fields, created_at, "user_hash" FROM hit`,
    // One value, the record (o_status,o_size,o_now) as text: cheaper for PostgreSQL than a row from FROM.
    write: `SELECT ${qualified(name, '_write')}($1::text, $2::text::float8, $3::text::boolean, $4::text::bigint, $5::text::bigint, $6::text::bigint, $7::text::boolean,
  $8::text::bigint, $9::text, $10::text, $11::text::integer, $12::text, $13::text::jsonb, $14::text::text[], $15::text::text[], $16::text::bigint,
  $17::text::integer)::text AS result`,
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
    shape: `SELECT c.column_name::text AS name, c.data_type::text AS type,
  obj_description(to_regprocedure($3::text), 'pg_proc') AS layout
FROM information_schema.columns c
WHERE c.table_name = $1::text AND c.table_schema = coalesce($2::text, current_schema())
UNION ALL SELECT NULL, NULL, obj_description(to_regprocedure($3::text), 'pg_proc')`,
  };
}

/** The write function's signature, as `to_regprocedure` takes it. */
export function writeProcedure(name: TableName): string {
  return `${qualified(name, '_write')}(${WRITE_ARGUMENTS})`;
}
