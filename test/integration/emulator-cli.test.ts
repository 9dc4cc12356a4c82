import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import TeaUtil from '@alicloud/tea-util';
import t from 'tap';
import { runCli } from '../../src/cli/program.js';
import { generateCertificates } from '../../src/certs/generate.js';
import { captureContext, occupyPort } from '../helpers/cli.js';
import { eventually } from '../helpers/eventually.js';
import { Kms, sdkFor } from '../helpers/emulator.js';
import type { RunningEmulator } from '../../src/emulator/index.js';

interface Started {
  output: () => string;
  errors: () => string;
  stop: () => Promise<number>;
  done: Promise<number>;
}

/** Runs `kms-emulator ARGS` in-process until the banner is printed (or the command ends). */
async function startCli(
  t: { teardown(fn: () => unknown): void },
  args: string[],
): Promise<Started> {
  const captured = captureContext();
  let ended = false;
  const done = runCli(['kms-emulator', ...args], captured.ctx).finally(() => {
    ended = true;
  });
  t.teardown(async () => {
    captured.stop();
    await done.catch(() => undefined);
  });
  await eventually(() => ended || captured.stdout().includes('Try:'), {
    timeoutMs: 10_000,
    intervalMs: 10,
  });
  return {
    output: captured.stdout,
    errors: captured.stderr,
    stop: async () => {
      captured.stop();
      return done;
    },
    done,
  };
}

function field(output: string, name: string): string {
  const match = new RegExp(`${name}:\\s+(\\S+)`).exec(output);
  if (!match?.[1]) throw new Error(`no "${name}" in the banner:\n${output}`);
  return match[1];
}

/** Enough of a RunningEmulator (read from the banner) for sdkFor(). */
function fromBanner(output: string): RunningEmulator {
  return {
    endpoint: field(output, 'endpoint'),
    protocol: field(output, 'protocol') as 'http' | 'https',
    regionId: field(output, 'region'),
    accessKeyId: field(output, 'access key id'),
    accessKeySecret: field(output, 'access key secret'),
  } as RunningEmulator;
}

t.test(
  'starts, prints endpoint, credentials, keys and a check example; stops on abort',
  async (t) => {
    const cli = await startCli(t, [
      '--key',
      'dev-key',
      '--key',
      'other-key',
      '--log-level',
      'silent',
    ]);
    const out = cli.output();
    t.match(out, /kms-emulator listening on http:\/\/127\.0\.0\.1:\d+/, 'prints the URL');
    t.match(out, /endpoint:\s+127\.0\.0\.1:\d+/, 'prints the endpoint');
    t.match(out, /region:\s+cn-hangzhou/, 'prints the region');
    t.match(out, /access key id:\s+LTAI\w{20}/, 'prints a generated access key id');
    t.match(out, /access key secret:\s+\w{30}/, 'prints its generated secret');
    t.match(out, /keys:\s+dev-key, other-key/, 'prints the seeded keys');
    t.match(
      out,
      /kms-secret-guard check --kms-key-id dev-key --kms-endpoint 127\.0\.0\.1:\d+ --kms-protocol http/,
      'prints an example check command',
    );
    const sdk = sdkFor(fromBanner(out));
    const d = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId: 'dev-key' }));
    t.equal(
      d.keyMetadata.keyState,
      'Enabled',
      'the printed endpoint and credentials work with the SDK',
    );
    t.equal(await cli.stop(), 0, 'exit code 0 after the stop signal');
    t.match(cli.output(), /kms-emulator stopped/, 'says it stopped');
    await t.rejects(
      sdk.describeKey(new Kms.DescribeKeyRequest({ keyId: 'dev-key' })),
      /ECONNREFUSED|socket hang up|ECONNRESET/,
      'the port is closed',
    );
  },
);

