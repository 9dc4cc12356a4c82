// The command-line tools the chart and alert tests run, each installed by its project
// script into the git-ignored .cache/ (scripts/helm.sh, scripts/promtool.sh). A tool that
// cannot be installed fails the test that needs it, with the script's own explanation:
// these tests never skip.
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './manifests.js';

export type ProjectTool = 'helm' | 'promtool';

const installed = new Map<ProjectTool, string>();

/** The path of the tool, installed by scripts/<tool>.sh (a no-op once cached). */
export function projectTool(tool: ProjectTool): string {
  const known = installed.get(tool);
  if (known !== undefined) return known;
  const script = join(REPO_ROOT, 'scripts', `${tool}.sh`);
  let path: string;
  try {
    path = execFileSync('bash', [script], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      // A cold Helm build from the Go module proxy takes minutes on two shared cores.
      timeout: 20 * 60_000,
    }).trim();
  } catch (error) {
    const { stderr, status } = error as { stderr?: string; status?: number | null };
    throw new Error(
      `scripts/${tool}.sh could not install ${tool} (exit ${String(status)}), which this test needs. ` +
        `Run it by hand to see why and fix that; its last words:\n${(stderr ?? '').trim().split('\n').slice(-8).join('\n')}`,
    );
  }
  installed.set(tool, path);
  return path;
}

export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs an installed project tool; resolves with its exit code instead of throwing. */
export function runTool(
  tool: ProjectTool,
  args: readonly string[],
  options: { input?: string; cwd?: string; env?: Record<string, string> } = {},
): Promise<ToolResult> {
  const binary = projectTool(tool);
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      [...args],
      {
        cwd: options.cwd ?? REPO_ROOT,
        env: { ...process.env, ...options.env },
        timeout: 120_000,
        maxBuffer: 32 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}
