import KmsSdk from '@alicloud/kms20160120';
import RpcClient from '@alicloud/rpc-client';

/**
 * Key state changes go through the real Alibaba Cloud SDK against the emulator, exactly as
 * a person would change the key in KMS.
 */
export interface KmsAdmin {
  disableKey(): Promise<void>;
  enableKey(): Promise<void>;
  /** Returns the DeleteDate KMS reports afterwards. */
  scheduleKeyDeletion(pendingWindowInDays: number): Promise<string>;
  cancelKeyDeletion(): Promise<void>;
  /** Rotates the key; returns the new primary key version id. */
  createKeyVersion(): Promise<string>;
  describeKey(): Promise<{ keyState: string; primaryKeyVersion: string; deleteDate: string }>;
}

/** Where and as whom to call KMS: a running emulator has exactly these fields. */
export interface KmsAccount {
  readonly endpoint: string;
  readonly regionId: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
}

export function createKmsAdmin(account: KmsAccount, keyId: string): KmsAdmin {
  const sdk = new KmsSdk.default(
    new RpcClient.Config({
      endpoint: account.endpoint,
      protocol: 'http',
      regionId: account.regionId,
      accessKeyId: account.accessKeyId,
      accessKeySecret: account.accessKeySecret,
    }),
  );
  const describeKey = async (): Promise<{
    keyState: string;
    primaryKeyVersion: string;
    deleteDate: string;
  }> => {
    const response = await sdk.describeKey(new KmsSdk.DescribeKeyRequest({ keyId }));
    // The SDK types every field as present; the wire may omit some.
    const meta = (response as { keyMetadata?: Partial<Record<string, unknown>> }).keyMetadata;
    return {
      keyState: text(meta?.keyState),
      primaryKeyVersion: text(meta?.primaryKeyVersion),
      deleteDate: text(meta?.deleteDate),
    };
  };
  return {
    async disableKey() {
      await sdk.disableKey(new KmsSdk.DisableKeyRequest({ keyId }));
    },
    async enableKey() {
      await sdk.enableKey(new KmsSdk.EnableKeyRequest({ keyId }));
    },
    async scheduleKeyDeletion(pendingWindowInDays) {
      await sdk.scheduleKeyDeletion(
        new KmsSdk.ScheduleKeyDeletionRequest({ keyId, pendingWindowInDays }),
      );
      return (await describeKey()).deleteDate;
    },
    async cancelKeyDeletion() {
      await sdk.cancelKeyDeletion(new KmsSdk.CancelKeyDeletionRequest({ keyId }));
    },
    async createKeyVersion() {
      const response = await sdk.createKeyVersion(new KmsSdk.CreateKeyVersionRequest({ keyId }));
      const version = text(
        (response as { keyVersion?: Partial<Record<string, unknown>> }).keyVersion?.keyVersionId,
      );
      if (version === '') {
        throw new Error('CreateKeyVersion answered without KeyVersion.KeyVersionId');
      }
      return version;
    },
    describeKey,
  };
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}
