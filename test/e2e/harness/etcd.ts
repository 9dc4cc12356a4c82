/**
 * Reads what kube-apiserver stored, straight from etcd (its JSON gateway, /v3/kv/range), and
 * decodes the KMS v2 envelope: `k8s:enc:kms:v2:<provider>:` followed by the EncryptedObject
 * protobuf of k8s.io/apiserver (…/envelope/kmsv2/v2/api.proto).
 */

/** The raw bytes stored under `key`, or undefined when etcd has no such key. */
export async function etcdGet(etcdUrl: string, key: string): Promise<Buffer | undefined> {
  const response = await fetch(`${etcdUrl}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from(key).toString('base64') }),
    signal: AbortSignal.timeout(5000),
  });
  if (!response.ok) throw new Error(`etcd range ${key}: HTTP ${response.status}`);
  const body = (await response.json()) as { kvs?: { value?: string }[] };
  const value = body.kvs?.[0]?.value;
  return value === undefined ? undefined : Buffer.from(value, 'base64');
}

/** Every key under `prefix` with its raw bytes, in key order (one range request). */
export async function etcdRange(
  etcdUrl: string,
  prefix: string,
): Promise<{ key: string; value: Buffer }[]> {
  const start = Buffer.from(prefix);
  const end = Buffer.from(start);
  end[end.length - 1] = (end.at(-1) ?? 0) + 1;
  const response = await fetch(`${etcdUrl}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: start.toString('base64'), range_end: end.toString('base64') }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`etcd range ${prefix}*: HTTP ${response.status}`);
  const body = (await response.json()) as { kvs?: { key: string; value?: string }[] };
  return (body.kvs ?? []).map((kv) => ({
    key: Buffer.from(kv.key, 'base64').toString('utf8'),
    value: Buffer.from(kv.value ?? '', 'base64'),
  }));
}

export function secretKey(namespace: string, name: string): string {
  return `/registry/secrets/${namespace}/${name}`;
}

export interface EncryptedObject {
  readonly encryptedData: Buffer;
  readonly keyID: string;
  readonly encryptedDEKSource: Buffer;
  readonly annotations: Record<string, Buffer>;
  readonly encryptedDEKSourceType: number;
}

export interface KmsV2Envelope {
  readonly provider: string;
  readonly object: EncryptedObject;
}

/** A tiny protobuf reader: varints and length-delimited fields are all EncryptedObject uses. */
function* fields(bytes: Buffer): Generator<{ field: number; varint?: number; bytes?: Buffer }> {
  let offset = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = bytes[offset];
      if (byte === undefined) throw new Error('truncated protobuf varint');
      offset += 1;
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
    }
  };
  while (offset < bytes.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (wireType === 0) {
      yield { field, varint: varint() };
    } else if (wireType === 2) {
      const length = varint();
      yield { field, bytes: bytes.subarray(offset, offset + length) };
      offset += length;
    } else {
      throw new Error(`unexpected protobuf wire type ${wireType}`);
    }
  }
}

export function decodeEncryptedObject(bytes: Buffer): EncryptedObject {
  let encryptedData: Buffer = Buffer.alloc(0);
  let keyID = '';
  let encryptedDEKSource: Buffer = Buffer.alloc(0);
  const annotations: Record<string, Buffer> = {};
  let encryptedDEKSourceType = 0;
  for (const { field, varint, bytes: value } of fields(bytes)) {
    if (field === 1 && value) encryptedData = value;
    else if (field === 2 && value) keyID = value.toString('utf8');
    else if (field === 3 && value) encryptedDEKSource = value;
    else if (field === 4 && value) {
      // map<string, bytes> entry: key = 1, value = 2.
      let key = '';
      let entry: Buffer = Buffer.alloc(0);
      for (const part of fields(value)) {
        if (part.field === 1 && part.bytes) key = part.bytes.toString('utf8');
        if (part.field === 2 && part.bytes) entry = part.bytes;
      }
      annotations[key] = entry;
    } else if (field === 5 && varint !== undefined) encryptedDEKSourceType = varint;
  }
  return { encryptedData, keyID, encryptedDEKSource, annotations, encryptedDEKSourceType };
}

const KMS_V2_PREFIX = /^k8s:enc:kms:v2:([^:]+):/;

/** The provider name and envelope of a value stored by the KMS v2 provider (throws otherwise). */
export function decodeKmsV2Value(stored: Buffer): KmsV2Envelope {
  const head = stored.subarray(0, 128).toString('latin1');
  const match = KMS_V2_PREFIX.exec(head);
  if (!match?.[1])
    throw new Error(`not a KMS v2 value: starts with ${JSON.stringify(head.slice(0, 24))}`);
  return { provider: match[1], object: decodeEncryptedObject(stored.subarray(match[0].length)) };
}
