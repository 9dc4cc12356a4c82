import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { StoreSnapshot } from './store.js';

/**
 * State file: JSON with every key, its versions (including AES material) and aliases.
 * Written atomically (temp file + rename) so a crash never leaves half a file; mode 0600
 * because it holds key material.
 */
export function loadState(path: string): StoreSnapshot | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const parsed = JSON.parse(text) as Partial<StoreSnapshot>;
  if (parsed.format !== 1 || !Array.isArray(parsed.keys) || !Array.isArray(parsed.aliases)) {
    throw new Error(`${path} is not a kms-emulator state file (format 1)`);
  }
  return parsed as StoreSnapshot;
}

export function saveState(path: string, snapshot: StoreSnapshot): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(snapshot, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, path);
}
