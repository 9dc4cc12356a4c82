/** How much `reencrypt` accepts from the API server (no imports: the CLI's --help reads them). */

/**
 * Per request, whatever the server does (a byte every few seconds never resets it). A list
 * page of DEFAULT_MAX_RESPONSE_BYTES takes a few seconds even on a slow control plane link.
 */
export const DEFAULT_REQUEST_DEADLINE_MS = 60_000;

/**
 * Memory arithmetic (the Job: 512 Mi limit, NODE_OPTIONS --max-old-space-size=256). The API
 * server caps an object's annotations at 256 KiB; with JSON escaping (last-applied-
 * configuration is JSON inside a string: every quote doubles) and the rest of the metadata
 * (labels, managedFields) a worst-case item is about 512 KiB + 16 KiB on the wire, so a page
 * of DEFAULT_PAGE_SIZE = 50 such items is ≈ 26 MiB, under this 32 MiB cap. While a page is
 * parsed it lives about three times (its text, the parsed tree, the bytes in flight), so
 * ≤ 96 MiB over a ≈ 40 MiB baseline heap: well within the 256 MiB heap. Measured against a
 * hostile server (test/reliability/reencrypt-hostile-apiserver.test.ts), 500 such Secrets
 * peak at ≈ 230 MiB RSS, ≈ 125 MiB of it Node, TLS and the SDKs before any page. A response
 * over the cap fails and names --page-size as the remedy.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
export const DEFAULT_PAGE_SIZE = 50;
