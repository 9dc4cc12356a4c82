import t from 'tap';
import {
  DEFAULT_BACKOFF,
  failureKindOfStatus,
  isFatal,
  isRetryable,
  parseRetryAfter,
} from '../../src/reencrypt/retry.js';

t.test('HTTP statuses map to retry decisions', async (t) => {
  t.equal(failureKindOfStatus(409), 'conflict', '409');
  t.equal(failureKindOfStatus(404), 'notFound', '404');
  t.equal(failureKindOfStatus(403), 'forbidden', '403');
  t.equal(
    failureKindOfStatus(403, 'admission webhook "policy.example.com" denied the request: no'),
    'rejected',
    "a webhook's 403 concerns one Secret",
  );
  t.equal(failureKindOfStatus(401), 'unauthorized', '401');
  t.equal(failureKindOfStatus(429), 'throttled', '429');
  t.equal(failureKindOfStatus(410), 'expired', '410');
  t.equal(failureKindOfStatus(503), 'serverError', '503');
  t.equal(failureKindOfStatus(422), 'rejected', '422');
  for (const kind of ['conflict', 'throttled', 'serverError', 'network'] as const) {
    t.ok(isRetryable(kind), `${kind} is retried`);
  }
  for (const kind of ['forbidden', 'unauthorized', 'notFound', 'rejected', 'expired'] as const) {
    t.notOk(isRetryable(kind), `${kind} is not retried`);
  }
  t.ok(isFatal('forbidden'), '403 stops the sweep');
  t.ok(isFatal('unauthorized'), '401 stops the sweep');
  t.notOk(isFatal('throttled'), '429 does not');
});

t.test('the sweep retries each request up to five times', async (t) => {
  t.equal(DEFAULT_BACKOFF.maxAttempts, 5, 'five attempts by default');
});

t.test('Retry-After: seconds or an HTTP date', async (t) => {
  t.equal(parseRetryAfter('3', 0), 3, 'delta seconds');
  t.equal(parseRetryAfter(undefined, 0), undefined, 'absent');
  t.equal(parseRetryAfter('soon', 0), undefined, 'garbage');
  const now = Date.parse('2026-11-28T09:00:00Z');
  t.equal(parseRetryAfter('Sat, 28 Nov 2026 09:00:05 GMT', now), 5, 'HTTP date');
  t.equal(parseRetryAfter('Sat, 28 Nov 2026 08:00:00 GMT', now), 0, 'a past date means now');
});
