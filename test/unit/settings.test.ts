import t from 'tap';
import { ConfigError } from '../../src/config/errors.js';
import { parseDuration } from '../../src/config/duration.js';
import {
  parseKmsSettings,
  parsePort,
  parsePositiveDuration,
  parseServeSettings,
} from '../../src/config/settings.js';

const base = { kmsKeyId: 'key-1', kmsRegion: 'cn-hangzhou', tlsCert: 'c.pem', tlsKey: 'k.pem' };

t.test('durations', async (t) => {
  t.equal(parseDuration('30s'), 30_000, '30s is 30000 ms');
  t.equal(parseDuration('1h30m'), 5_400_000, 'compound durations add up');
  t.equal(parseDuration('250ms'), 250, 'milliseconds');
  t.equal(parseDuration('5'), undefined, 'a bare number has no unit and is refused');
  t.equal(parseDuration('5x'), undefined, 'an unknown unit is refused');
});

t.test('kms settings', async (t) => {
  const settings = parseKmsSettings(base);
  t.equal(
    settings.endpoint,
    'kms-vpc.cn-hangzhou.aliyuncs.com',
    'VPC endpoint derived from region',
  );
  t.equal(settings.protocol, 'https', 'https by default');
  t.throws(
    () => parseKmsSettings({ kmsRegion: 'cn-hangzhou' }),
    /--kms-key-id \/ KMS_KEY_ID is required/,
    'key id is required',
  );
  t.throws(
    () => parseKmsSettings({ kmsKeyId: 'k' }),
    /--kms-region \/ KMS_REGION is required unless/,
    'region or endpoint is required',
  );
  t.throws(
    () => parseKmsSettings({ ...base, kmsProtocol: 'http' }),
    /plain HTTP is only allowed to a loopback endpoint/,
    'http refused to a remote endpoint',
  );
  for (const endpoint of [
    '127.0.0.1:9000',
    'localhost:9000',
    '[::1]:9000',
    'http://127.0.0.2:80/',
  ]) {
    t.equal(
      parseKmsSettings({ kmsKeyId: 'k', kmsEndpoint: endpoint, kmsProtocol: 'http' }).protocol,
      'http',
      `http allowed to loopback ${endpoint}`,
    );
  }
});

t.test('serve settings', async (t) => {
  const settings = parseServeSettings(base);
  t.equal(settings.port, 8443, 'admission port default');
  t.equal(settings.healthPort, 8080, 'health port default');
  t.equal(settings.monitor.refreshIntervalMs, 30_000, 'refresh default 30s');
  t.equal(settings.monitor.maxStalenessMs, 300_000, 'staleness default 5m');
  t.equal(settings.onUnknown, 'allow', 'on-unknown default allow');
  t.equal(settings.mode, 'enforce', 'mode default enforce');
  t.throws(
    () => parseServeSettings({ ...base, mode: 'audit' }),
    ConfigError,
    'bad mode is a ConfigError',
  );
  t.throws(
    () => parseServeSettings({ ...base, port: '70000' }),
    /--port \/ PORT must be a TCP port/,
    'bad port',
  );
  t.throws(
    () => parseServeSettings({ ...base, refreshInterval: '10m', maxStaleness: '1m' }),
    /must be at least/,
    'staleness below refresh interval refused',
  );
});

t.test('parseDuration keeps no state between calls', async (t) => {
  // A shared sticky regex would carry lastIndex from one call into the next.
  t.equal(parseDuration('1h30mX'), undefined, 'trailing garbage refused');
  t.equal(parseDuration('5m'), 300_000, 'next call starts at the beginning');
  t.equal(parseDuration('2h 5m'), undefined, 'inner space refused');
  t.equal(parseDuration('250ms'), 250, 'and again');
  const results = ['1s', '1m', 'bad', '1h', '10ms'].map((text) => parseDuration(text));
  t.same(results, [1000, 60_000, undefined, 3_600_000, 10], 'a sequence parses independently');
});

t.test('parsePositiveDuration names the setting and the fix', async (t) => {
  t.equal(parsePositiveDuration('--timeout', '5s'), 5000, 'a duration in ms');
  for (const text of ['', '0s', 'soon', '5']) {
    t.throws(
      () => parsePositiveDuration('--timeout', text),
      {
        name: 'ConfigError',
        message: new RegExp(
          `^--timeout must be a positive duration such as 30s, 5m or 1h \\(got "${text}"\\): fix the value`,
        ),
      },
      `refuses "${text}"`,
    );
  }
});

t.test('parsePort: 1-65535, or 0-65535 where 0 means any free port', async (t) => {
  t.equal(parsePort('--port / PORT', '8443'), 8443, 'a port');
  t.equal(parsePort('--port', ' 80 '), 80, 'surrounding spaces ignored');
  t.equal(parsePort('--port', '0', { allowZero: true }), 0, '0 when allowed');
  t.throws(
    () => parsePort('--port / PORT', '0'),
    {
      name: 'ConfigError',
      message: /^--port \/ PORT must be a TCP port from 1 to 65535 \(got "0"\)/,
    },
    '0 refused by default',
  );
  for (const text of ['70000', '-1', 'http', '', '80.5']) {
    t.throws(
      () => parsePort('--control-port', text, { allowZero: true }),
      {
        name: 'ConfigError',
        message: /^--control-port must be a TCP port from 0 to 65535, 0 = any free port/,
      },
      `refuses "${text}"`,
    );
  }
});

t.test('--max-connections-per-source', async (t) => {
  t.equal(parseServeSettings(base).maxConnectionsPerSource, 256, 'default 256');
  t.equal(
    parseServeSettings({ ...base, maxConnectionsPerSource: '0' }).maxConnectionsPerSource,
    0,
    '0 is accepted (no per-source cap)',
  );
  t.equal(
    parseServeSettings({ ...base, maxConnectionsPerSource: ' 512 ' }).maxConnectionsPerSource,
    512,
    'a whole number is accepted',
  );
  for (const bad of ['-1', '1.5', 'many', '1e3']) {
    t.throws(
      () => parseServeSettings({ ...base, maxConnectionsPerSource: bad }),
      {
        name: 'ConfigError',
        message: new RegExp(
          `^--max-connections-per-source / MAX_CONNECTIONS_PER_SOURCE must be a whole number of connections, 0 for no per-source cap \\(got "${bad.replace('.', '\\.')}"\\)`,
        ),
      },
      `"${bad}" is refused with a ConfigError naming the setting`,
    );
  }
});
