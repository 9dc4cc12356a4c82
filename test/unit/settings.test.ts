import t from 'tap';
import { ConfigError } from '../../src/config/errors.js';
import { parseDuration } from '../../src/config/duration.js';
import { parseKmsSettings, parseServeSettings } from '../../src/config/settings.js';

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
