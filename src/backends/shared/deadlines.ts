/** A call that did not settle within its deadline: told apart from the call's own failure. */
export class DeadlineExceeded extends Error {
  constructor(readonly timeoutMs: number) {
    super(`did not answer within ${timeoutMs} ms`);
  }
}

/** A call in flight, failed once its deadline passes. */
interface Pending {
  readonly deadline: number;
  readonly reject: (err: DeadlineExceeded) => void;
}

/**
 * Bounds calls to a store: each settles with its own answer or failure, or fails with {@link DeadlineExceeded}
 * `timeoutMs` after it began, whichever comes first; a late answer is dropped, never reported twice. One timer for
 * every call in flight, not one per call (arming and clearing a timer per request cost a tenth of a MemoryStore
 * read): all calls wait equally long, so the oldest, first in the set, is the first due. Both backends bound their
 * store calls through this.
 */
export class Deadlines {
  readonly #calls = new Set<Pending>();
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly timeoutMs: number) {}

  /** Runs `call` within the deadline. A synchronous throw is a failure like any other. */
  run<T>(call: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { deadline: performance.now() + this.timeoutMs, reject };
      this.#calls.add(pending);
      if (this.#timer === undefined) this.#watch();
      const fail = (err: unknown) => {
        // The call's own failure goes on as it came: the caller tells it apart from a DeadlineExceeded.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        if (this.#calls.delete(pending)) reject(err);
      };
      try {
        call().then((value) => {
          if (this.#calls.delete(pending)) resolve(value);
        }, fail);
      } catch (err) {
        fail(err);
      }
    });
  }

  #watch(): void {
    const now = performance.now();
    for (const call of this.#calls) {
      if (call.deadline > now) {
        // Unreferenced: a call in flight holds its own handle (a socket); an idle app may exit.
        this.#timer = setTimeout(() => this.#watch(), Math.ceil(call.deadline - now)).unref();
        return;
      }
      this.#calls.delete(call);
      call.reject(new DeadlineExceeded(this.timeoutMs));
    }
    this.#timer = undefined;
  }
}
