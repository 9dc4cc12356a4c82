/**
 * A test double of Alibaba's ack-kms-plugin under KMS v2 (AliyunContainerService/ack-kms-plugin,
 * plugin/server_v2.go and plugin/kms.go), reproducing what kube-apiserver sees from it:
 * - Status encrypts and decrypts the text "healthcheck" through KMS and answers
 *   `healthz: "ok"`, `version: "v2"` and the **configured** key id as `key_id`, which never
 *   changes when KMS rotates the key;
 * - Encrypt sends the plaintext to KMS as base64 text under the configured key id; the
 *   ciphertext is the bytes of KMS's `CiphertextBlob` text, `key_id` the configured key id,
 *   and the annotations carry the request id, the key version and the region;
 * - Decrypt hands the ciphertext to KMS as the `CiphertextBlob` text and base64-decodes the
 *   answer (it ignores the request's `key_id`).
 * It runs in the test process on a unix socket, through the real KMS SDK client.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createKmsClient } from '../../../src/kms/client.js';
import { loadKmsV2Package } from '../../../src/plugin/grpc-server.js';
import type { KmsAccount } from '../../../src/emulator/admin.js';
import { emulatorKmsSettings } from '../../helpers/kms.js';

const HEALTH_CHECK_TEXT = 'healthcheck';
/** The annotation keys ack-kms-plugin puts on every Encrypt answer. */
export const ACK_ANNOTATIONS = {
  requestId: 'x-acs-request-id.ack.alibabacloud.com',
  keyVersionId: 'x-acs-kms-key-version-id.ack.alibabacloud.com',
  regionId: 'x-acs-kms-region-id.ack.alibabacloud.com',
} as const;

export interface StaticKeyIdPlugin {
  readonly socketPath: string;
  /** The key_id it reports: the configured key id, whatever the key's versions. */
  readonly keyId: string;
  /** Calls answered so far, by method. */
  readonly calls: Readonly<Record<'Status' | 'Encrypt' | 'Decrypt', number>>;
  stop(): Promise<void>;
}

type Callback = (error: Partial<grpc.StatusObject> | null, reply?: unknown) => void;
interface Call<T> {
  request: T;
}

export async function startStaticKeyIdPlugin(
  account: KmsAccount & { protocol: 'http' | 'https' },
  keyId: string,
  socketPath: string,
): Promise<StaticKeyIdPlugin> {
  const kms = createKmsClient(emulatorKmsSettings(account, keyId), {
    credential: { accessKeyId: account.accessKeyId, accessKeySecret: account.accessKeySecret },
  });
  const calls = { Status: 0, Encrypt: 0, Decrypt: 0 };
  const encrypt = async (plaintext: Buffer) => {
    const answer = await kms.encrypt(keyId, plaintext.toString('base64'));
    return {
      ciphertext: Buffer.from(answer.ciphertextBlob),
      key_id: keyId,
      annotations: {
        [ACK_ANNOTATIONS.requestId]: Buffer.from(answer.requestId ?? ''),
        [ACK_ANNOTATIONS.keyVersionId]: Buffer.from(answer.keyVersionId),
        [ACK_ANNOTATIONS.regionId]: Buffer.from(account.regionId),
      },
    };
  };
  const decrypt = async (ciphertext: Buffer): Promise<Buffer> =>
    Buffer.from((await kms.decrypt(ciphertext.toString('latin1'))).plaintext, 'base64');
  const answer = (method: keyof typeof calls, work: () => Promise<unknown>, done: Callback) => {
    calls[method] += 1;
    work().then(
      (reply) => {
        done(null, reply);
      },
      (error: unknown) => {
        done({ code: grpc.status.UNKNOWN, details: String(error) });
      },
    );
  };

  const server = new grpc.Server();
  server.addService(loadKmsV2Package().KeyManagementService.service, {
    Status: (_call: unknown, done: Callback) => {
      answer(
        'Status',
        async () => {
          const { ciphertext } = await encrypt(Buffer.from(HEALTH_CHECK_TEXT));
          const plain = await decrypt(ciphertext);
          if (plain.toString() !== HEALTH_CHECK_TEXT)
            throw new Error('decrypted text does not match');
          return { version: 'v2', healthz: 'ok', key_id: keyId };
        },
        done,
      );
    },
    Encrypt: (call: Call<{ plaintext: Buffer }>, done: Callback) => {
      answer('Encrypt', () => encrypt(call.request.plaintext), done);
    },
    Decrypt: (call: Call<{ ciphertext: Buffer }>, done: Callback) => {
      answer('Decrypt', async () => ({ plaintext: await decrypt(call.request.ciphertext) }), done);
    },
  });
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (error) => {
      if (error) reject(error);
      else resolve();
    });
  });
  return {
    socketPath,
    keyId,
    calls,
    stop: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => {
          rmSync(socketPath, { force: true });
          resolve();
        });
      }),
  };
}
