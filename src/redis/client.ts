import { createHash } from 'node:crypto';
import { invalidOption } from '../core/options.js';

// The Redis client code that RedisStore and RedisRevocationStore share: one way to send a raw command and run a
// script through whichever client the app has, with a bound on the commands waiting.

/**
 * A connected client the app already has: node-redis (`createClient`, `createCluster`; redis 5 and 6) or ioredis
 * (`Redis`, `Cluster`; 5 and 6). Typed loosely on purpose: neither package is a dependency of this one.
 */
export type RedisClientLike = object;

/** One Redis command, routed by `key` on a cluster, answered with binary strings as Buffers. */
type Send = (key: string, args: readonly (string | Buffer)[]) => Promise<unknown>;

interface Adapter {
  readonly send: Send;
  /**
   * Whether commands sent in one turn of the event loop leave in one socket write (node-redis): then two plain
   * commands are one round trip at no cost. ioredis writes each command apart, and a script saves the app a write.
   */
  readonly batches: boolean;
  /** A Redis Cluster: a script touches one key (one slot) only. */
  readonly cluster: boolean;
  /** What the client puts before every key it is sent (ioredis' and iovalkey's `keyPrefix`), or ''. */
  readonly keyPrefix: string;
}

/** A Lua script and its SHA1, for EVALSHA. */
export interface Script {
  readonly source: string;
  readonly sha: string;
}

export function luaScript(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/** A client, adapted: raw commands and scripts, at most `maxPending` waiting at once. */
export class RedisConnection {
  /** See {@link Adapter.batches}. */
  readonly batches: boolean;
  /** See {@link Adapter.cluster}. */
  readonly cluster: boolean;
  /** See {@link Adapter.keyPrefix}. */
  readonly keyPrefix: string;
  readonly #send: Send;
  readonly #maxPending: number;
  #pending = 0;

  constructor(where: string, client: RedisClientLike, maxPending: number) {
    ({ send: this.#send, batches: this.batches, cluster: this.cluster, keyPrefix: this.keyPrefix } = adapt(where, client));
    this.#maxPending = maxPending;
  }

  /** EVALSHA, falling back to EVAL the first time a server has not seen the script (then it is cached). */
  async script({ source, sha }: Script, keys: readonly string[], args: readonly (string | Buffer)[]): Promise<unknown> {
    const key = keys[0] as string;
    try {
      return await this.run(key, ['EVALSHA', sha, String(keys.length), ...keys, ...args]);
    } catch (err) {
      if (!String((err as { message?: unknown })?.message).startsWith('NOSCRIPT')) throw err;
      return this.run(key, ['EVAL', source, String(keys.length), ...keys, ...args]);
    }
  }

  /** Sends a command unless too many wait already: a stalled Redis must not grow the client's queue without bound. */
  async run(key: string, args: readonly (string | Buffer)[]): Promise<unknown> {
    if (this.#pending >= this.#maxPending) throw new Error(`${this.#pending} commands are waiting for Redis already (maxPending)`);
    this.#pending++;
    try {
      return await this.#send(key, args);
    } finally {
      this.#pending--;
    }
  }
}

// node-redis' RESP_TYPES: binary strings as Buffers, and a RESP3 map (HGETALL's answer) as a flat array.
const BLOB_STRING = 36;
const MAP = 37;
// No per-command timer (node-redis 6 arms a 5 s AbortSignal.timeout on every command by default, a quarter of the
// app's CPU per read here): storeTimeout bounds each call, and maxPending the queue.
const COMMAND_OPTIONS = { typeMapping: { [BLOB_STRING]: Buffer, [MAP]: Array }, timeout: 0 };

/** One way to send a raw command, whichever client the app uses. */
function adapt(where: string, client: RedisClientLike): Adapter {
  const c = client as Record<string, unknown>;
  // ioredis (Redis and Cluster): callBuffer routes by the command's keys on a cluster.
  if (typeof c.callBuffer === 'function') {
    const call = c.callBuffer as (command: string, ...args: (string | Buffer)[]) => Promise<unknown>;
    const options = c.options as { keyPrefix?: unknown } | undefined;
    const keyPrefix = typeof options?.keyPrefix === 'string' || Buffer.isBuffer(options?.keyPrefix) ? String(options?.keyPrefix) : '';
    return {
      send: (_key, [command, ...args]) => call.call(client, command as string, ...args),
      batches: false,
      cluster: c.isCluster === true,
      keyPrefix,
    };
  }
  if (typeof c.sendCommand === 'function') {
    // node-redis' cluster takes the key that picks the node first; its single-node client takes the arguments.
    if ('masters' in c) {
      const send = c.sendCommand as (key: string, readonly: boolean, args: readonly (string | Buffer)[], options: object) => Promise<unknown>;
      return { send: (key, args) => send.call(client, key, false, args, COMMAND_OPTIONS), batches: true, cluster: true, keyPrefix: '' };
    }
    const send = c.sendCommand as (args: readonly (string | Buffer)[], options: object) => Promise<unknown>;
    return { send: (_key, args) => send.call(client, args, COMMAND_OPTIONS), batches: true, cluster: false, keyPrefix: '' };
  }
  throw invalidOption(where, 'client', 'a connected node-redis (createClient, createCluster) or ioredis (Redis, Cluster) client');
}

export function bytes(value: unknown): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8');
}

export function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

/** A TTL as PEXPIRE and SET PX take it: whole milliseconds, at least 1 (0 or less would delete the key or fail). */
export function milliseconds(ttlMs: number): string {
  return String(Math.max(1, Math.ceil(ttlMs)));
}
