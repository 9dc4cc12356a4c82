import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { ConfigError } from '../config/errors.js';
import { DEFAULT_CA_VALIDITY_DAYS, DEFAULT_VALIDITY_DAYS } from './defaults.js';

/** A CA and a serving certificate, all PEM; keys are unencrypted PKCS#8. */
export interface GeneratedCertificates {
  readonly caCert: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
}

/** The CA half of GeneratedCertificates: what signs further (client) certificates. */
export interface CertificateAuthority {
  readonly caCert: string;
  readonly caKey: string;
}

/** One leaf certificate and its key, PEM (key: PKCS#8). */
export interface IssuedCertificate {
  readonly cert: string;
  readonly key: string;
}

export interface CertificateOptions {
  /** DNS subject alternative names of the serving certificate (at least one name or IP). */
  readonly dnsNames: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** Subject CN of the serving certificate; default the first DNS name (or IP). */
  readonly commonName?: string;
  /** Serving certificate validity in days (default 365). */
  readonly validityDays?: number;
  /** CA validity in days (default 3650); must not be shorter than validityDays. */
  readonly caValidityDays?: number;
  /** Issue time (default the current time); tests pass a fixed date. */
  readonly now?: Date;
}

export interface ClientCertificateOptions {
  readonly commonName: string;
  /** Subject O; Kubernetes reads it as the user's group (e.g. system:masters). */
  readonly organization?: string;
  readonly validityDays?: number;
  readonly now?: Date;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates start an hour early so a peer whose clock runs slightly behind accepts them. */
const CLOCK_SKEW_MS = 60 * 60 * 1000;
const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

type Crypto = typeof webcrypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** The DNS names the API server may use to reach a Service: name, name.ns, name.ns.svc, name.ns.svc.cluster.local. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
  ];
}

/** Makes a new CA and a serving certificate (serverAuth) signed by it; ECDSA P-256 throughout. */
export async function generateCertificates(
  options: CertificateOptions,
): Promise<GeneratedCertificates> {
  const crypto = webcrypto;
  const dnsNames = options.dnsNames.map((name) => checkDnsName(name));
  const ipAddresses = (options.ipAddresses ?? []).map((ip) => checkIpAddress(ip));
  const validityDays = checkDays(options.validityDays ?? DEFAULT_VALIDITY_DAYS, 'validity');
  const caValidityDays = checkDays(
    options.caValidityDays ?? DEFAULT_CA_VALIDITY_DAYS,
    'CA validity',
  );
  if (dnsNames.length === 0 && ipAddresses.length === 0) {
    throw new ConfigError(
      'the serving certificate needs at least one DNS name or IP address: give --service or --dns-name/--ip.',
    );
  }
  if (caValidityDays < validityDays) {
    throw new ConfigError(
      `the CA validity (${caValidityDays} days) is shorter than the serving certificate's (${validityDays} days): raise --ca-days or lower --days.`,
    );
  }
  const now = options.now ?? new Date();
  const commonName = options.commonName ?? dnsNames[0] ?? ipAddresses[0] ?? 'kms-secret-guard';

  const caKeys = await generateKeyPair(crypto);
  const caName: x509.JsonName = [{ CN: [`kms-secret-guard CA ${now.toISOString()}`] }];
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(crypto),
      name: caName,
      notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
      notAfter: new Date(now.getTime() + caValidityDays * DAY_MS),
      keys: caKeys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const serving = await issue(
    crypto,
    { cert: caCert, key: caKeys.privateKey },
    {
      subject: [{ CN: [commonName] }],
      notBefore: now,
      validityDays,
      usage: x509.ExtendedKeyUsage.serverAuth,
      alternativeNames: [
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ],
    },
  );

  return {
    caCert: caCert.toString('pem'),
    caKey: await exportPrivateKey(crypto, caKeys.privateKey),
    cert: serving.cert,
    key: serving.key,
  };
}

