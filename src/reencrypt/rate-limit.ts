/** A token bucket that tells callers how long to wait instead of sleeping itself (pure; fake clocks in tests). */
export interface RateLimiter {
  /** Takes one token; returns the milliseconds to wait before using it (0 = go now). */
  reserve(): number;
}

export interface TokenBucketOptions {
  /** Sustained requests per second. */
  readonly ratePerSecond: number;
  /** Requests allowed back-to-back after an idle period. */
  readonly burst: number;
  readonly now: () => number;
}

export function createTokenBucket(options: TokenBucketOptions): RateLimiter {
  const { ratePerSecond, now } = options;
  if (!(ratePerSecond > 0)) throw new RangeError('ratePerSecond must be positive');
  const burst = Math.max(1, options.burst);
  let tokens = burst;
  let refilledAt = now();
  return {
    reserve(): number {
      const at = now();
      tokens = Math.min(burst, tokens + ((at - refilledAt) / 1000) * ratePerSecond);
      refilledAt = at;
      // Tokens may go negative: each caller reserves its own future slot, so concurrent
      // callers queue fairly instead of all waking at once.
      tokens -= 1;
      return tokens >= 0 ? 0 : Math.ceil((-tokens / ratePerSecond) * 1000);
    },
  };
}
