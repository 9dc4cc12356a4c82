import { X509Certificate, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import t from 'tap';
import {
  generateCertificates,
  generateClientCertificate,
  serviceDnsNames,
} from '../../src/certs/generate.js';
import { ConfigError } from '../../src/config/errors.js';

const NOW = new Date('2026-11-28T09:00:00Z');
const DAY_MS = 24 * 60 * 60 * 1000;
// Object identifiers printed by node's X509Certificate.keyUsage (the EKU list).
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

t.test('serviceDnsNames lists the four names the API server may use for a Service', async (t) => {
  t.same(
    serviceDnsNames('kms-secret-guard', 'guard-ns'),
    [
      'kms-secret-guard',
      'kms-secret-guard.guard-ns',
      'kms-secret-guard.guard-ns.svc',
      'kms-secret-guard.guard-ns.svc.cluster.local',
    ],
    'short name, name.ns, name.ns.svc and the cluster-local FQDN',
  );
});

t.test('generateCertificates makes a CA and a serving certificate it signed', async (t) => {
  const dnsNames = serviceDnsNames('kms-secret-guard', 'kms-secret-guard');
  const generated = await generateCertificates({
    dnsNames,
    ipAddresses: ['127.0.0.1', '::1'],
    validityDays: 30,
    caValidityDays: 90,
    now: NOW,
  });
  const ca = new X509Certificate(generated.caCert);
  const cert = new X509Certificate(generated.cert);

  t.ok(ca.ca, 'the CA certificate has basicConstraints CA:TRUE');
  t.notOk(cert.ca, 'the serving certificate is not a CA');
  t.ok(ca.checkIssued(ca), 'the CA is self-issued');
  t.ok(ca.verify(ca.publicKey), 'the CA signature verifies with its own key');
  t.ok(cert.checkIssued(ca), 'the serving certificate names the CA as issuer');
  t.ok(cert.verify(ca.publicKey), 'the serving certificate signature verifies with the CA key');

  t.equal(cert.publicKey.asymmetricKeyType, 'ec', 'serving key is an EC key');
  t.same(
    cert.publicKey.asymmetricKeyDetails,
    { namedCurve: 'prime256v1' },
    'serving key is on P-256',
  );
  t.same(ca.publicKey.asymmetricKeyDetails, { namedCurve: 'prime256v1' }, 'CA key is on P-256');

  const sans = (cert.subjectAltName ?? '').split(', ');
  for (const name of dnsNames) t.ok(sans.includes(`DNS:${name}`), `SAN contains DNS:${name}`);
  t.ok(sans.includes('IP Address:127.0.0.1'), 'SAN contains the IPv4 address');
  t.ok(cert.checkIP('::1'), 'SAN contains the IPv6 loopback address');
  t.match(cert.subject, /CN=kms-secret-guard/, 'CN defaults to the first DNS name');
  t.same(cert.keyUsage, [SERVER_AUTH], 'extended key usage is serverAuth only');
  t.ok(cert.checkHost('kms-secret-guard.kms-secret-guard.svc'), 'host check passes for a SAN');
  t.notOk(cert.checkHost('other.example.com'), 'host check fails for a name not in the SANs');

  const validFrom = new Date(cert.validFrom).getTime();
  const validTo = new Date(cert.validTo).getTime();
  t.ok(validFrom <= NOW.getTime(), 'serving certificate is valid at issue time');
  t.equal(validTo, NOW.getTime() + 30 * DAY_MS, 'serving certificate expires after --days');
  t.equal(
    new Date(ca.validTo).getTime(),
    NOW.getTime() + 90 * DAY_MS,
    'CA expires after --ca-days',
  );
  t.not(ca.serialNumber, cert.serialNumber, 'serial numbers differ');

  t.match(generated.key, /^-----BEGIN PRIVATE KEY-----\n/, 'serving key is PKCS#8 PEM');
  t.match(generated.caKey, /^-----BEGIN PRIVATE KEY-----\n/, 'CA key is PKCS#8 PEM');
  const privateKey = createPrivateKey(generated.key);
  const signature = sign('sha256', Buffer.from('probe'), privateKey);
  t.ok(
    verify('sha256', Buffer.from('probe'), cert.publicKey, signature),
    'the serving key belongs to the serving certificate',
  );
  t.ok(
    createPublicKey(generated.caKey)
      .export({ format: 'der', type: 'spki' })
      .equals(ca.publicKey.export({ format: 'der', type: 'spki' })),
    'the CA key belongs to the CA certificate',
  );
});

t.test('defaults: one year serving certificate, ten year CA, current time', async (t) => {
  const before = Date.now();
  const generated = await generateCertificates({ dnsNames: ['guard.example'] });
  const after = Date.now();
  const cert = new X509Certificate(generated.cert);
  const ca = new X509Certificate(generated.caCert);
  const certDays = (new Date(cert.validTo).getTime() - before) / DAY_MS;
  const caDays = (new Date(ca.validTo).getTime() - before) / DAY_MS;
  t.ok(certDays >= 364.99 && certDays <= 365 + (after - before) / DAY_MS + 0.01, 'about 365 days');
  t.ok(caDays >= 3649.99 && caDays <= 3650.01, 'about 3650 days');
});

t.test('commonName and IP-only certificates', async (t) => {
  const generated = await generateCertificates({
    dnsNames: [],
    ipAddresses: ['10.0.0.12'],
    commonName: 'webhook',
    now: NOW,
  });
  const cert = new X509Certificate(generated.cert);
  t.match(cert.subject, /CN=webhook/, 'the given common name is used');
  t.equal(cert.subjectAltName, 'IP Address:10.0.0.12', 'the only SAN is the IP address');
  t.ok(cert.checkIP('10.0.0.12'), 'IP check passes');
});

t.test('bad options are refused with a ConfigError naming the fix', async (t) => {
  await t.rejects(
    generateCertificates({ dnsNames: [] }),
    ConfigError,
    'no names and no IPs is refused',
  );
  await t.rejects(
    generateCertificates({ dnsNames: ['bad name!'] }),
    { name: 'ConfigError', message: /not a valid DNS name/ },
    'an invalid DNS name is refused',
  );
  await t.rejects(
    generateCertificates({ dnsNames: ['ok'], ipAddresses: ['300.1.1.1'] }),
    { message: /not an IPv4 or IPv6 address/ },
    'an invalid IP is refused',
  );
  await t.rejects(
    generateCertificates({ dnsNames: ['ok'], validityDays: 0 }),
    { message: /whole number of days/ },
    'zero days is refused',
  );
  await t.rejects(
    generateCertificates({ dnsNames: ['ok'], validityDays: 1.5 }),
    { message: /whole number of days/ },
    'fractional days are refused',
  );
  await t.rejects(
    generateCertificates({ dnsNames: ['ok'], validityDays: 400, caValidityDays: 300 }),
    { message: /raise --ca-days or lower --days/ },
    'a serving certificate outliving its CA is refused',
  );
  const wildcard = await generateCertificates({ dnsNames: ['*.guard.example'], now: NOW });
  t.ok(
    new X509Certificate(wildcard.cert).checkHost('a.guard.example'),
    'a wildcard DNS name is accepted and matches',
  );
});

t.test('generateClientCertificate issues clientAuth certificates from the CA', async (t) => {
  const generated = await generateCertificates({ dnsNames: ['guard'], now: NOW });
  const client = await generateClientCertificate(generated, {
    commonName: 'admin',
    organization: 'system:masters',
    validityDays: 7,
    now: NOW,
  });
  const ca = new X509Certificate(generated.caCert);
  const cert = new X509Certificate(client.cert);
  t.ok(cert.checkIssued(ca), 'issued by the CA');
  t.ok(cert.verify(ca.publicKey), 'signature verifies with the CA key');
  t.same(cert.keyUsage, [CLIENT_AUTH], 'extended key usage is clientAuth only');
  t.match(cert.subject, /CN=admin/, 'CN is the user name');
  t.match(cert.subject, /O=system:masters/, 'O is the group');
  t.equal(cert.subjectAltName, undefined, 'no subject alternative names');
  t.equal(new Date(cert.validTo).getTime(), NOW.getTime() + 7 * DAY_MS, 'validity honoured');
  t.match(client.key, /^-----BEGIN PRIVATE KEY-----\n/, 'client key is PKCS#8 PEM');

  const noOrg = await generateClientCertificate(generated, { commonName: 'probe' });
  t.notMatch(new X509Certificate(noOrg.cert).subject, /O=/, 'organization is optional');

  await t.rejects(
    generateClientCertificate(generated, { commonName: ' ' }),
    { message: /non-empty common name/ },
    'an empty common name is refused',
  );
  await t.rejects(
    generateClientCertificate({ caCert: generated.caCert, caKey: 'garbage' }, { commonName: 'x' }),
    { name: 'ConfigError', message: /PKCS#8 PEM/ },
    'an unreadable CA key is refused with a clear message',
  );
});
