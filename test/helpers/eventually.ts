/**
 * Waiting for effects the test does not drive step by step (other processes, fs.watch,
 * timers in a real server): one polling loop with a deadline. Code under a fake clock
 * moves time explicitly instead (./clock.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

export interface WaitOptions {
  /** Give up after this long (wall clock). */
  readonly timeoutMs: number;
  /** Pause between two checks (default 50 ms). */
  readonly intervalMs?: number;
  /** Checked before each try: a text stops the wait at once with that reason. */
  readonly abortIf?: () => string | undefined;
}

/**
 * Polls `check` until it returns a value other than undefined, and returns it; a throwing
 * check counts as "not yet". Throws, naming `what` and the last failure seen, when the
 * deadline passed.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  options: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError = '';
  for (;;) {
    const abort = options.abortIf?.();
    if (abort !== undefined) throw new Error(`gave up waiting for ${what}: ${abort}`);
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${options.timeoutMs}ms waiting for ${what}${lastError === '' ? '' : ` (last error: ${lastError})`}`,
      );
    }
    await sleep(options.intervalMs ?? 50);
  }
}

/**
 * True once `condition` held within `timeoutMs` (default 5 s), false after: for assertions
 * (`t.ok(await eventually(…), '…')`). A throwing condition counts as "not yet".
 */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 5_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<boolean> {
  try {
    await waitFor('a condition', async () => ((await condition()) ? true : undefined), {
      timeoutMs,
      intervalMs,
    });
    return true;
  } catch {
    return false;
  }
}
