// `certs --force` against hostile targets, run as the built CLI: symlinks and hard links are
// refused (the private key never lands where a link points), and files are replaced by rename
// from exclusively created temporary files with their final mode, leaving none behind.
import t from 'tap';
import { execFile } from 'node:child_process';
import {
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  closeSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH, missingBuild } from '../helpers/reliability.js';

function certs(out: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_PATH, 'certs', '--out', out, '--force'],
      (error, _stdout, stderr) => {
        resolve({ code: error === null ? 0 : Number(error.code ?? 1), stderr });
      },
    );
  });
}

function folder(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ksg-certs-hardening-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

const noTemps = (out: string): string[] => readdirSync(out).filter((name) => name.endsWith('.tmp'));

t.test(
  'certs --force refuses links and replaces atomically',
  { skip: missingBuild() ?? false },
  async (t) => {
    await t.test('a symlinked tls.key is refused, its target untouched', async (t) => {
      const dir = folder(t);
      const out = join(dir, 'out');
      mkdirSync(out);
      const victim = join(dir, 'someone-elses-file');
      writeFileSync(victim, 'not yours');
      symlinkSync(victim, join(out, 'tls.key'));
      const run = await certs(out);
      t.equal(run.code, 2, 'exit code 2');
      t.match(
        run.stderr,
        /tls\.key is a symbolic link: certs never writes through it/,
        'names the file',
      );
      t.equal(readFileSync(victim, 'utf8'), 'not yours', 'the link target is unchanged');
      t.same(readdirSync(out).sort(), ['tls.key'], 'nothing else was written');
    });

    await t.test('a hard-linked tls.crt is refused', async (t) => {
      const dir = folder(t);
      const out = join(dir, 'out');
      mkdirSync(out);
      const other = join(dir, 'other-name');
      writeFileSync(other, 'shared');
      linkSync(other, join(out, 'tls.crt'));
      const run = await certs(out);
      t.equal(run.code, 2, 'exit code 2');
      t.match(run.stderr, /tls\.crt has 2 hard links/, 'names the file and the links');
      t.equal(readFileSync(other, 'utf8'), 'shared', 'the other name is unchanged');
    });

    await t.test('a target that is not a regular file is refused', async (t) => {
      const out = join(folder(t), 'out');
      mkdirSync(join(out, 'ca.crt'), { recursive: true });
      const run = await certs(out);
      t.equal(run.code, 2, 'exit code 2');
      t.match(run.stderr, /ca\.crt is not a regular file/, 'names the file');
      t.same(noTemps(out), [], 'no temporary file left');
    });

    await t.test('replacement is a rename: an open reader keeps the old key whole', async (t) => {
      const out = join(folder(t), 'out');
      t.equal((await certs(out)).code, 0, 'first run writes the files');
      const oldKey = readFileSync(join(out, 'tls.key'));
      const reader = openSync(join(out, 'tls.key'), 'r');
      t.teardown(() => {
        closeSync(reader);
      });
      const inode = statSync(join(out, 'tls.key')).ino;
      t.equal((await certs(out)).code, 0, '--force replaces them');
      const seen = Buffer.alloc(oldKey.length);
      readSync(reader, seen, 0, seen.length, 0);
      t.same(seen, oldKey, 'the old file was never written in place');
      t.not(statSync(join(out, 'tls.key')).ino, inode, 'a new file took the name');
      t.equal(statSync(join(out, 'tls.key')).mode & 0o777, 0o600, 'tls.key is 0600');
      t.equal(statSync(join(out, 'tls.crt')).mode & 0o777, 0o644, 'tls.crt is 0644');
      t.equal(statSync(join(out, 'ca.crt')).mode & 0o777, 0o644, 'ca.crt is 0644');
      t.same(noTemps(out), [], 'no temporary file left');
    });
  },
);
