/**
 * The one fake clock of the tests, implementing the product's `Clock`, so tests move time
 * explicitly instead of waiting. Two modes: by default timers wait for `advance`/`runNext`
 * (the monitor's refresh loop); with `{ timersFireAtOnce: true }` every timer fires on the
 * next microtask and moves time forward, recording its delay in `sleeps` (code that only
 * waits: the sweep's backoff, Retry-After and rate limit). Hand-written rather than
 * @tapjs/clock: `advance` lets promise chains settle between two timers.
 */
import type { Clock } from '../../src/time/clock.js';

interface FakeTimer {
  readonly at: number;
  readonly order: number;
  readonly callback: () => void;
}

/** Lets pending promise callbacks (and I/O-free async chains) run to completion. */
export async function settle(rounds = 5): Promise<void> {
  for (let round = 0; round < rounds; round += 1) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export class FakeClock implements Clock {
  #now: number;
  #order = 0;
  readonly #timers = new Map<number, FakeTimer>();
  readonly #timersFireAtOnce: boolean;
  /** Every delay of a timer in `timersFireAtOnce` mode, in order. */
  readonly sleeps: number[] = [];

  constructor(
    start: number | string = '2026-11-28T09:00:00Z',
    { timersFireAtOnce = false }: { timersFireAtOnce?: boolean } = {},
  ) {
    this.#now = typeof start === 'number' ? start : Date.parse(start);
    this.#timersFireAtOnce = timersFireAtOnce;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    if (this.#timersFireAtOnce) {
      this.sleeps.push(ms);
      this.#now += Math.max(0, ms);
      void Promise.resolve().then(callback);
      return undefined;
    }
    this.#order += 1;
    const id = this.#order;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), order: id, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === 'number') this.#timers.delete(handle);
  }

  /** Number of timers waiting to fire. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Delay from now to the earliest timer, or undefined when none is pending. */
  nextDelay(): number | undefined {
    const next = this.#earliest();
    return next === undefined ? undefined : next[1].at - this.#now;
  }

  /** Moves time forward, firing due timers in order and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (let fired = 0; fired < 100_000; fired += 1) {
      await settle();
      const next = this.#earliest();
      if (next === undefined || next[1].at > target) break;
      const [id, timer] = next;
      this.#timers.delete(id);
      this.#now = Math.max(this.#now, timer.at);
      timer.callback();
    }
    this.#now = target;
    await settle();
  }

  /** Fires the earliest timer (moving time to it); returns its delay, or undefined if none. */
  async runNext(): Promise<number | undefined> {
    await settle();
    const delay = this.nextDelay();
    if (delay === undefined) return undefined;
    await this.advance(delay);
    return delay;
  }

  #earliest(): [number, FakeTimer] | undefined {
    let best: [number, FakeTimer] | undefined;
    for (const entry of this.#timers) {
      if (
        best === undefined ||
        entry[1].at < best[1].at ||
        (entry[1].at === best[1].at && entry[1].order < best[1].order)
      ) {
        best = entry;
      }
    }
    return best;
  }
}
