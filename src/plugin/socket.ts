/**
 * The unix socket file: a stale one (left by a killed plugin) is replaced, a live one or
 * anything that is not a socket is refused, the folder is created owner-only, and the socket
 * is bound in a private folder and renamed into place, so it is owner-only from the moment it
 * can be reached (no process-wide umask change, which would race with other file creation).
 */
import { chmod, lstat, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, dirname, join } from 'node:path';

export class SocketInUseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SocketInUseError';
  }
}

/** The --listen path is not usable (too long for the temporary socket name). */
export class SocketPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SocketPathError';
  }
}

export const SOCKET_MODE = 0o600;
/** Linux limits a unix socket path to 107 bytes (sun_path). */
const MAX_SOCKET_PATH_BYTES = 107;
/** mkdtemp's six random characters. */
const TEMP_SUFFIX = /^[A-Za-z0-9]{6}$/;
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

/** `<folder>/.<name>.` : mkdtemp adds six characters; the socket inside is `s`. */
function privatePrefix(path: string): string {
  return join(dirname(path), `.${basename(path)}.`);
}

/** Removes private folders a killed plugin left for this socket name (never another name's). */
async function removeLeftovers(path: string): Promise<void> {
  const prefix = basename(privatePrefix(path));
  const folder = dirname(path);
  for (const entry of await readdir(folder)) {
    if (entry.startsWith(prefix) && TEMP_SUFFIX.test(entry.slice(prefix.length))) {
      await rm(join(folder, entry), { recursive: true, force: true });
    }
  }
}

/**
 * Binds the socket owner-only: `bind` gets a path in a fresh 0700 folder next to `path` (no
 * other user can reach a socket in it), the socket is made 0600 there and renamed to `path`
 * (same filesystem, atomic; it replaces a stale socket). Call after prepareSocketPath.
 */
export async function bindPrivately(
  path: string,
  bind: (temporaryPath: string) => Promise<void>,
): Promise<void> {
  const temporaryLength = Buffer.byteLength(privatePrefix(path)) + 8;
  if (temporaryLength > MAX_SOCKET_PATH_BYTES) {
    throw new SocketPathError(
      `--listen / KMS_PLUGIN_SOCKET ${path} is too long: the plugin binds it first as a temporary socket ${temporaryLength - Buffer.byteLength(path)} bytes longer, and unix socket paths hold at most ${MAX_SOCKET_PATH_BYTES} bytes; choose a shorter path.`,
    );
  }
  await removeLeftovers(path);
  const privateFolder = await mkdtemp(privatePrefix(path));
  const temporary = join(privateFolder, 's');
  try {
    await bind(temporary);
    await chmod(temporary, SOCKET_MODE);
    await rename(temporary, path);
  } finally {
    await rm(privateFolder, { recursive: true, force: true });
  }
}

/** Removes the socket file if it is still a socket (never another file put in its place). */
export async function removeSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await rm(path, { force: true });
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
}
