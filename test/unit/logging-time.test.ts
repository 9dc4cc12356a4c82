import t from 'tap';
import { isoTimePerMillisecond } from '../../src/logging/logger.js';

t.test('log timestamps: ISO 8601 like pino isoTime, formatted once per millisecond', async (t) => {
  let now = Date.UTC(2026, 10, 28, 9, 0, 0, 123);
  let formatted = 0;
  const stamp = isoTimePerMillisecond(() => {
    formatted += 1;
    return now;
  });
  const first = stamp();
  t.equal(first, ',"time":"2026-11-28T09:00:00.123Z"', 'the same fragment pino isoTime writes');
  t.equal(stamp(), first, 'the same millisecond gives the same text');
  now += 1;
  t.equal(stamp(), ',"time":"2026-11-28T09:00:00.124Z"', 'the next millisecond is formatted anew');
  now -= 5;
  t.equal(stamp(), ',"time":"2026-11-28T09:00:00.119Z"', 'a clock stepping back is followed too');
  t.equal(formatted, 4, 'the clock is read on every line');
});
