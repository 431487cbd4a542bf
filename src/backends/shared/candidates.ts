import { channels, publishRejected, type SessionMessage } from '../../core/diagnostics.js';
import type { EnvelopeMode } from '../../crypto/envelope.js';
import type { ContextKeys } from '../../crypto/key-ring.js';
import { rejectionReason, type Refusal } from './checks.js';

/** How many cookies of the session's name a request's cookies are searched for one that opens. */
export const MAX_SAME_NAME_COOKIES = 4;

/**
 * The first of a request's session values (its cookies named `name`, or its token: `requestValues`) that opens,
 * and how many there were; each one before it that did not open is told to a diagnostics subscriber, with its
 * exact reason. The first that opens, not the first: a cookie planted by a sibling subdomain must not push the
 * real one out.
 */
export function firstThatOpens<T extends object>(
  values: readonly string[],
  source: { readonly backend: SessionMessage['backend']; readonly name: string; readonly mode: EnvelopeMode; readonly keys: ContextKeys },
  open: (value: string) => T | Refusal,
): { readonly opened: T | undefined; readonly count: number } {
  for (const value of values) {
    const opened = open(value);
    if (typeof opened !== 'string') return { opened, count: values.length };
    // The exact reason costs a second look at the value: asked only when someone listens.
    if (channels.cookieRejected.hasSubscribers)
      publishRejected(source.backend, source.name, rejectionReason(source.mode, source.keys, value, opened));
  }
  return { opened: undefined, count: values.length };
}
