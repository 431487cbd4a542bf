// A realistic session near the cookie limit: a signed-in user with roles, a CSRF token, preferences, flash
// messages, recently viewed items and a cart. Deterministic, so every run measures the same bytes.
import { CookieSessionBackend, KeyRing, type SessionRecord } from '../src/index.js';

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const WORDS = ['alpine', 'birch', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'island', 'juniper', 'kestrel', 'lagoon'];

function cartItem(next: () => number, index: number): SessionRecord {
  const word = () => WORDS[Math.floor(next() * WORDS.length)] as string;
  return {
    sku: `SKU-${(100000 + Math.floor(next() * 900000)).toString(36).toUpperCase()}-${index}`,
    name: `${word()} ${word()} jacket`,
    qty: 1 + Math.floor(next() * 3),
    unitPrice: Math.round(next() * 20000) / 100,
    options: { size: ['S', 'M', 'L', 'XL'][Math.floor(next() * 4)] as string, color: word() },
    addedAt: 1_764_000_000_000 + Math.floor(next() * 1e9),
  };
}

function sessionWithItems(items: number): SessionRecord {
  const next = random(42);
  return {
    counter: 0,
    userId: 'usr_01JD8ZQ4V6M3T9X2K7R5B8N1C4',
    user: {
      name: 'Ada Lovelace',
      email: 'ada@example.com',
      locale: 'en-GB',
      timezone: 'Europe/London',
      roles: ['customer', 'beta-tester', 'newsletter'],
      permissions: ['orders:read', 'orders:write', 'profile:write', 'wishlist:write'],
    },
    csrf: 'k3Jd9QmZ1pX7vB2nL8sT4wYc6hR0fA5e',
    preferences: { theme: 'dark', currency: 'EUR', newsletter: true, compactView: false, pageSize: 24 },
    notices: [{ type: 'info', message: 'Your address was saved.' }],
    recentlyViewed: Array.from({ length: 12 }, (_, i) => `prd_${(1_000_000 + i * 7919).toString(36)}`),
    experiments: { checkoutV2: 'treatment', searchRanking: 'control', freeShippingBanner: 'b' },
    cart: { currency: 'EUR', coupon: 'WINTER-10', items: Array.from({ length: items }, (_, i) => cartItem(next, i)) },
  };
}

/** The largest session of this shape whose signed JSON cookie stays within `maxBytes`. */
export function nearLimitSession(maxBytes = 4000): SessionRecord {
  const sizer = CookieSessionBackend.signed(new KeyRing([KeyRing.generateKey()]));
  let items = 1;
  for (;;) {
    try {
      if (sizer.seal(sessionWithItems(items + 1)).length > maxBytes) break;
    } catch {
      break;
    }
    items++;
  }
  return sessionWithItems(items);
}
