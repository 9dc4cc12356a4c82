/**
 * Key-version calls for tests that drive the emulator. The product reads only DescribeKey;
 * these go through the real @alicloud/kms20160120 SDK so the tests still see the wire format.
 */
import { Kms, type KmsSdkClient } from './emulator.js';

export interface KeyVersion {
  readonly keyId: string;
  readonly keyVersionId: string;
  readonly creationDate: string | undefined;
}

const PAGE_SIZE = 100;
const MAX_PAGES = 50;

/** ListKeyVersions, every page. */
export async function listKeyVersions(sdk: KmsSdkClient, keyId: string): Promise<KeyVersion[]> {
  const versions: KeyVersion[] = [];
  for (let pageNumber = 1; pageNumber <= MAX_PAGES; pageNumber += 1) {
    const page = await sdk.listKeyVersions(
      new Kms.ListKeyVersionsRequest({ keyId, pageNumber, pageSize: PAGE_SIZE }),
    );
    const items = page.keyVersions.keyVersion;
    for (const item of items) {
      versions.push({
        keyId: item.keyId,
        keyVersionId: item.keyVersionId,
        creationDate: item.creationDate,
      });
    }
    if (items.length === 0 || versions.length >= page.totalCount) break;
  }
  return versions;
}

export async function describeKeyVersion(
  sdk: KmsSdkClient,
  keyId: string,
  keyVersionId: string,
): Promise<KeyVersion> {
  const answer = await sdk.describeKeyVersion(
    new Kms.DescribeKeyVersionRequest({ keyId, keyVersionId }),
  );
  const { keyVersion } = answer;
  return {
    keyId: keyVersion.keyId,
    keyVersionId: keyVersion.keyVersionId,
    creationDate: keyVersion.creationDate,
  };
}
