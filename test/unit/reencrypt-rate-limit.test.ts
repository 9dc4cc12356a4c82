import t from 'tap';
import { createTokenBucket } from '../../src/reencrypt/rate-limit.js';

t.test('a token bucket lets a burst through, then spaces requests at the rate', async (t) => {
  let now = 0;
  const bucket = createTokenBucket({ ratePerSecond: 10, burst: 2, now: () => now });
  t.equal(bucket.reserve(), 0, 'first token of the burst');
  t.equal(bucket.reserve(), 0, 'second token of the burst');
  t.equal(bucket.reserve(), 100, 'third waits one interval');
  t.equal(bucket.reserve(), 200, 'fourth queues behind the third');
  now = 200;
  t.equal(bucket.reserve(), 100, 'time paid back the reservations; the next one waits 100 ms');
  now = 10_000;
  t.equal(bucket.reserve(), 0, 'after a long idle the burst is back');
  t.equal(bucket.reserve(), 0, 'the whole burst');
  t.equal(bucket.reserve(), 100, 'but not more than the burst');
});

t.test('sustained rate matches ratePerSecond', async (t) => {
  let now = 0;
  const bucket = createTokenBucket({ ratePerSecond: 20, burst: 1, now: () => now });
  let sent = 0;
  while (now < 10_000) {
    const wait = bucket.reserve();
    now += wait;
    sent += 1;
  }
  t.ok(sent >= 200 && sent <= 202, `about 20/s over 10 s (sent ${sent})`);
});

t.test('rejects a non-positive rate', async (t) => {
  t.throws(
    () => createTokenBucket({ ratePerSecond: 0, burst: 1, now: () => 0 }),
    RangeError,
    'zero rate',
  );
});
