// Run by tap before any test file (package.json "tap.before"): installs the tools the
// chart, alert and SDK interop tests need (scripts/helm.sh, scripts/promtool.sh,
// scripts/python-sdks.sh, scripts/go-sdks.sh) outside the per-file timeout, since a cold
// Helm or Go SDK build takes minutes. Instant when cached. A tool that cannot
// be installed is reported here, and the tests that need it fail with the same message
// (test/helpers/tools.ts runs the script again).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
for (const tool of ['helm', 'promtool', 'python-sdks', 'go-sdks']) {
  const result = spawnSync('bash', [`scripts/${tool}.sh`], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (result.status !== 0) {
    process.stderr.write(
      `scripts/${tool}.sh failed (exit ${String(result.status)}); the tests that need ${tool} will fail.\n`,
    );
  }
}
