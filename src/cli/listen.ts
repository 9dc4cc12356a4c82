import { ConfigError } from '../config/errors.js';

/**
 * A port that is taken or not allowed is a configuration problem (exit 2, one line naming the
 * flag and the fix), not an unexpected error. Other errors pass through unchanged.
 */
export function listenError(error: unknown, flag: string, port: number): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'EADDRINUSE' && code !== 'EACCES') return error;
  const problem = code === 'EADDRINUSE' ? 'already in use' : 'permission denied';
  return new ConfigError(
    `cannot listen on port ${port} (${flag}): ${problem}; choose another port with ${flag} (0 = any free port).`,
  );
}
