import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { status as grpcStatus } from '@grpc/grpc-js';
import t from 'tap';
import type { CliContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/program.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { bindPrivately } from '../../src/plugin/socket.js';
import { withEmulator } from '../helpers/emulator.js';
import { eventually } from '../helpers/eventually.js';
import { grpcError, pluginClient, socketDir, startPluginUnderTest } from '../helpers/kms-plugin.js';

const SEED = Buffer.alloc(32, 3);
const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function listenOn(path: string): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      resolve(server);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {
      resolve();
    });
  });
}

/** kms-plugin's command line and environment against the emulator (--listen left out). */
function pluginArgs(emulator: RunningEmulator, keyId: string) {
  return {
    args: [
      '--kms-key-id',
      keyId,
      '--kms-endpoint',
      emulator.endpoint,
      '--kms-protocol',
      'http',
      '--health-port',
      '0',
    ],
    env: {
      ALIBABA_CLOUD_ACCESS_KEY_ID: emulator.accessKeyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: emulator.accessKeySecret,
    },
  };
}

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

async function runPluginCli(args: string[], env: Record<string, string> = {}) {
  const stdout = capture();
  const stderr = capture();
  const controller = new AbortController();
  const ctx: CliContext = {
    env,
    stdout: stdout.stream,
    stderr: stderr.stream,
    stopSignal: controller.signal,
    exitCode: 0,
  };
  // Settings errors end the command before it would wait for the stop signal.
  const code = await runCli(['kms-plugin', ...args], ctx);
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

t.test('socket: owner-only, in an owner-only folder, removed on exit', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const dir = socketDir(t);
  const socketPath = join(dir, 'created', 'socket.sock');
  const { plugin, client } = await startPluginUnderTest(t, emulator, keyId, { socketPath });
  t.equal(statSync(socketPath).mode & 0o777, 0o600, 'the socket is 0600');
  t.equal(statSync(join(dir, 'created')).mode & 0o777, 0o700, 'the folder it created is 0700');
  t.equal((await client.status()).healthz, 'ok', 'a client reaches it');
  client.close();
  await plugin.close();
  t.notOk(existsSync(socketPath), 'the socket file is removed on exit');
});

t.test('socket: a stale file is replaced; a live socket or another file is refused', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const dir = socketDir(t);

  // A stale socket: the name stays (a hard link) after its listener is gone, as after a kill -9.
  const stale = join(dir, 'stale.sock');
  const original = join(dir, 'original.sock');
  const gone = await listenOn(original);
  linkSync(original, stale);
  await closeServer(gone);
  t.ok(statSync(stale).isSocket(), 'a stale socket file exists');
  const replaced = await startPluginUnderTest(t, emulator, keyId, { socketPath: stale });
  t.equal(
    (await replaced.client.status()).healthz,
    'ok',
    'the plugin replaced the stale socket and serves on it',
  );

  const livePath = join(dir, 'live.sock');
  const live = await listenOn(livePath);
  t.teardown(() => closeServer(live));
  const { args, env } = pluginArgs(emulator, keyId);
  const refused = await runPluginCli([...args, '--listen', livePath], env);
  t.equal(refused.code, 2, 'a live socket: exit 2');
  t.match(
    refused.stderr,
    /another process is listening on .*live\.sock/,
    'a live socket: one clear line',
  );
  t.ok(statSync(livePath).isSocket(), 'the live socket is left alone');

  const filePath = join(dir, 'not-a-socket');
  writeFileSync(filePath, 'keep me');
  const notSocket = await runPluginCli([...args, '--listen', filePath], env);
  t.equal(notSocket.code, 2, 'a regular file: exit 2');
  t.match(notSocket.stderr, /exists and is not a unix socket/, 'a regular file: one clear line');
  t.equal(readFileSync(filePath, 'utf8'), 'keep me', 'the file is left alone');
});

