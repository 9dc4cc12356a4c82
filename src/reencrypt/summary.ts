import type { SweepProgress, SweepSummary } from './sweep.js';

/** Human and machine renderings of the sweep's progress and summary (pure). */

export function progressLine(progress: SweepProgress): string {
  return JSON.stringify({
    event: 'reencrypt.progress',
    scanned: progress.scanned,
    estimatedTotal: progress.estimatedTotal ?? null,
    stale: progress.stale,
    rewritten: progress.rewritten,
    skipped: progress.skipped,
    failed: progress.failed,
    elapsedSeconds: Math.round(progress.elapsedMs / 100) / 10,
  });
}

export function summaryJson(summary: SweepSummary): string {
  // null rather than absent: scripts see a stable set of fields.
  return JSON.stringify({ ...summary, fatalError: summary.fatalError ?? null }, null, 2);
}

export function summaryText(summary: SweepSummary): string {
  const { byVersion } = summary;
  const olderEntries = Object.entries(byVersion.older);
  const olderTotal = olderEntries.reduce((sum, [, count]) => sum + count, 0);
  const olderDetail =
    olderEntries.length === 0
      ? ''
      : ` (${olderEntries.map(([version, count]) => `${version}: ${count}`).join(', ')})`;
  const lines = [
    `key ${summary.keyId}, primary version ${summary.primaryKeyVersion}, rotated ${summary.rotationTime}, settled ${summary.settledAt}`,
    `scanned ${summary.scanned} Secrets in ${summary.durationSeconds}s: ${byVersion.current} current, ${byVersion.beforeSettle} stamped current but last written before the rotation settled, ${byVersion.unstamped} unstamped, ${olderTotal} under older versions${olderDetail}`,
  ];
  if (summary.dryRun) {
    lines.push(`dry run: ${summary.wouldRewrite} Secrets would be rewritten; nothing was changed.`);
  } else {
    lines.push(
      `stale ${summary.stale}, rewritten ${summary.rewritten}, skipped ${summary.skipped} (deleted or already current), failed ${summary.failed}`,
    );
  }
  if (summary.refused > 0) {
    lines.push(
      `refused ${summary.refused} list item(s) that carried Secret data (counted as failed; the data was neither kept nor shown)`,
    );
  }
  if (summary.listRestarts > 0) {
    lines.push(
      `the list restarted ${summary.listRestarts} time(s) after an expired continue token`,
    );
  }
  if (summary.fatalError !== undefined) lines.push(`stopped: ${summary.fatalError}`);
  if (summary.interrupted) {
    lines.push('interrupted; run again to continue (Secrets already rewritten are skipped).');
  } else if (summary.failed > 0 && summary.fatalError === undefined) {
    lines.push(`${summary.failed} Secrets failed (see the lines above); run again to retry them.`);
  }
  return `${lines.join('\n')}\n`;
}

/** 0 when every stale Secret was handled; 1 when some failed, the sweep stopped or was interrupted. */
export function sweepExitCode(summary: SweepSummary): 0 | 1 {
  return summary.failed > 0 || summary.interrupted || summary.fatalError !== undefined ? 1 : 0;
}
