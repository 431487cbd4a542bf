import { createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { SessionError } from '../core/errors.js';
import { checkOptionNames } from '../core/options.js';

/** How `KeyRing.fromEnv` marks a staged key. */
const STAGED_PREFIX = 'staged:';

/** Shortest master key accepted, in bytes. */
export const MIN_KEY_BYTES = 32;

// HKDF labels: one master key yields independent sub-keys, so no key is ever used for two purposes, and the
// MAC and encryption keys are derived for one context (the cookie name), which binds a cookie to its name.
// The salt is empty on purpose: master keys are already uniformly random (RFC 5869 §3.1).
const INFO_KEY_ID = 'koa-sealed-session/1 key-id';
const INFO_MAC = 'koa-sealed-session/1 hmac-sha256\0';
const INFO_ENC = 'koa-sealed-session/1 aes-256-gcm\0';

/** What the envelope needs of one key in one context: its id in the token and its two sub-keys. */
export interface DerivedKey {
  /** 32-bit id written in the envelope, derived from the key (not its position, which shifts on rotation). */
  readonly id: number;
  /** True when a cookie opened with this key must be sealed again with the newest key. */
  readonly retired: boolean;
  readonly macKey: KeyObject;
  readonly encKey: KeyObject;
}

/** A ring's keys derived for one context: the key that seals, and every key by id. */
export interface ContextKeys {
  readonly sealing: DerivedKey;
  readonly byId: ReadonlyMap<number, DerivedKey>;
}

interface MasterKey {
  readonly id: number;
  readonly retired: boolean;
  readonly bytes: Buffer;
}

interface RingState {
  /** Newest first; staged keys last. */
  readonly masters: readonly MasterKey[];
  readonly keyCount: number;
  readonly stagedCount: number;
  readonly contexts: Map<string, ContextKeys>;
}

const states = new WeakMap<KeyRing, RingState>();

/** Options of {@link KeyRing}. */
export interface KeyRingOptions {
  /**
   * Keys that open cookies but do not seal yet: the first step of a rotation, so that every server of a fleet
   * can read the new key's cookies before any server starts writing them.
   * @default []
   */
  readonly staged?: readonly Uint8Array[];
}

/**
 * The keys that seal and open session cookies. The first key seals; every key (and every staged key) opens.
 * A cookie opened with an older key is sealed again with the newest one in the same response, so keys rotate
 * without logging anyone out. Replacing all the keys logs everyone out: that is how to revoke every session.
 *
 * Key material is held out of reach: `util.inspect`, `JSON.stringify` and error messages never show it.
 *
 * @example
 * ```ts
 * const keyRing = new KeyRing([Buffer.from(process.env.SESSION_KEY ?? '', 'base64url')]);
 * ```
 */
export class KeyRing {
  /**
   * Returns a fresh random key of 32 bytes from the operating system's CSPRNG.
   * Store it as `key.toString('base64url')` and load it with `Buffer.from(text, 'base64url')`.
   */
  static generateKey(): Buffer {
    return randomBytes(MIN_KEY_BYTES);
  }

  /**
   * The ring an environment variable holds: comma-separated base64url keys, newest first, staged ones marked
   * `staged:` (`npx koa-sealed-session keygen` prints such keys). Rotation: `staged:NEW,CURRENT` on every server,
   * then `NEW,CURRENT`, then `NEW` once the old cookies have expired.
   * @param variable - The variable's name. @default 'SESSION_KEYS'
   * @param env - Where to read it. @default process.env
   * @throws {@link SessionError} `ERR_SESSION_INVALID_KEY` when the variable is unset or empty, or a key is not
   * canonical base64url, short, weak or repeated. The message names the variable and the key's position, never a key.
   */
  static fromEnv(variable = 'SESSION_KEYS', env: Readonly<Record<string, string | undefined>> = process.env): KeyRing {
    const text = env[variable];
    if (text === undefined || text.trim() === '') {
      throw new SessionError(
        'ERR_SESSION_INVALID_KEY',
        `${variable} is not set. Make keys with \`npx koa-sealed-session keygen\` and set ${variable} to them, newest first.`,
      );
    }
    const keys: Buffer[] = [];
    const staged: Buffer[] = [];
    text.split(',').forEach((entry, index) => {
      let spelt = entry.trim();
      const isStaged = spelt.startsWith(STAGED_PREFIX);
      if (isStaged) spelt = spelt.slice(STAGED_PREFIX.length);
      const bytes = Buffer.from(spelt, 'base64url');
      if (spelt === '' || bytes.toString('base64url') !== spelt) {
        throw new SessionError(
          'ERR_SESSION_INVALID_KEY',
          `${variable} entry ${index + 1} is not a base64url key. Separate keys with commas; mark staged ones "${STAGED_PREFIX}".`,
        );
      }
      (isStaged ? staged : keys).push(bytes);
    });
    return new KeyRing(keys, { staged });
  }

  /**
   * @param keys - Master keys, newest first: at least one, each of at least 32 random bytes, all different.
   * @param options - See {@link KeyRingOptions}.
   * @throws {@link SessionError} `ERR_SESSION_INVALID_KEY` when any key is missing, short, repeated or weak.
   */
  constructor(keys: readonly Uint8Array[], options: KeyRingOptions = {}) {
    if (keys instanceof Uint8Array || typeof keys === 'string') {
      throw new SessionError('ERR_SESSION_INVALID_KEY', 'A KeyRing takes an array of keys, newest first: new KeyRing([key]), not a single key.');
    }
    checkOptionNames('KeyRing', options, ['staged']);
    if (!Array.isArray(keys) || keys.length === 0) {
      throw new SessionError(
        'ERR_SESSION_INVALID_KEY',
        'A KeyRing needs at least one key. Generate one with KeyRing.generateKey() and keep it in your secrets.',
      );
    }
    const staged = options.staged ?? [];
    if (!Array.isArray(staged)) {
      throw new SessionError('ERR_SESSION_INVALID_OPTION', 'KeyRing option "staged" must be an array of keys.');
    }
    const masters: MasterKey[] = [];
    [...(keys as readonly Uint8Array[]), ...(staged as readonly Uint8Array[])].forEach((key, index) => {
      const label = index < keys.length ? `key ${index}` : `staged key ${index - keys.length}`;
      const bytes = checkKey(key, label);
      if (masters.some((other) => other.bytes.equals(bytes))) {
        throw new SessionError(
          'ERR_SESSION_INVALID_KEY',
          `KeyRing ${label} repeats an earlier key. Each key must be distinct; remove the duplicate.`,
        );
      }
      const id = Buffer.from(hkdfSync('sha256', bytes, EMPTY, INFO_KEY_ID, 4)).readUInt32BE(0);
      if (masters.some((other) => other.id === id)) {
        throw new SessionError(
          'ERR_SESSION_INVALID_KEY',
          `KeyRing ${label} derives the same key id as an earlier key. Replace it with KeyRing.generateKey().`,
        );
      }
      masters.push({ id, retired: index > 0 && index < keys.length, bytes });
    });
    states.set(this, { masters, keyCount: keys.length, stagedCount: staged.length, contexts: new Map() });
  }

  /** Number of keys that open cookies (active and staged). */
  get size(): number {
    const state = ringState(this);
    return state.keyCount + state.stagedCount;
  }

  /** Shows how many keys there are, never the keys. */
  [inspect.custom](): string {
    const state = ringState(this);
    return `KeyRing { keys: ${state.keyCount}, staged: ${state.stagedCount} }`;
  }

  /** Serializes to a description without key material. */
  toJSON(): { keys: number; staged: number } {
    const state = ringState(this);
    return { keys: state.keyCount, staged: state.stagedCount };
  }
}

/**
 * The ring's keys derived for one context (a cookie name), derived once and kept. Internal: not exported from
 * the package.
 */
export function keysFor(ring: KeyRing, context: string): ContextKeys {
  const state = ringState(ring);
  let keys = state.contexts.get(context);
  if (keys === undefined) {
    const byId = new Map(state.masters.map((master) => [master.id, derive(master, context)]));
    keys = { sealing: byId.get((state.masters[0] as MasterKey).id) as DerivedKey, byId };
    state.contexts.set(context, keys);
  }
  return keys;
}

function ringState(ring: KeyRing): RingState {
  const state = states.get(ring);
  if (state === undefined) {
    throw new SessionError('ERR_SESSION_INVALID_KEY', 'Not a KeyRing built with new KeyRing(keys).');
  }
  return state;
}

function checkKey(key: unknown, label: string): Buffer {
  if (key === undefined || (key instanceof Uint8Array && key.byteLength === 0)) {
    // Most often a key read from an environment variable that is not set in this environment.
    throw new SessionError(
      'ERR_SESSION_INVALID_KEY',
      `KeyRing ${label} is ${key === undefined ? 'missing (undefined)' : 'empty'}. If it is read from an environment ` +
        'variable, that variable is not set here. Generate a key with KeyRing.generateKey().',
    );
  }
  if (!(key instanceof Uint8Array)) {
    const hint = typeof key === 'string' ? ' Decode a text key first, e.g. Buffer.from(text, "base64url").' : '';
    throw new SessionError('ERR_SESSION_INVALID_KEY', `KeyRing ${label} must be a Buffer or Uint8Array.${hint}`);
  }
  if (key.byteLength < MIN_KEY_BYTES) {
    throw new SessionError(
      'ERR_SESSION_INVALID_KEY',
      `KeyRing ${label} is ${key.byteLength} bytes; keys need at least ${MIN_KEY_BYTES} random bytes. ` + 'Generate one with KeyRing.generateKey().',
    );
  }
  // A key of one repeated byte (all zeros, most often) is a placeholder that escaped into production.
  if (key.every((byte) => byte === key[0])) {
    throw new SessionError(
      'ERR_SESSION_INVALID_KEY',
      `KeyRing ${label} is a single repeated byte, not a random key. Generate one with KeyRing.generateKey().`,
    );
  }
  // Copy: the caller may reuse or zero its buffer later.
  return Buffer.from(key);
}

const EMPTY = Buffer.alloc(0);

function derive(master: MasterKey, context: string): DerivedKey {
  const subKey = (info: string) => createSecretKey(Buffer.from(hkdfSync('sha256', master.bytes, EMPTY, info + context, 32)));
  return Object.freeze({ id: master.id, retired: master.retired, macKey: subKey(INFO_MAC), encKey: subKey(INFO_ENC) });
}

/** What the ring holds, by id and role, never the keys (for the command line). Internal: not exported from the package. */
export function ringKeyIds(ring: KeyRing): { readonly id: number; readonly role: 'sealing' | 'retired' | 'staged' }[] {
  const state = ringState(ring);
  return state.masters.map((master, index) => ({ id: master.id, role: index === 0 ? 'sealing' : index < state.keyCount ? 'retired' : 'staged' }));
}
