import { SessionError } from '../../core/errors.js';
import { KeyRing, keysFor, type ContextKeys } from '../../crypto/key-ring.js';

export function checkKeyRing(where: string, keyRing: unknown): void {
  if (!(keyRing instanceof KeyRing)) {
    throw new SessionError('ERR_SESSION_INVALID_KEY', `${where}: the key ring must be a KeyRing, such as new KeyRing([key]).`);
  }
}

/**
 * A backend's keys for one context (its cookie name), swapped whole by `setKeyRing`: a request reads them once
 * per use, so one in flight seals with the new ring as soon as it is set.
 */
export class KeySlot {
  #keys: ContextKeys;

  constructor(
    where: string,
    keyRing: KeyRing,
    readonly context: string,
  ) {
    checkKeyRing(where, keyRing);
    this.#keys = keysFor(keyRing, context);
  }

  get keys(): ContextKeys {
    return this.#keys;
  }

  /** @throws {@link SessionError} `ERR_SESSION_INVALID_KEY` when `keyRing` is not a KeyRing. */
  swap(where: string, keyRing: KeyRing): void {
    checkKeyRing(where, keyRing);
    this.#keys = keysFor(keyRing, this.context);
  }
}
