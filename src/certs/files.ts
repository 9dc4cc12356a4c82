import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { ConfigError } from '../config/errors.js';
import type { GeneratedCertificates } from './generate.js';

/** Where `certs` writes: the names a kubernetes.io/tls Secret and a caBundle expect. */
export interface CertificateFiles {
  readonly folder: string;
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

export function certificateFiles(folder: string): CertificateFiles {
  const absolute = resolve(folder);
  return {
    folder: absolute,
    caCert: join(absolute, 'ca.crt'),
    cert: join(absolute, 'tls.crt'),
    key: join(absolute, 'tls.key'),
  };
}

interface Planned {
  readonly path: string;
  readonly text: string;
  readonly mode: number;
  temp?: string | undefined;
}

/** New files only, never through a symlink, never onto an existing name. */
const EXCLUSIVE_CREATE =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

async function checkFolder(folder: string): Promise<void> {
  const found = await stat(folder).catch(() => undefined);
  if (found !== undefined && !found.isDirectory()) {
    throw new ConfigError(
      `${folder} exists and is not a folder: give --out a folder (it is created when missing).`,
    );
  }
}

/**
 * A target that exists must be a plain file with one link: replacing a symlink or a hard link
 * would write the private key where the link points (perhaps a file another user owns).
 * Returns whether it exists.
 */
async function checkTarget(path: string): Promise<boolean> {
  const found = await lstat(path).catch(() => undefined);
  if (found === undefined) return false;
  if (found.isSymbolicLink() || !found.isFile()) {
    throw new ConfigError(
      `${path} is ${found.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}: certs never writes through it; remove it or choose another --out folder.`,
    );
  }
  if (found.nlink > 1) {
    throw new ConfigError(
      `${path} has ${found.nlink} hard links: replacing it would change the other names too; remove it or choose another --out folder.`,
    );
  }
  return true;
}

function refuseExisting(existing: readonly string[]): never {
  throw new ConfigError(
    `${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}: pass --force to replace ${existing.length === 1 ? 'it' : 'them'} (the caBundle in the webhook configurations must then be updated too), or choose another --out folder.`,
  );
}

/** Writes one temporary file next to its target, created exclusively with its final mode. */
async function writeTemp(file: Planned): Promise<void> {
  const temp = join(
    resolve(file.path, '..'),
    `.${basename(file.path)}.${randomBytes(6).toString('hex')}.tmp`,
  );
  const handle = await open(temp, EXCLUSIVE_CREATE, file.mode);
  file.temp = temp;
  try {
    await handle.writeFile(file.text);
    // The umask may have narrowed the mode at creation; the handle is our own new file.
    await handle.chmod(file.mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function removeTemps(planned: readonly Planned[]): Promise<void> {
  for (const file of planned) {
    if (file.temp !== undefined) await unlink(file.temp).catch(() => undefined);
  }
}

/** Moves each temporary file onto its name: rename (replace) with --force, else link (no clobber). */
async function moveIntoPlace(planned: readonly Planned[], force: boolean): Promise<void> {
  for (const file of planned) {
    const temp = file.temp;
    if (temp === undefined) continue;
    if (force) await rename(temp, file.path);
    else {
      await link(temp, file.path);
      await unlink(temp);
    }
    file.temp = undefined;
  }
}

function writeError(folder: string, error: unknown): ConfigError {
  if (error instanceof ConfigError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new ConfigError(
    `cannot write the certificate files into ${folder} (${reason}): choose a writable --out folder.`,
  );
}

/**
 * Writes ca.crt, tls.crt (0644) and tls.key (0600): all three go to temporary files in the
 * same folder first (exclusive, no-follow creation, final mode), then onto their names, so a
 * failure leaves the old files (or none) and no key is ever readable by others, even briefly.
 * Without force, refuses before writing anything if one of them exists; with force, refuses
 * targets that are symlinks, hard links or not regular files.
 */
export async function writeCertificateFiles(
  files: CertificateFiles,
  generated: GeneratedCertificates,
  options: { force: boolean },
): Promise<void> {
  const planned: Planned[] = [
    { path: files.caCert, text: generated.caCert, mode: 0o644 },
    { path: files.cert, text: generated.cert, mode: 0o644 },
    { path: files.key, text: generated.key, mode: 0o600 },
  ];
  await checkFolder(files.folder);
  const existing: string[] = [];
  for (const file of planned) if (await checkTarget(file.path)) existing.push(file.path);
  if (!options.force && existing.length > 0) refuseExisting(existing);
  try {
    await mkdir(files.folder, { recursive: true });
    for (const file of planned) await writeTemp(file);
    await moveIntoPlace(planned, options.force);
  } catch (error) {
    await removeTemps(planned);
    throw writeError(files.folder, error);
  }
}
