/**
 * The unix socket file: a stale one (left by a killed plugin) is replaced, a live one or
 * anything that is not a socket is refused, the folder is created owner-only.
 */
import { chmod, lstat, mkdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';

export class SocketInUseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SocketInUseError';
  }
}

export const SOCKET_MODE = 0o600;
export const SOCKET_DIR_MODE = 0o700;
const PROBE_TIMEOUT_MS = 1000;

/** Resolves true when something accepts connections on the socket. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (live: boolean): void => {
      socket.destroy();
      resolve(live);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => {
      // Accepted but silent is still a listener.
      done(true);
    });
    socket.once('connect', () => {
      done(true);
    });
    socket.once('error', () => {
      done(false);
    });
  });
}

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Makes `path` free to bind: creates the folder (0700) or removes a stale socket. */
export async function prepareSocketPath(path: string): Promise<void> {
  const folder = dirname(path);
  const created = await mkdir(folder, { recursive: true, mode: SOCKET_DIR_MODE });
  // mkdir's mode passes through the umask; make the folder we created owner-only for sure.
  if (created !== undefined) await chmod(folder, SOCKET_DIR_MODE);
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) {
    throw new SocketInUseError(
      `${path} exists and is not a unix socket: remove it or choose another --listen path.`,
    );
  }
  if (await answers(path)) {
    throw new SocketInUseError(
      `another process is listening on ${path}: stop it (or choose another --listen path) and start again.`,
    );
  }
  await rm(path, { force: true });
}

/** Owner-only permissions on the bound socket: kube-apiserver runs as the same user (root). */
export async function restrictSocket(path: string): Promise<void> {
  await chmod(path, SOCKET_MODE);
}

/** Removes the socket file if it is still a socket (never another file put in its place). */
export async function removeSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await rm(path, { force: true });
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
}
