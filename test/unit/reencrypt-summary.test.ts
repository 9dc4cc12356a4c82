import t from 'tap';
import {
  progressLine,
  summaryJson,
  summaryText,
  sweepExitCode,
} from '../../src/reencrypt/summary.js';
import type { SweepSummary } from '../../src/reencrypt/sweep.js';

const done: SweepSummary = {
  dryRun: false,
  keyId: 'key-1',
  primaryKeyVersion: 'v3',
  rotationTime: '2026-11-28T09:00:00Z',
  settledAt: '2026-11-28T09:05:00Z',
  scanned: 30,
  stale: 18,
  rewritten: 18,
  skipped: 0,
  failed: 0,
  refused: 0,
  byVersion: { current: 12, unstamped: 3, beforeSettle: 0, older: { v1: 6, v2: 9 } },
  wouldRewrite: 0,
  listRestarts: 0,
  interrupted: false,
  fatalError: undefined,
  durationSeconds: 1.5,
};

t.test('the summary says what was scanned and done', async (t) => {
  const text = summaryText(done);
  t.match(
    text,
    /key key-1, primary version v3, rotated 2026-11-28T09:00:00Z, settled 2026-11-28T09:05:00Z/,
    'the target and when its rotation settled',
  );
  t.match(
    text,
    /scanned 30 Secrets in 1.5s: 12 current, 0 stamped current but last written before the rotation settled, 3 unstamped, 15 under older versions \(v1: 6, v2: 9\)/,
    'counts',
  );
  t.match(text, /stale 18, rewritten 18, skipped 0 .*, failed 0/, 'outcome');
  t.equal(sweepExitCode(done), 0, 'exit 0');
  t.same(
    JSON.parse(summaryJson(done)),
    { ...done, fatalError: null },
    'JSON round-trips; fatalError is null when absent',
  );
});

t.test('dry run, failures, interruption and fatal errors', async (t) => {
  t.match(
    summaryText({ ...done, dryRun: true, rewritten: 0, wouldRewrite: 18 }),
    /dry run: 18 Secrets would be rewritten; nothing was changed/,
    'dry run',
  );
  const failed = { ...done, rewritten: 17, failed: 1 };
  t.match(summaryText(failed), /1 Secrets failed .*run again/, 'failure hint');
  t.equal(sweepExitCode(failed), 1, 'failures exit 1');
  const interrupted = { ...done, rewritten: 5, interrupted: true };
  t.match(summaryText(interrupted), /interrupted; run again to continue/, 'interrupted');
  t.equal(sweepExitCode(interrupted), 1, 'interrupted exits 1');
  const fatal = { ...done, rewritten: 0, failed: 1, fatalError: 'forbidden: no' };
  t.match(summaryText(fatal), /stopped: forbidden: no/, 'fatal');
  t.equal(sweepExitCode(fatal), 1, 'fatal exits 1');
});

t.test('progress lines are JSON', async (t) => {
  const line = progressLine({
    scanned: 10,
    stale: 4,
    rewritten: 2,
    skipped: 0,
    failed: 0,
    estimatedTotal: undefined,
    elapsedMs: 1234,
  });
  t.same(
    JSON.parse(line),
    {
      event: 'reencrypt.progress',
      scanned: 10,
      estimatedTotal: null,
      stale: 4,
      rewritten: 2,
      skipped: 0,
      failed: 0,
      elapsedSeconds: 1.2,
    },
    'one JSON object',
  );
});
