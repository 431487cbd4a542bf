// The stores the store tests run against, shared by the test files that prove the same behaviour on each.
import { Redis as IORedis, Cluster as IORedisCluster } from 'ioredis';
import { createClient, createCluster } from 'redis';
import { createClient as createClient5, createCluster as createCluster5 } from 'redis5';
import { Cluster as IORedisCluster6, Redis as IORedis6 } from 'ioredis6';
import { Cluster as ValkeyCluster, Valkey } from 'iovalkey';
import pg from 'pg';
import postgres from 'postgres';
import { MemoryStore, PostgresStore, RedisStore, type RedisClientLike, type SessionStore } from '../../src/index.js';
import { startPgBouncer, type PgBouncer } from './pgbouncer.js';
import { startPostgres, type PostgresServer } from './postgres-server.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from './redis-server.js';

/** A store under test, and what the test may ask of the Redis behind it. */
export interface StoreCase {
  readonly store: SessionStore;
  /** The Redis keys of sessions, or the keys of the table's rows (Redis and PostgreSQL cases only). */
  readonly keys?: () => string[];
  close(): Promise<void>;
}

/** What a store case runs on: memory, a Redis server or cluster, or PostgreSQL. */
export type StoreKind = 'single' | 'cluster' | 'postgres' | false;

/**
 * Every store the store tests run against: in memory, Redis through each client (single node and cluster), and
 * PostgreSQL through each client, and through node-postgres behind PgBouncer in transaction mode (postgres.js behind it
 * runs store-postgres.test.ts' tests of what a pooler can change).
 */
export function storeCases(
  redisOf: () => RedisServer,
  clusterOf: () => RedisCluster,
  postgresOf: () => PostgresServer,
  bouncerOf: () => PgBouncer,
): readonly { label: string; redis: StoreKind; make: () => Promise<StoreCase> }[] {
  // Records only: a renewal's marker (sess:renewed:…) is no session; the grace tests look at markers themselves.
  const records = (key: string) => key !== '' && !key.startsWith('sess:renewed:');
  const sessionKeys = () => redisOf().cli('--scan', '--pattern', 'sess:*').split('\n').filter(records);
  // ioredis 5 and 6 and iovalkey share one API: connected, used and closed alike, single node or cluster.
  const ioredisLike = (label: string, client: () => IORedisLike) => ioredisCase(label, 'single', client, sessionKeys);
  const ioredisLikeCluster = (label: string, client: () => IORedisLike) =>
    ioredisCase(label, 'cluster', client, () => clusterOf().keys('sess:*').filter(records));
  const rowKeys = () =>
    postgresOf()
      .psql('SELECT key FROM koa_sessions WHERE size >= 0 ORDER BY key')
      .split('\n')
      .filter((line) => line !== '');
  return [
    { label: 'MemoryStore', redis: false, make: async () => ({ store: new MemoryStore(), close: async () => undefined }) },
    {
      label: 'PostgresStore through node-postgres 8 (Pool)',
      redis: 'postgres',
      make: async () => {
        const pool = new pg.Pool({ connectionString: postgresOf().url, max: 10 });
        return { store: new PostgresStore(pool, { createTable: true }), keys: rowKeys, close: () => pool.end() };
      },
    },
    {
      label: 'PostgresStore through postgres.js 3',
      redis: 'postgres',
      make: async () => {
        const sql = postgres(postgresOf().url, { max: 10 });
        return { store: new PostgresStore(sql, { createTable: true }), keys: rowKeys, close: () => sql.end({ timeout: 1 }) };
      },
    },
    {
      label: 'PostgresStore through node-postgres 8 (Pool) behind PgBouncer in transaction mode (prepare: false)',
      redis: 'postgres',
      make: async () => {
        const pool = new pg.Pool({ connectionString: bouncerOf().url, max: 10 });
        return { store: new PostgresStore(pool, { createTable: true, prepare: false }), keys: rowKeys, close: () => pool.end() };
      },
    },
    {
      label: 'RedisStore through node-redis 6 (createClient)',
      redis: 'single',
      make: async () => {
        const client = await createClient({ url: redisOf().url }).connect();
        return { store: new RedisStore(client), keys: () => sessionKeys(), close: () => client.close() };
      },
    },
    {
      label: 'RedisStore through node-redis 5 (createClient)',
      redis: 'single',
      make: async () => {
        const client = await createClient5({ url: redisOf().url }).connect();
        return { store: new RedisStore(client), keys: () => sessionKeys(), close: () => client.close() };
      },
    },
    ioredisLike(
      'RedisStore through ioredis 5 (Redis)',
      () => new IORedis(redisOf().port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 }),
    ),
    ioredisLike(
      'RedisStore through ioredis 6 (Redis)',
      () => new IORedis6(redisOf().port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 }),
    ),
    ioredisLike(
      'RedisStore through iovalkey 0.4 (Valkey)',
      () => new Valkey(redisOf().port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 }),
    ),
    {
      label: 'RedisStore through node-redis 6 on a Redis Cluster (createCluster)',
      redis: 'cluster',
      make: async () => {
        const client = await createCluster({ rootNodes: [{ url: clusterOf().nodes[0]?.url }] }).connect();
        return { store: new RedisStore(client), keys: () => clusterOf().keys('sess:*').filter(records), close: () => client.close() };
      },
    },
    {
      label: 'RedisStore through node-redis 5 on a Redis Cluster (createCluster)',
      redis: 'cluster',
      make: async () => {
        const client = await createCluster5({ rootNodes: [{ url: clusterOf().nodes[0]?.url }] }).connect();
        return { store: new RedisStore(client), keys: () => clusterOf().keys('sess:*').filter(records), close: () => client.close() };
      },
    },
    ioredisLikeCluster(
      'RedisStore through ioredis 6 on a Redis Cluster (Cluster)',
      () => new IORedisCluster6([{ host: '127.0.0.1', port: clusterOf().nodes[0]?.port as number }], { lazyConnect: true }),
    ),
    ioredisLikeCluster(
      'RedisStore through ioredis 5 on a Redis Cluster (Cluster)',
      () => new IORedisCluster([{ host: '127.0.0.1', port: clusterOf().nodes[0]?.port as number }], { lazyConnect: true }),
    ),
    ioredisLikeCluster(
      'RedisStore through iovalkey 0.4 on a Redis Cluster (Cluster)',
      () => new ValkeyCluster([{ host: '127.0.0.1', port: clusterOf().nodes[0]?.port as number }], { lazyConnect: true }),
    ),
  ];
}

