import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  admissionConnectionCap,
  DEFAULT_MAX_CONNECTIONS,
  DESCRIPTOR_HEADROOM,
  readOpenFilesLimit,
} from '../../src/server/connections.js';

t.test('the connection cap leaves descriptors for the health listener', async (t) => {
  t.equal(admissionConnectionCap(undefined), DEFAULT_MAX_CONNECTIONS, 'unknown limit: 1024');
  t.equal(admissionConnectionCap(1_048_576), DEFAULT_MAX_CONNECTIONS, 'a high limit: 1024');
  t.equal(admissionConnectionCap(1024), 1024 - DESCRIPTOR_HEADROOM, '1024 descriptors: 896');
  t.equal(admissionConnectionCap(256), 128, '256 descriptors: 128');
  t.equal(admissionConnectionCap(100), 16, 'never below 16');
});

t.test('the descriptor limit is read from /proc/self/limits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ksg-limits-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'limits');
  writeFileSync(
    file,
    'Limit                     Soft Limit           Hard Limit           Units\nMax open files            4096                 524288               files\n',
  );
  t.equal(readOpenFilesLimit(file), 4096, 'the soft limit');
  writeFileSync(
    file,
    'Max open files            unlimited            unlimited            files\n',
  );
  t.equal(readOpenFilesLimit(file), undefined, 'unlimited: undefined');
  t.equal(readOpenFilesLimit(join(dir, 'missing')), undefined, 'no file: undefined');
});
