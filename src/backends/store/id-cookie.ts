import { hash, randomBytes } from 'node:crypto';
import { OVERHEAD, open, seal, type Opened, type OwnLifetime } from '../../crypto/envelope.js';
import type { KeyRing } from '../../crypto/key-ring.js';
import { decodeCookieValue } from '../../http/cookie.js';
import { timeRejection } from '../../policy/lifetime.js';
import type { RejectionReason } from '../../core/diagnostics.js';
import { rejectionReason, type Refusal } from '../shared/checks.js';
import { KeySlot } from '../shared/keys.js';

/** Bytes of a session id: 256 random bits. */
const ID_BYTES = 32;

/** What a request's id cookie said, once authenticated. */
export interface Ticket {
  readonly id: Buffer;
  readonly keyId: number;
  readonly retired: boolean;
  readonly expiresAt: number;
  readonly createdAt: number;
  readonly maxAge: OwnLifetime;
}

/**
 * A store session's id cookie, knowing nothing of Koa or the store: the id sealed in the envelope (format `0x23`,
 * under keys derived apart from a cookie session's), the store key it names, and the idle and absolute lifetimes
 * it opens under. The store backend and `inspect` both open id cookies with it.
 */
export class IdCookie {
  readonly keys: KeySlot;

  constructor(
    where: string,
    keyRing: KeyRing,
    name: string,
    /** The idle lifetime: a session ends this long after its last request. */
    readonly idle: number,
    readonly absolute: number,
  ) {
    // A NUL cannot occur in a cookie name: these keys are never a cookie session's.
    this.keys = new KeySlot(where, keyRing, `${name}\0store-id`);
  }

  /** A new session id. */
  static newId(): Buffer {
    return randomBytes(ID_BYTES);
  }

  /** The store's key for an id: a one-way hash, so a dump of the store yields no usable cookie. */
  static recordKey(id: Uint8Array): string {
    return hash('sha256', id, 'base64url');
  }

  /** An id cookie's ticket, or why it does not open. */
  open(value: string, now: number): Ticket | Refusal {
    const envelope = decodeCookieValue(value);
    if (envelope === undefined) return 'envelope';
    if (envelope.length !== OVERHEAD.store + ID_BYTES) return envelope.length < OVERHEAD.store + ID_BYTES ? 'truncated' : 'envelope';
    const opened = open('store', this.keys.keys, envelope);
    if (opened === undefined || opened.createdAt === undefined || opened.payload.length !== ID_BYTES) return 'envelope';
    const { maxAge, createdAt, expiresAt } = opened;
    const late = timeRejection(opened, now, (own) => this.idleOf(own), this.absolute);
    if (late !== undefined) return late;
    return { id: opened.payload, keyId: opened.keyId, retired: opened.retiredKey, expiresAt, createdAt, maxAge };
  }

  /** What `inspect` shows of a value: the envelope's fields once it authenticated, the ticket, or the exact reason it does not open. */
  examine(value: string, now: number): { readonly envelope?: Opened; readonly ticket?: Ticket; readonly reason?: RejectionReason } {
    const envelope = decodeCookieValue(value);
    const opened = envelope === undefined ? undefined : open('store', this.keys.keys, envelope);
    const ticket = this.open(value, now);
    const base = opened === undefined ? {} : { envelope: opened };
    if (typeof ticket === 'string') return { ...base, reason: rejectionReason('store', this.keys.keys, value, ticket) };
    return { ...base, ticket };
  }

  /** The cookie value for an id, sealed with the newest key, expiring `ttlMs` from now. */
  seal(id: Buffer, createdAt: number, own: OwnLifetime, now: number, ttlMs: number): string {
    return seal('store', this.keys.keys, 0, { expiresAt: now + ttlMs, createdAt, maxAge: own }, id).toString('base64url');
  }

  idleOf(own: OwnLifetime): number {
    return typeof own === 'number' ? own : this.idle;
  }

  /** How long a session lasts from now: its idle lifetime, cut short by its absolute deadline. */
  ttl(createdAt: number, own: OwnLifetime, now: number): number {
    return Math.min(this.idleOf(own), createdAt + this.absolute - now);
  }

  /** The cookie is past half its idle lifetime while the record lives on: send it again so the browser keeps it. */
  cookieDue(ticket: Ticket, now: number): boolean {
    const deadline = now + this.ttl(ticket.createdAt, ticket.maxAge, now);
    return ticket.expiresAt - now < this.idleOf(ticket.maxAge) / 2 && deadline > ticket.expiresAt;
  }
}
