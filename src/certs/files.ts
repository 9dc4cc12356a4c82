import { access, chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
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

/**
 * Writes ca.crt, tls.crt and tls.key (0600). Without force, refuses before writing
 * anything if one of them exists, so a working certificate is never half-replaced.
 */
export async function writeCertificateFiles(
  files: CertificateFiles,
  generated: GeneratedCertificates,
  options: { force: boolean },
): Promise<void> {
  const contents: [path: string, text: string, mode: number][] = [
    [files.caCert, generated.caCert, 0o644],
    [files.cert, generated.cert, 0o644],
    [files.key, generated.key, 0o600],
  ];
  const folder = await stat(files.folder).catch(() => undefined);
  if (folder !== undefined && !folder.isDirectory()) {
    throw new ConfigError(
      `${files.folder} exists and is not a folder: give --out a folder (it is created when missing).`,
    );
  }
  if (!options.force) {
    const existing: string[] = [];
    for (const [path] of contents) if (await exists(path)) existing.push(path);
    if (existing.length > 0) {
      throw new ConfigError(
        `${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}: pass --force to replace ${existing.length === 1 ? 'it' : 'them'} (the caBundle in the webhook configurations must then be updated too), or choose another --out folder.`,
      );
    }
  }
  try {
    await mkdir(files.folder, { recursive: true });
    for (const [path, text, mode] of contents) {
      // 'wx' also closes the race between the check above and the write.
      await writeFile(path, text, { mode, flag: options.force ? 'w' : 'wx' });
      // writeFile's mode only applies to new files; an overwritten key must still end up 0600.
      await chmod(path, mode);
    }
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(
      `cannot write the certificate files into ${files.folder} (${reason}): choose a writable --out folder.`,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
