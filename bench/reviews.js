/**
 * AdmissionReview bodies shaped like the ones kube-apiserver sends for a Secret write
 * (admission.k8s.io/v1, with managedFields, userInfo groups and options), sized on purpose.
 */
import { randomBytes } from 'node:crypto';

function base64OfSize(encodedLength) {
  // Base64 of n bytes is 4·ceil(n/3) characters long.
  const raw = Math.floor((encodedLength * 3) / 4);
  return randomBytes(raw).toString('base64').slice(0, encodedLength);
}

function secret({ name, namespace, dataLength, annotations, resourceVersion }) {
  return {
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: {
      name,
      namespace,
      uid: '6f1d4a3c-2b8e-4f0a-9c7d-5e6f7a8b9c0d',
      ...(resourceVersion !== undefined ? { resourceVersion } : {}),
      creationTimestamp: resourceVersion !== undefined ? '2026-10-01T08:00:00Z' : null,
      labels: { 'app.kubernetes.io/name': 'payments-api', 'app.kubernetes.io/part-of': 'shop' },
      ...(annotations !== undefined ? { annotations } : {}),
      managedFields: [
        {
          manager: 'kubectl-client-side-apply',
          operation: 'Update',
          apiVersion: 'v1',
          time: '2026-11-28T09:30:00Z',
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:data': { '.': {}, 'f:DATABASE_URL': {}, 'f:tls.key': {} },
            'f:metadata': { 'f:labels': { '.': {}, 'f:app.kubernetes.io/name': {} } },
            'f:type': {},
          },
        },
      ],
    },
    data: {
      DATABASE_URL: base64OfSize(120),
      'tls.key': base64OfSize(dataLength),
    },
    type: 'Opaque',
  };
}

function review({ operation, object, oldObject }) {
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: '', version: 'v1', kind: 'Secret' },
      resource: { group: '', version: 'v1', resource: 'secrets' },
      requestKind: { group: '', version: 'v1', kind: 'Secret' },
      requestResource: { group: '', version: 'v1', resource: 'secrets' },
      name: object.metadata.name,
      namespace: object.metadata.namespace,
      operation,
      userInfo: {
        username: 'system:serviceaccount:payments:deployer',
        uid: '014fbff9-a07c-4b2f-8d1e-3c5a7b9d0e1f',
        groups: [
          'system:serviceaccounts',
          'system:serviceaccounts:payments',
          'system:authenticated',
        ],
      },
      object,
      oldObject,
      dryRun: false,
      options: {
        kind: operation === 'CREATE' ? 'CreateOptions' : 'UpdateOptions',
        apiVersion: 'meta.k8s.io/v1',
        fieldManager: 'kubectl-client-side-apply',
      },
    },
  };
}

/** A Secret CREATE review of about `targetBytes` (default 2 KiB) of JSON. */
export function secretCreateReview(targetBytes = 2048) {
  const build = (dataLength) =>
    review({
      operation: 'CREATE',
      object: secret({ name: 'payments-db', namespace: 'payments', dataLength }),
      oldObject: null,
    });
  const overhead = JSON.stringify(build(0)).length;
  return JSON.stringify(build(Math.max(0, targetBytes - overhead)));
}

/** A Secret UPDATE review whose object and oldObject each carry `dataBytes` of data. */
export function secretUpdateReview(dataBytes = 1024 * 1024) {
  const annotations = {
    'kms-secret-guard.io/key-id': 'key-hzz6old0000000000000',
    'kms-secret-guard.io/key-version': 'old-version-1',
  };
  const encoded = Math.ceil(dataBytes / 3) * 4;
  return JSON.stringify(
    review({
      operation: 'UPDATE',
      object: secret({
        name: 'big-bundle',
        namespace: 'payments',
        dataLength: encoded,
        annotations,
        resourceVersion: '48214',
      }),
      oldObject: secret({
        name: 'big-bundle',
        namespace: 'payments',
        dataLength: encoded,
        annotations,
        resourceVersion: '48213',
      }),
    }),
  );
}
