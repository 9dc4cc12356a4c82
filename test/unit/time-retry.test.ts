import t from 'tap';
import { sleep } from '../../src/time/clock.js';
import { backoffDelayMs, retry } from '../../src/time/retry.js';
import { FakeClock } from '../helpers/clock.js';

t.test(
  'backoff grows exponentially with equal jitter, capped; a lower bound is honoured',
  async (t) => {
    const policy = { baseMs: 100, maxMs: 1000 };
    const cases: [number, number, number, number, string][] = [
      // [retry, random, at least (ms), expected, why]
      [1, 0, 0, 50, 'first retry, no jitter: half the base'],
      [1, 1, 0, 100, 'first retry, full jitter: the base'],
      [3, 1, 0, 400, 'third retry: 4× the base'],
      [10, 1, 0, 1000, 'capped at maxMs'],
      [1, 0, 0.5 * 1000, 500, 'Retry-After is a lower bound'],
      [1, 0, 60 * 1000, 1000, 'Retry-After is capped at maxMs too'],
      [2, 0, 0, 100, 'second retry, no jitter: half of 200'],
      [2, 2, 0, 200, 'a random source out of range is clamped'],
      [0, 1, 0, 100, 'retry 0 counts as the first'],
      [5_000, 1, 0, 1000, 'huge retry numbers stay at the cap'],
      [1, 0, -5, 50, 'a negative lower bound is ignored'],
    ];
    for (const [retryNumber, random, atLeast, expected, why] of cases) {
      t.equal(
        backoffDelayMs(retryNumber, policy, () => random, atLeast),
        expected,
        why,
      );
    }
  },
);

t.test(
  'retry: waits on the clock, gives up when told, on the last attempt or on abort',
  async (t) => {
    const clock = new FakeClock();
    let calls = 0;
    const result = retry(
      async (attempt) => {
        calls += 1;
        if (attempt < 3) throw new Error(`fail ${attempt}`);
        return 'done';
      },
      { maxAttempts: 5, clock, nextDelayMs: () => 1000 },
    );
    await clock.advance(1000);
    await clock.advance(1000);
    t.equal(await result, 'done', 'third attempt succeeds');
    t.equal(calls, 3, 'three attempts');

    const givenUp = retry(
      async () => {
        throw new Error('permanent');
      },
      { maxAttempts: 5, clock, nextDelayMs: () => undefined },
    );
    await t.rejects(givenUp, /permanent/, 'undefined delay: the error is thrown at once');

    let last = 0;
    const exhausted = retry(
      async (attempt) => {
        last = attempt;
        throw new Error(`attempt ${attempt}`);
      },
      { maxAttempts: 2, clock, nextDelayMs: () => 0 },
    );
    await t.rejects(exhausted, /attempt 2/, 'the last attempt’s error');
    t.equal(last, 2, 'no third attempt');

    const controller = new AbortController();
    const aborted = retry(
      async () => {
        throw new Error('transient');
      },
      { maxAttempts: 10, clock, signal: controller.signal, nextDelayMs: () => 60_000 },
    );
    await clock.advance(10);
    controller.abort();
    await t.rejects(aborted, /transient/, 'abort ends the wait and the retries');
  },
);

t.test('sleep resolves on the clock or early on abort, and clears its timer', async (t) => {
  const clock = new FakeClock();
  let woke = false;
  const controller = new AbortController();
  const sleeping = sleep(clock, 5_000, controller.signal).then(() => {
    woke = true;
  });
  await clock.advance(10);
  t.notOk(woke, 'still asleep');
  controller.abort();
  await sleeping;
  t.ok(woke, 'woken by the abort');
  t.equal(clock.pending, 0, 'no timer left behind');
  await sleep(clock, 0, controller.signal);
  t.pass('an aborted signal returns at once');
});
