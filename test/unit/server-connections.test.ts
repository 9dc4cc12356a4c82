import t from 'tap';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  admissionConnectionCap,
  DEFAULT_MAX_CONNECTIONS,
  DESCRIPTOR_HEADROOM,
  limitConnectionsPerSource,
  readOpenFilesLimit,
  throttled,
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

t.test('one source address holds at most its cap; a closed one frees its slot', async (t) => {
  const server = new EventEmitter();
  const refused: string[] = [];
  limitConnectionsPerSource(server, 2, (source) => refused.push(source));
  const sockets = ['10.0.0.1', '10.0.0.1', '10.0.0.1', '10.0.0.2'].map((address) => {
    const socket = Object.assign(new EventEmitter(), {
      remoteAddress: address,
      destroyed: false,
      destroy() {
        this.destroyed = true;
      },
    });
    server.emit('connection', socket);
    return socket;
  });
  t.same(
    sockets.map((socket) => socket.destroyed),
    [false, false, true, false],
    'the third from 10.0.0.1 is closed, 10.0.0.2 is not',
  );
  t.same(refused, ['10.0.0.1'], 'the refusal names the source');
  sockets[0]?.emit('close');
  const again = Object.assign(new EventEmitter(), {
    remoteAddress: '10.0.0.1',
    destroyed: false,
    destroy() {
      this.destroyed = true;
    },
  });
  server.emit('connection', again);
  t.notOk(again.destroyed, 'after one closes, a new one from 10.0.0.1 gets in');
});

t.test('throttled reports at most once per interval, with the count since the last', async (t) => {
  let now = 0;
  const reports: [number, string][] = [];
  const report = throttled(
    (count: number, latest: string) => reports.push([count, latest]),
    10,
    () => now,
  );
  report('a');
  report('b');
  now = 5;
  report('c');
  now = 10;
  report('d');
  t.same(
    reports,
    [
      [1, 'a'],
      [3, 'd'],
    ],
    'the first at once, then one per 10 ms carrying the count',
  );
});
