/** How much `reencrypt` accepts from the API server (no imports: the CLI's --help reads them). */

/**
 * Per request, whatever the server does (a byte every few seconds never resets it). A list
 * page of DEFAULT_MAX_RESPONSE_BYTES takes a few seconds even on a slow control plane link.
 */
export const DEFAULT_REQUEST_DEADLINE_MS = 60_000;

/**
 * Memory arithmetic (the Job: 512 Mi limit, NODE_OPTIONS --max-old-space-size=384). The API
 * server caps an object's annotations at 256 KiB; with JSON escaping (last-applied-
 * configuration is JSON inside a string: every quote doubles) and the rest of the metadata
 * (labels, managedFields) a worst-case item is about 512 KiB + 16 KiB on the wire. A page of
 * DEFAULT_PAGE_SIZE = 100 such
 * items is ≈ 53 MiB, under this 64 MiB cap. One response costs
 * about 3–4× its size at its peak (the decoded text, the parsed tree, the bytes in flight),
 * so ≤ 256 MiB over a ≈ 40 MiB baseline heap: within the 384 MiB old space and the pod's
 * 512 Mi with margin. A response over the cap fails and names --page-size as the remedy.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_PAGE_SIZE = 100;