t.test('bad configuration exits 2 with one line naming the setting', async (t) => {
  const cases: [string, string[], RegExp][] = [
    ['no key', ['--kms-region', 'cn-hangzhou'], /--kms-key-id \/ KMS_KEY_ID is required/],
    [
      'relative socket path',
      ['--kms-key-id', 'k', '--kms-region', 'cn-hangzhou', '--listen', 'socket.sock'],
      /--listen \/ KMS_PLUGIN_SOCKET must be an absolute unix socket path/,
    ],
    [
      'socket path too long',
      ['--kms-key-id', 'k', '--kms-region', 'cn-hangzhou', '--listen', `/${'x'.repeat(120)}`],
      /at most 107/,
    ],
    [
      'bad health port',
      ['--kms-key-id', 'k', '--kms-region', 'cn-hangzhou', '--health-port', 'x'],
      /--health-port \/ HEALTH_PORT must be a TCP port/,
    ],
    [
      'staleness below interval',
      [
        '--kms-key-id',
        'k',
        '--kms-region',
        'cn-hangzhou',
        '--refresh-interval',
        '1m',
        '--max-staleness',
        '30s',
      ],
      /--max-staleness/,
    ],
  ];
  const fromEnv = await runPluginCli(['--kms-key-id', 'k', '--kms-region', 'cn-hangzhou'], {
    KMS_PLUGIN_SOCKET: 'relative.sock',
  });
  t.equal(fromEnv.code, 2, 'KMS_PLUGIN_SOCKET is read: exit 2 for a relative path');
  t.match(fromEnv.stderr, /got "relative\.sock"/, 'KMS_PLUGIN_SOCKET is read: names the value');
  for (const [what, args, message] of cases) {
    const result = await runPluginCli(args);
    t.equal(result.code, 2, `${what}: exit 2`);
    t.match(result.stderr, message, `${what}: names the setting`);
    t.equal(result.stderr.trim().split('\n').length, 1, `${what}: one line`);
  }
});

t.test('shutdown drains in-flight calls and refuses new ones with a clear error', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const { plugin, client, socketPath } = await startPluginUnderTest(t, emulator, keyId, {
    drainTimeoutMs: 10_000,
  });
  await client.status();
  emulator.faults.setLatency(700);
  const inFlight = client.encrypt(SEED);
  t.ok(
    await eventually(() => emulator.requestCount('Encrypt') === 1, {
      timeoutMs: 5_000,
      intervalMs: 20,
    }),
    'an Encrypt is in flight',
  );
  const closed = plugin.close();
  const refused = await grpcError(client.status());
  t.equal(refused.code, grpcStatus.UNAVAILABLE, 'a call after shutdown began: UNAVAILABLE');
  t.match(refused.details, /shutting down/, 'a call after shutdown began: says so');
  const finished = await inFlight;
  t.ok(finished.ciphertext.length > 0, 'the in-flight Encrypt finished with a result');
  await closed;
  t.notOk(existsSync(socketPath), 'the socket is removed after the drain');
});

t.test(
  'the kms-plugin process: SIGTERM stops it cleanly (exit 0, socket removed)',
  {
    skip: existsSync(MAIN)
      ? false
      : 'dist/ is not built: run `npm run build` first (npm test does)',
  },
  async (t) => {
    const { emulator, keyId } = await withEmulator(t);
    const socketPath = join(socketDir(t), 'socket.sock');
    const plugin = pluginArgs(emulator, keyId);
    const child = spawn(
      process.execPath,
      [MAIN, 'kms-plugin', ...plugin.args, '--listen', socketPath],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...plugin.env },
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => {
        resolve(code);
      }),
    );
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    t.ok(
      await eventually(() => existsSync(socketPath) && output.includes('KMS v2 plugin listening'), {
        timeoutMs: 30_000,
        intervalMs: 100,
      }),
      'the plugin listens',
    );
    const client = pluginClient(socketPath);
    t.teardown(() => {
      client.close();
    });
    t.ok(
      await eventually(
        async () => (await client.status().catch(() => undefined))?.healthz === 'ok',
        { timeoutMs: 10_000, intervalMs: 100 },
      ),
      'Status answers ok',
    );
    child.kill('SIGTERM');
    t.equal(await exited, 0, 'exit 0 on SIGTERM');
    t.notOk(existsSync(socketPath), 'the socket is removed');
  },
);