t.test('given credentials, region and --state', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kms-emulator-cli-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const state = join(dir, 'state.json');
  const args = [
    '--access-key-id',
    'LTAIdev',
    '--access-key-secret',
    'dev-secret',
    '--region',
    'cn-beijing',
    '--state',
    state,
    '--log-level',
    'silent',
  ];
  const first = await startCli(t, args);
  const keyId = field(first.output(), 'keys');
  t.match(keyId, /^[0-9a-f-]{36}$/, 'one generated key without --key');
  const sdk = sdkFor(fromBanner(first.output()));
  t.equal(fromBanner(first.output()).accessKeyId, 'LTAIdev', 'uses the given access key id');
  const blob = (await sdk.encrypt(new Kms.EncryptRequest({ keyId, plaintext: 'kept' })))
    .ciphertextBlob;
  const d = await sdk.describeKey(new Kms.DescribeKeyRequest({ keyId }));
  t.match(d.keyMetadata.arn, /^acs:kms:cn-beijing:/, 'region in ARNs');
  t.equal(await first.stop(), 0, 'first run stops');

  const second = await startCli(t, args);
  t.equal(
    field(second.output(), 'keys'),
    keyId,
    'restart lists the stored key instead of a new one',
  );
  const sdk2 = sdkFor(fromBanner(second.output()));
  const back = await sdk2.decrypt(new Kms.DecryptRequest({ ciphertextBlob: blob }));
  t.equal(back.plaintext, 'kept', 'ciphertext from the first run decrypts');
  t.equal(await second.stop(), 0, 'second run stops');
});

t.test('HTTPS with --tls-cert and --tls-key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kms-emulator-tls-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const certs = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  writeFileSync(join(dir, 'tls.crt'), certs.cert);
  writeFileSync(join(dir, 'tls.key'), certs.key);
  const cli = await startCli(t, [
    '--tls-cert',
    join(dir, 'tls.crt'),
    '--tls-key',
    join(dir, 'tls.key'),
    '--key',
    'tls-key',
    '--log-level',
    'silent',
  ]);
  t.match(cli.output(), /listening on https:\/\/127\.0\.0\.1:\d+/, 'serves HTTPS');
  const endpoint = field(cli.output(), 'endpoint');
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(`https://${endpoint}/_emulator/keys`, { ca: certs.caCert }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(status, 200, 'the certificate verifies against its CA');
  // rpc-client passes no CA option through, only ignoreSSL.
  const sdk = sdkFor(fromBanner(cli.output()));
  const d = await sdk.describeKeyEx(
    new Kms.DescribeKeyRequest({ keyId: 'tls-key' }),
    new TeaUtil.RuntimeOptions({ ignoreSSL: true }),
  );
  t.equal(d.keyMetadata.keyId, 'tls-key', 'the SDK talks to it over HTTPS');
  t.equal(await cli.stop(), 0, 'stops');
});

t.test('configuration mistakes exit 2 with one clear line', async (t) => {
  const cases: [string[], RegExp, string][] = [
    [
      ['--host', '0.0.0.0'],
      /--host 0\.0\.0\.0 is refused: .*loopback only.*--allow-remote/,
      'remote host',
    ],
    [
      ['--port', 'http'],
      /--port must be a TCP port from 0 to 65535, 0 = any free port \(got "http"\)/,
      'bad port',
    ],
    [
      ['--access-key-id', 'x'],
      /--access-key-id and --access-key-secret go together/,
      'half a key pair',
    ],
    [['--tls-cert', 'a.pem'], /--tls-cert and --tls-key go together/, 'half a TLS pair'],
    [
      ['--tls-cert', '/nonexistent.pem', '--tls-key', '/nonexistent.key'],
      /--tls-cert \/nonexistent\.pem cannot be read/,
      'unreadable cert',
    ],
  ];
  for (const [args, message, name] of cases) {
    const cli = await startCli(t, args);
    t.equal(await cli.done, 2, `${name}: exit code 2`);
    t.match(cli.errors(), message, `${name}: explains`);
  }
});

t.test('--allow-remote lets a non-loopback host through', async (t) => {
  const cli = await startCli(t, ['--host', '0.0.0.0', '--allow-remote', '--log-level', 'silent']);
  t.match(cli.output(), /listening on http:\/\/0\.0\.0\.0:\d+/, 'listens on 0.0.0.0');
  t.equal(await cli.stop(), 0, 'stops');
});

t.test(
  'a --port in use is a configuration error: exit 2 and one line naming the fix',
  async (t) => {
    const port = await occupyPort(t);
    const cli = await startCli(t, ['--port', String(port), '--log-level', 'silent']);
    t.equal(await cli.done, 2, 'exit code 2');
    t.equal(
      cli.errors(),
      `kms-secret-guard: cannot listen on port ${port} (--port): already in use; choose another port with --port (0 = any free port).\n`,
      'one line naming the flag and the fix',
    );
    t.notMatch(cli.output(), /listening/, 'no banner');
  },
);