/**
 * Issues a client certificate (clientAuth) from a CA made by generateCertificates: for
 * webhook mTLS (--client-ca) and for a Kubernetes user (CN = user, O = group).
 */
export async function generateClientCertificate(
  ca: CertificateAuthority,
  options: ClientCertificateOptions,
): Promise<IssuedCertificate> {
  const crypto = webcrypto;
  if (options.commonName.trim() === '') {
    throw new ConfigError('a client certificate needs a non-empty common name (the user name).');
  }
  const validityDays = checkDays(options.validityDays ?? DEFAULT_VALIDITY_DAYS, 'validity');
  const subject: x509.JsonName = [{ CN: [options.commonName] }];
  if (options.organization !== undefined) subject.push({ O: [options.organization] });
  return issue(
    crypto,
    { cert: new x509.X509Certificate(ca.caCert), key: await importCaKey(crypto, ca.caKey) },
    {
      subject,
      notBefore: options.now ?? new Date(),
      validityDays,
      usage: x509.ExtendedKeyUsage.clientAuth,
      alternativeNames: [],
    },
  );
}

interface LeafRequest {
  readonly subject: x509.JsonName;
  readonly notBefore: Date;
  readonly validityDays: number;
  readonly usage: x509.ExtendedKeyUsage;
  readonly alternativeNames: x509.JsonGeneralNames;
}

async function issue(
  crypto: Crypto,
  issuer: { cert: x509.X509Certificate; key: CryptoKey },
  request: LeafRequest,
): Promise<IssuedCertificate> {
  const keys = await generateKeyPair(crypto);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([request.usage], false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.cert, false, crypto),
  ];
  if (request.alternativeNames.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(request.alternativeNames, false));
  }
  const start = request.notBefore.getTime();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(crypto),
      subject: request.subject,
      issuer: issuer.cert.subjectName,
      notBefore: new Date(start - CLOCK_SKEW_MS),
      notAfter: new Date(start + request.validityDays * DAY_MS),
      publicKey: keys.publicKey,
      signingKey: issuer.key,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions,
    },
    crypto,
  );
  return { cert: cert.toString('pem'), key: await exportPrivateKey(crypto, keys.privateKey) };
}

async function generateKeyPair(crypto: Crypto): Promise<CryptoKeyPair> {
  // Extractable: the private key is written out as PKCS#8 PEM.
  return crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

async function exportPrivateKey(crypto: Crypto, key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importCaKey(crypto: Crypto, pem: string): Promise<CryptoKey> {
  try {
    const der = x509.PemConverter.decodeFirst(pem);
    return await crypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
  } catch {
    throw new ConfigError(
      'the CA key is not an ECDSA P-256 private key in PKCS#8 PEM ("BEGIN PRIVATE KEY"): use the ca key made by `kms-secret-guard certs`.',
    );
  }
}

/** A positive 128-bit serial (RFC 5280: positive, at most 20 octets, unpredictable). */
function randomSerial(crypto: Crypto): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

function checkDnsName(name: string): string {
  const trimmed = name.trim().toLowerCase();
  if (trimmed.length > 253 || !DNS_NAME.test(trimmed)) {
    throw new ConfigError(
      `"${name}" is not a valid DNS name: use letters, digits, hyphens and dots (e.g. kms-secret-guard.kms-secret-guard.svc).`,
    );
  }
  return trimmed;
}

function checkIpAddress(ip: string): string {
  const trimmed = ip.trim();
  if (isIP(trimmed) === 0) {
    throw new ConfigError(`"${ip}" is not an IPv4 or IPv6 address: give one such as 10.0.0.12.`);
  }
  return trimmed;
}

function checkDays(days: number, what: string): number {
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    throw new ConfigError(
      `the ${what} must be a whole number of days from 1 to 36500 (got ${days}).`,
    );
  }
  return days;
}

export { DEFAULT_CA_VALIDITY_DAYS, DEFAULT_VALIDITY_DAYS };