t.test(
  'socket: bound in a private 0700 folder, owner-only before it appears at --listen',
  async (t) => {
    const dir = socketDir(t);
    chmodSync(dir, 0o755); // as the kubelet's DirectoryOrCreate hostPath leaves it
    const target = join(dir, 'socket.sock');
    const server = createServer((socket) => socket.destroy());
    t.teardown(() => closeServer(server));
    let seenWhileBinding:
      { folderMode: number; socketMode: number; targetExists: boolean } | undefined;
    await bindPrivately(target, async (temporary) => {
      t.ok(Buffer.byteLength(temporary) <= 107, 'the temporary path fits a unix socket');
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(temporary, () => {
          resolve();
        });
      });
      seenWhileBinding = {
        folderMode: statSync(dirname(temporary)).mode & 0o777,
        socketMode: statSync(temporary).mode & 0o777,
        targetExists: existsSync(target),
      };
    });
    t.equal(
      seenWhileBinding?.folderMode,
      0o700,
      'bound inside a 0700 folder: nobody else can reach it',
    );
    t.equal(seenWhileBinding?.targetExists, false, 'nothing at --listen while it is not yet 0600');
    t.equal(statSync(target).mode & 0o777, 0o600, 'at --listen it is 0600');
    t.same(readdirSync(dir), ['socket.sock'], 'the private folder is gone');
    t.equal(statSync(dir).mode & 0o777, 0o755, 'an existing folder keeps its mode');
    const reached = await new Promise<boolean>((resolve) => {
      const socket = connect({ path: target });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => {
        resolve(false);
      });
    });
    t.ok(reached, 'the renamed socket accepts connections');
  },
);

t.test('socket: every moment it is visible at --listen it is 0600 (fs.watch)', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const dir = socketDir(t);
  chmodSync(dir, 0o755);
  const socketPath = join(dir, 'socket.sock');
  // A leftover private folder of a killed plugin, and a stale socket: both are replaced.
  mkdirSync(join(dir, '.socket.sock.AbC123'), { mode: 0o700 });
  const gone = await listenOn(join(dir, 'original.sock'));
  linkSync(join(dir, 'original.sock'), socketPath);
  await closeServer(gone); // unlinks original.sock; the stale name stays
  const modes: number[] = [];
  const watcher = watch(dir, () => {
    try {
      const stats = lstatSync(socketPath);
      if (stats.isSocket()) modes.push(stats.mode & 0o777);
    } catch {
      // not there at this moment
    }
  });
  t.teardown(() => {
    watcher.close();
  });
  const { client } = await startPluginUnderTest(t, emulator, keyId, { socketPath });
  t.equal(statSync(socketPath).mode & 0o777, 0o600, 'right after listen: 0600');
  t.equal((await client.status()).healthz, 'ok', 'the stale socket was replaced and serves');
  t.same(readdirSync(dir), ['socket.sock'], "no private folder is left, the old one's included");
  t.ok(
    modes.every((mode) => mode === 0o600),
    `every mode seen at --listen is 0600 (${modes.map((mode) => mode.toString(8)).join(', ') || 'none seen between events'})`,
  );
});

t.test('socket: a --listen path too long for the temporary socket exits 2', async (t) => {
  const { emulator, keyId } = await withEmulator(t);
  const dir = socketDir(t);
  const room = 107 - Buffer.byteLength(dir) - 1;
  const socketPath = join(dir, 'x'.repeat(room));
  const { args, env } = pluginArgs(emulator, keyId);
  const result = await runPluginCli([...args, '--listen', socketPath], env);
  t.equal(result.code, 2, 'exit 2');
  t.match(
    result.stderr,
    /is too long: the plugin binds it first as a temporary socket/,
    'says why',
  );
  t.notOk(existsSync(socketPath), 'no socket was created');
});
