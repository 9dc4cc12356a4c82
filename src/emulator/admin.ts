/**
 * The "key admin": changes a key's state through the real Alibaba Cloud KMS SDK, exactly as
 * a person would change the key in KMS. `dev`'s demo key control, the end-to-end harness,
 * the benchmarks and the tests all drive the emulator's key through this one wrapper.
 */
import KmsSdk from '@alicloud/kms20160120';
import RpcClient from '@alicloud/rpc-client';

/** What KMS reports about the key after a change (empty strings for absent fields). */
export interface KeyAdminView {
  readonly keyState: string;
  readonly primaryKeyVersion: string;
  readonly deleteDate: string;
}

export interface KmsAdmin {
  disableKey(): Promise<void>;
  enableKey(): Promise<void>;
  /** Returns the DeleteDate KMS reports afterwards. */
  scheduleKeyDeletion(pendingWindowInDays: number): Promise<string>;
  cancelKeyDeletion(): Promise<void>;
  /** Rotates the key; returns the new primary key version id. */
  createKeyVersion(): Promise<string>;
  describeKey(): Promise<KeyAdminView>;
}

/** Where and as whom to call KMS: a running emulator has exactly these fields. */
export interface KmsAccount {
  readonly endpoint: string;
  /** Default 'http'. */
  readonly protocol?: 'http' | 'https';
  readonly regionId: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
}

export function createKmsAdmin(account: KmsAccount, keyId: string): KmsAdmin {
  const sdk = new KmsSdk.default(
    new RpcClient.Config({
      endpoint: account.endpoint,
      protocol: account.protocol ?? 'http',
      regionId: account.regionId,
      accessKeyId: account.accessKeyId,
      accessKeySecret: account.accessKeySecret,
    }),
  );
  const describeKey = async (): Promise<KeyAdminView> => {
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

/** The key changes `dev`'s demo key control offers, by the name in its URL. */
export const KEY_ADMIN_ACTIONS = [
  'disable',
  'enable',
  'rotate',
  'schedule-deletion',
  'cancel-deletion',
] as const;
export type KeyAdminAction = (typeof KEY_ADMIN_ACTIONS)[number];

/** The shortest pending window KMS allows, used when an action names none. */
export const DEMO_PENDING_WINDOW_DAYS = 7;

/** Performs one named key change. */
export async function performKeyAction(admin: KmsAdmin, action: KeyAdminAction): Promise<void> {
  switch (action) {
    case 'disable':
      return admin.disableKey();
    case 'enable':
      return admin.enableKey();
    case 'rotate':
      await admin.createKeyVersion();
      return;
    case 'schedule-deletion':
      await admin.scheduleKeyDeletion(DEMO_PENDING_WINDOW_DAYS);
      return;
    case 'cancel-deletion':
      return admin.cancelKeyDeletion();
  }
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}