/** A client with ioredis' API (ioredis 5 and 6, iovalkey): it connects on demand and quits. */
type IORedisLike = RedisClientLike & { connect(): Promise<unknown>; quit(): Promise<unknown> };

function ioredisCase(label: string, redis: 'single' | 'cluster', connect: () => IORedisLike, keys: () => string[]) {
  return {
    label,
    redis,
    make: async (): Promise<StoreCase> => {
      const client = connect();
      await client.connect();
      return { store: new RedisStore(client), keys, close: async () => void (await client.quit()) };
    },
  };
}

/** One store of {@link eachStore}'s, as a test sees it: the store itself (fresh for each test) and its servers. */
export interface StoreUnderTest {
  readonly label: string;
  readonly kind: StoreKind;
  readonly current: StoreCase;
  readonly redis: RedisServer;
  readonly cluster: RedisCluster;
  readonly postgres: PostgresServer;
  /** PgBouncer in front of {@link postgres}: the PgBouncer cases' way to it. */
  readonly bouncer: PgBouncer;
}

/**
 * Inside a describe: starts a redis-server, a three-master cluster and a PostgreSQL server for the suite, and
 * declares `body`'s tests once per store, each test on an emptied Redis or table and a client of its own.
 */
export function eachStore(body: (store: StoreUnderTest) => void): void {
  let redis: RedisServer;
  let cluster: RedisCluster;
  let pgServer: PostgresServer;
  let bouncer: PgBouncer;
  before(async function () {
    this.timeout(60_000);
    [redis, cluster, pgServer] = await Promise.all([startRedis(), startRedisCluster(), startPostgres()]);
    bouncer = await startPgBouncer(pgServer);
  });
  after(async () => {
    await bouncer?.stop();
    await redis?.stop();
    await cluster?.stop();
    await pgServer?.stop();
  });
  for (const { label, redis: kind, make } of storeCases(
    () => redis,
    () => cluster,
    () => pgServer,
    () => bouncer,
  )) {
    describe(`with ${label}`, () => {
      let current: StoreCase;
      beforeEach(async () => {
        if (kind === 'single') redis.cli('FLUSHALL');
        if (kind === 'cluster') for (const node of cluster.nodes) node.cli('FLUSHALL');
        if (kind === 'postgres') pgServer.psql("DO $$ BEGIN IF to_regclass('koa_sessions') IS NOT NULL THEN TRUNCATE koa_sessions; END IF; END $$");
        current = await make();
      });
      afterEach(async () => {
        await current.close();
      });
      body({
        label,
        kind,
        get current() {
          return current;
        },
        get redis() {
          return redis;
        },
        get cluster() {
          return cluster;
        },
        get postgres() {
          return pgServer;
        },
        get bouncer() {
          return bouncer;
        },
      });
    });
  }
}
