import t from 'tap';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  admissionConnectionCap,
  DEFAULT_MAX_CONNECTIONS,
  DESCRIPTOR_HEADROOM,
  closeUnusedAfterHandshake,
  limitConnectionsPerSource,
  limitRequestTime,
  readOpenFilesLimit,
  throttled,
  type ThrottledReport,
} from '../../src/server/connections.js';
import { FakeClock } from '../helpers/clock.js';

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

t.test('the tracker counts held connections per source; cap 0 is no cap', async (t) => {
  const server = new EventEmitter();
  const tracker = limitConnectionsPerSource(server, 0);
  const sockets = Array.from({ length: 300 }, () => fakeSocket('10.0.0.1'));
  for (const socket of sockets) server.emit('connection', socket);
  t.notOk(
    sockets.some((socket) => socket.destroyed),
    'with cap 0 all 300 from one source get in',
  );
  t.equal(tracker.held('10.0.0.1'), 300, 'the tracker counts 300 held');
  sockets[0]?.emit('close');
  t.equal(tracker.held('10.0.0.1'), 299, 'a close frees one');
  t.equal(tracker.held('10.0.0.9'), 0, 'an unknown source holds none');
});

/** A socket stand-in: an emitter with an address and destroy(). */
function fakeSocket(address: string) {
  return Object.assign(new EventEmitter(), {
    remoteAddress: address,
    destroyed: false,
    destroy() {
      this.destroyed = true;
    },
  });
}

/** A fake server with per-source tracking and the first-request deadlines (5 s / 95 s / 2). */
function unusedConnectionRig() {
  const clock = new FakeClock(0);
  const server = new EventEmitter();
  const tracker = limitConnectionsPerSource(server, 10);
  const unused = closeUnusedAfterHandshake(
    server,
    tracker,
    { impatientMs: 5_000, patientMs: 95_000, patientShare: 2 },
    clock,
  );
  const open = (address: string) => {
    const socket = fakeSocket(address);
    server.emit('connection', socket);
    server.emit('secureConnection', socket);
    return socket;
  };
  return { clock, server, open, unused };
}

t.test(
  'unused connections: closed at the short deadline only above the patient share',
  async (t) => {
    const { clock, server, open } = unusedConnectionRig();
    const apiServer = [open('10.0.0.1'), open('10.0.0.1')];
    const holder = [open('10.0.0.2'), open('10.0.0.2'), open('10.0.0.2')];
    const used = open('10.0.0.2');
    server.emit('request', { socket: used });
    await clock.advance(5_000);
    t.same(
      holder.map((socket) => socket.destroyed),
      [true, true, false],
      'a source holding 4 (> 2) loses unused connections at 5 s until it holds 2',
    );
    t.notOk(used.destroyed, 'its connection that sent a request is kept');
    t.same(
      apiServer.map((socket) => socket.destroyed),
      [false, false],
      'a source holding 2 keeps its unused connections at 5 s',
    );
    await clock.advance(89_999);
    t.notOk(apiServer[0]?.destroyed, 'still open just before 95 s');
    t.notOk(holder[2]?.destroyed, 'so is the unused one left to the holder');
    await clock.advance(1);
    t.same(
      [...apiServer, ...holder].map((socket) => socket.destroyed),
      [true, true, true, true, true],
      'closed at 95 s',
    );
    t.equal(clock.pending, 0, 'no timer is left');
    const closed = open('10.0.0.3');
    closed.emit('close');
    t.equal(clock.pending, 0, 'a close clears its timer');
  },
);

t.test(
  'a drain gives unused connections a short grace to start a request, then closes them',
  async (t) => {
    const { clock, server, open, unused } = unusedConnectionRig();
    const spare = open('10.0.0.1');
    const dialedForRequest = open('10.0.0.1');
    const used = open('10.0.0.1');
    server.emit('request', { socket: used });
    t.equal(unused.drain(1_000), 2, 'two connections had not started a request');
    const lateHandshake = open('10.0.0.1');
    server.emit('request', { socket: dialedForRequest });
    await clock.advance(999);
    t.notOk(spare.destroyed, 'the spare is still open just before the grace ends');
    await clock.advance(1);
    t.ok(spare.destroyed, 'the spare is closed at the end of the grace');
    t.ok(lateHandshake.destroyed, 'so is a handshake that completed during the drain');
    t.notOk(dialedForRequest.destroyed, 'a connection that started its request is left to it');
    t.notOk(used.destroyed, 'a used connection is left to Node (closed when idle)');
    t.equal(clock.pending, 0, 'no timer is left');
  },
);

t.test(
  'throttled reports at most once per interval, counting each event and the tail',
  async (t) => {
    const clock = new FakeClock(0);
    const reports: [number, string, Record<string, number>][] = [];
    const report = throttled(
      ({ count, latest, byEvent }: ThrottledReport<string>) =>
        reports.push([count, latest, Object.fromEntries(byEvent)]),
      10,
      clock,
    );
    report('a');
    report('b');
    await clock.advance(5);
    report('c');
    report('b');
    t.equal(reports.length, 1, 'only the first is reported at once');
    await clock.advance(5);
    t.same(
      reports,
      [
        [1, 'a', { a: 1 }],
        [3, 'b', { b: 2, c: 1 }],
      ],
      'the tail is reported at the end of the interval, counted per event',
    );
    await clock.advance(100);
    t.equal(reports.length, 2, 'nothing more without events');
    report('d');
    t.same(reports[2], [1, 'd', { d: 1 }], 'after a quiet interval an event is reported at once');
  },
);

t.test('a request not answered in time gets a 408 and its connection is closed', async (t) => {
  const clock = new FakeClock(0);
  const server = new EventEmitter();
  limitRequestTime(server, 30_000, clock);
  const written: string[] = [];
  const socket = Object.assign(fakeSocket('10.0.0.1'), {
    writable: true,
    write(text: string) {
      written.push(text);
      return true;
    },
    destroySoon() {
      socket.destroy();
    },
  });
  const slow = Object.assign(new EventEmitter(), { headersSent: false });
  server.emit('request', { socket }, slow);
  await clock.advance(29_999);
  t.notOk(socket.destroyed, 'open just before 30 s');
  await clock.advance(1);
  t.ok(socket.destroyed, 'closed at 30 s');
  t.match(written.join(''), /^HTTP\/1\.1 408 Request Timeout\r\n/, 'after a 408');
  const answered = Object.assign(new EventEmitter(), { headersSent: true });
  server.emit('request', { socket: fakeSocket('10.0.0.2') }, answered);
  answered.emit('close');
  t.equal(clock.pending, 0, 'an answered request leaves no timer');
});
