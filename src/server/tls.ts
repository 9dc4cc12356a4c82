import { X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { ConfigError } from '../config/errors.js';
import type { Logger } from '../logging/logger.js';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile: string | undefined;
}

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
}

export const MIN_TLS_VERSION = 'TLSv1.2';

/**
 * TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AEAD ciphers only, for ECDSA
 * (`certs`) and RSA (e.g. cert-manager's default) certificates. Go's TLS client, hence the
 * API server, offers all of them. No CBC, SHA-1 MAC or RSA key exchange. TLS 1.3 suites are
 * not listed, so Node keeps its defaults for them (all AEAD).
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

async function readSetting(file: string, setting: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(
      `cannot read ${setting} file ${file} (${code}): point it at a readable PEM file, e.g. made by \`kms-secret-guard certs\`.`,
    );
  }
}

/** Reads and checks the files; a pair that does not match throws ConfigError. */
export async function readTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  const [cert, key, ca] = await Promise.all([
    readSetting(files.certFile, '--tls-cert / TLS_CERT_FILE'),
    readSetting(files.keyFile, '--tls-key / TLS_KEY_FILE'),
    files.clientCaFile === undefined
      ? undefined
      : readSetting(files.clientCaFile, '--client-ca / TLS_CLIENT_CA_FILE'),
  ]);
  const material = { cert, key, ca };
  try {
    createSecureContext(secureContextOptions(material));
  } catch (error) {
    throw new ConfigError(
      `the TLS certificate ${files.certFile} and key ${files.keyFile} cannot be used together (${error instanceof Error ? error.message : String(error)}): give a PEM certificate and its own private key.`,
    );
  }
  return material;
}

export function secureContextOptions(material: TlsMaterial): SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: MIN_TLS_VERSION,
    ciphers: TLS12_CIPHERS,
    honorCipherOrder: true,
    ...(material.ca !== undefined ? { ca: material.ca } : {}),
  };
}

/** Facts for logs: never the key. */
export function describeCertificate(cert: Buffer): Record<string, string> {
  try {
    const parsed = new X509Certificate(cert);
    return {
      subject: parsed.subject.replace(/\n/g, ', '),
      notAfter: parsed.validTo,
      fingerprint256: parsed.fingerprint256,
    };
  } catch {
    return { subject: 'unparseable certificate' };
  }
}

function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  return (
    a.cert.equals(b.cert) &&
    a.key.equals(b.key) &&
    (a.ca === undefined ? b.ca === undefined : b.ca !== undefined && a.ca.equals(b.ca))
  );
}

export interface TlsWatcher {
  /** Re-reads the files now; resolves true when new material was applied. */
  check(): Promise<boolean>;
  close(): void;
}

export interface WatchTlsOptions {
  readonly files: TlsFiles;
  readonly initial: TlsMaterial;
  readonly apply: (material: TlsMaterial) => void;
  readonly logger: Logger;
  /** Fallback poll for file systems where fs.watch misses events (default 10 s). */
  readonly pollIntervalMs?: number;
  /** Waits this long after a change event so both files of a renewal land (default 100 ms). */
  readonly debounceMs?: number;
}

/**
 * Watches the directories of the TLS files (cert-manager and the kubelet renew by swapping
 * a `..data` symlink, so watching the file itself misses it) plus a periodic poll. A
 * half-written or mismatched pair is skipped and retried on the next event or poll.
 */
export function watchTlsFiles(options: WatchTlsOptions): TlsWatcher {
  const { files, logger } = options;
  let current = options.initial;
  let closed = false;
  let running: Promise<boolean> | undefined;
  let debounce: NodeJS.Timeout | undefined;

  const reload = async (): Promise<boolean> => {
    let next: TlsMaterial;
    try {
      next = await readTlsMaterial(files);
    } catch (error) {
      logger.warn(
        { err: { message: error instanceof Error ? error.message : String(error) } },
        'TLS files changed but cannot be loaded yet; keeping the current certificate',
      );
      return false;
    }
    if (closed || sameMaterial(next, current)) return false;
    options.apply(next);
    current = next;
    logger.info({ certificate: describeCertificate(next.cert) }, 'TLS certificate reloaded');
    return true;
  };

  const check = (): Promise<boolean> => {
    // Concurrent triggers share one read.
    running ??= reload().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = (): void => {
    if (closed) return;
    if (debounce !== undefined) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = undefined;
      void check();
    }, options.debounceMs ?? 100);
    debounce.unref();
  };

  const directories = new Set(
    [files.certFile, files.keyFile, files.clientCaFile]
      .filter((file): file is string => file !== undefined)
      .map((file) => dirname(file)),
  );
  const watchers: FSWatcher[] = [];
  for (const directory of directories) {
    try {
      const watcher = watch(directory, { persistent: false }, schedule);
      watcher.on('error', (error) => {
        logger.warn({ directory, err: { message: error.message } }, 'TLS directory watch failed');
      });
      watchers.push(watcher);
    } catch (error) {
      logger.warn(
        { directory, err: { message: error instanceof Error ? error.message : String(error) } },
        'cannot watch the TLS directory; relying on the periodic check',
      );
    }
  }
  const poll = setInterval(() => void check(), options.pollIntervalMs ?? 10_000);
  poll.unref();

  return {
    check,
    close() {
      closed = true;
      clearInterval(poll);
      if (debounce !== undefined) clearTimeout(debounce);
      for (const watcher of watchers) watcher.close();
    },
  };
}
