import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { captureContext, runCaptured } from '../helpers/cli.js';
import { buildProgram } from '../../src/cli/program.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function certs(args: readonly string[]): Promise<Run> {
  return runCaptured(['certs', ...args]);
}

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'certs-cli-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

t.test('certs writes ca.crt, tls.crt and tls.key for the default Service', async (t) => {
  const out = join(tempDir(t), 'certs');
  const run = await certs(['--out', out]);
  t.equal(run.code, 0, 'exit code 0');
  t.equal(run.stderr, '', 'nothing on stderr');

  const caPem = readFileSync(join(out, 'ca.crt'), 'utf8');
  const ca = new X509Certificate(caPem);
  const cert = new X509Certificate(readFileSync(join(out, 'tls.crt')));
  t.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'tls.crt is signed by ca.crt');
  for (const name of [
    'kms-secret-guard',
    'kms-secret-guard.kms-secret-guard',
    'kms-secret-guard.kms-secret-guard.svc',
    'kms-secret-guard.kms-secret-guard.svc.cluster.local',
  ]) {
    t.ok(cert.checkHost(name), `certificate is valid for ${name}`);
  }
  t.match(cert.subject, /CN=kms-secret-guard\.kms-secret-guard\.svc/, 'CN is name.ns.svc');
  t.equal(statSync(join(out, 'tls.key')).mode & 0o777, 0o600, 'tls.key is 0600');
  t.match(readFileSync(join(out, 'tls.key'), 'utf8'), /BEGIN PRIVATE KEY/, 'tls.key is PKCS#8');

  const caBundle = Buffer.from(caPem).toString('base64');
  t.ok(run.stdout.split('\n').includes(caBundle), 'stdout has the caBundle on a line of its own');
  t.match(run.stdout, join(out, 'tls.crt'), 'stdout says where the files went');
  const days = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(days > 364 && days <= 365, 'serving certificate valid for 365 days by default');
  const caDays = (new Date(ca.validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(caDays > 3649 && caDays <= 3650, 'CA valid for 3650 days by default');
});

t.test('service, namespace, extra names, IPs and validity flags', async (t) => {
  const out = tempDir(t);
  const run = await certs([
    '--service',
    'guard',
    '--namespace',
    'security',
    '--dns-name',
    'guard.example.com',
    '--dns-name',
    'localhost',
    '--ip',
    '127.0.0.1',
    '--ip',
    '::1',
    '--days',
    '30',
    '--ca-days',
    '60',
    '--out',
    out,
  ]);
  t.equal(run.code, 0, 'exit code 0');
  const cert = new X509Certificate(readFileSync(join(out, 'tls.crt')));
  const ca = new X509Certificate(readFileSync(join(out, 'ca.crt')));
  for (const name of [
    'guard',
    'guard.security',
    'guard.security.svc',
    'guard.security.svc.cluster.local',
    'guard.example.com',
    'localhost',
  ]) {
    t.ok(cert.checkHost(name), `certificate is valid for ${name}`);
  }
  t.ok(cert.checkIP('127.0.0.1'), 'IPv4 SAN present');
  t.ok(cert.checkIP('::1'), 'IPv6 SAN present');
  const days = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(days > 29 && days <= 30, '--days sets the serving validity');
  const caDays = (new Date(ca.validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(caDays > 59 && caDays <= 60, '--ca-days sets the CA validity');
  t.match(run.stdout, /IP addresses: 127\.0\.0\.1, ::1/, 'stdout lists the IP addresses');
});

t.test('long Service and namespace names keep the CN within 64 characters', async (t) => {
  const out = tempDir(t);
  const service = 's'.repeat(40);
  const namespace = 'n'.repeat(40);
  const run = await certs(['--service', service, '--namespace', namespace, '--out', out]);
  t.equal(run.code, 0, 'exit code 0');
  const cert = new X509Certificate(readFileSync(join(out, 'tls.crt')));
  t.match(cert.subject, new RegExp(`^CN=${service}$`), 'CN falls back to the Service name');
  t.ok(cert.checkHost(`${service}.${namespace}.svc`), 'the SANs still carry name.ns.svc');
});

t.test('existing files are never overwritten without --force', async (t) => {
  const out = tempDir(t);
  writeFileSync(join(out, 'tls.crt'), 'keep me');
  const refused = await certs(['--out', out]);
  t.equal(refused.code, 2, 'exit code 2');
  t.match(
    refused.stderr,
    /tls\.crt already exists: pass --force/,
    'the error names the file and fix',
  );
  t.equal(readFileSync(join(out, 'tls.crt'), 'utf8'), 'keep me', 'tls.crt untouched');
  t.throws(() => readFileSync(join(out, 'ca.crt')), 'nothing else was written either');

  writeFileSync(join(out, 'tls.key'), 'old key', { mode: 0o644 });
  const forced = await certs(['--out', out, '--force']);
  t.equal(forced.code, 0, '--force succeeds');
  t.match(readFileSync(join(out, 'tls.crt'), 'utf8'), /BEGIN CERTIFICATE/, 'tls.crt replaced');
  t.equal(statSync(join(out, 'tls.key')).mode & 0o777, 0o600, 'a replaced tls.key is 0600 too');

  const again = await certs(['--out', out]);
  t.equal(again.code, 2, 'a second run without --force is refused');
  t.match(
    again.stderr,
    /ca\.crt, .*tls\.crt, .*tls\.key already exist: pass --force/,
    'all three are named',
  );
});

t.test('bad flags exit 2 with one clear line', async (t) => {
  const out = tempDir(t);
  const cases: [string[], RegExp, string][] = [
    [['--days', '0'], /--days must be a whole number of days/, 'zero days'],
    [['--days', 'ten'], /--days must be a whole number of days/, 'non-numeric days'],
    [['--ca-days', '-1'], /--ca-days must be a whole number/, 'negative CA days'],
    [['--days', '400', '--ca-days', '300'], /raise --ca-days or lower --days/, 'CA shorter'],
    [['--ip', 'not-an-ip'], /"not-an-ip" is not an IPv4 or IPv6 address/, 'bad IP'],
    [['--service', 'Bad_Name'], /not a valid DNS name/, 'bad service name'],
    [['--dns-name', 'a..b'], /"a..b" is not a valid DNS name/, 'bad extra name'],
  ];
  for (const [args, message, label] of cases) {
    const run = await certs([...args, '--out', out]);
    t.equal(run.code, 2, `${label}: exit code 2`);
    t.match(run.stderr, message, `${label}: message names the problem`);
    t.equal(run.stderr.trim().split('\n').length, 1, `${label}: one line`);
  }
  const notAFolder = join(out, 'file');
  writeFileSync(notAFolder, '');
  const onFile = await certs(['--out', notAFolder]);
  t.equal(onFile.code, 2, '--out naming a file exits 2');
  t.match(onFile.stderr, /exists and is not a folder: give --out a folder/, 'says so');
  const run = await certs(['--out', join(notAFolder, 'sub')]);
  t.equal(run.code, 2, 'an unwritable --out exits 2');
  t.match(
    run.stderr,
    /cannot write the certificate files into .*choose a writable --out/,
    'says why',
  );
});

t.test('certs --help documents every flag', async (t) => {
  const run = await certs(['--help']);
  t.equal(run.code, 0, 'help exits 0');
  for (const flag of [
    '--service',
    '--namespace',
    '--dns-name',
    '--ip',
    '--days',
    '--ca-days',
    '--out',
    '--force',
  ]) {
    t.match(run.stdout, flag, `help lists ${flag}`);
  }
});

t.test('certs --help reads like the other commands: a capitalized sentence', async (t) => {
  const run = await certs(['--help']);
  t.match(run.stdout, /\nMake a CA and a serving certificate/, 'certs help starts capitalized');
  for (const command of buildProgram(captureContext().ctx).commands) {
    t.match(command.description(), /^[A-Z].*\.$/s, `${command.name()} description`);
  }
});
