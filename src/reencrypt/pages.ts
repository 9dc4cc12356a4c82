import type {
  ListScope,
  SecretMetadata,
  SecretMetadataClient,
  SecretMetadataPage,
} from './kube-client.js';
import { isAfter, listKey } from './plan.js';
import { fatalMessage, messageOf, withRetries, type RequestPacing } from './requests.js';
import { isFatal } from './retry.js';
import { KubeApiError } from './kube-client.js';

/**
 * The sweep's walk through the list, page by page: continue tokens, restarts after 410 Gone
 * (expired tokens), and resuming after a restart without skipping or repeating a Secret.
 * Refuses to go round in circles: a continue token the server already sent, or a page of
 * Secrets already handled, ends the walk with an error (Kubernetes lists are in key order,
 * and each token is new).
 */

export interface ListerOptions extends RequestPacing {
  readonly client: SecretMetadataClient;
  readonly scope: ListScope;
  readonly pageSize: number;
  /** Bound on list restarts after expired continue tokens. */
  readonly maxListRestarts: number;
  /** True once the sweep stops (interrupted or a fatal error): no further list call. */
  readonly stopped: () => boolean;
}

export type ListStep =
  /** `fresh`: the page's Secrets not handled yet, in list order. */
  | { readonly kind: 'page'; readonly page: SecretMetadataPage; readonly fresh: SecretMetadata[] }
  | { readonly kind: 'done' }
  | { readonly kind: 'failed'; readonly message: string };

export interface SecretLister {
  next(): Promise<ListStep>;
  /** How many times the list restarted after an expired continue token. */
  readonly restarts: number;
}

const DONE: ListStep = { kind: 'done' };
const IN_CIRCLES =
  'stopped instead of going round in circles. Run again; if it repeats, check the API server or what sits in front of it.';
const NOT_ADVANCING = `list secrets: the API server sent a page of Secrets already handled (the list is not advancing); ${IN_CIRCLES}`;
const REPEATED_TOKEN = `list secrets: the API server sent a continue token it had sent before (the list would never end); ${IN_CIRCLES}`;

export function createSecretLister(options: ListerOptions): SecretLister {
  let continueToken: string | undefined;
  let finished = false;
  let lastHandled: string | undefined;
  /** After a restart without a token: skip everything up to the last Secret handled. */
  let resuming = false;
  let restarts = 0;
  let seenTokens = new Set<string>();

  /** One page, or the step that ends the walk; undefined to list again (after a restart). */
  async function fetchPage(): Promise<SecretMetadataPage | ListStep | undefined> {
    try {
      const token = continueToken;
      return await withRetries(options, () =>
        options.client.listPage(options.scope, options.pageSize, token),
      );
    } catch (error) {
      if (error instanceof KubeApiError && error.kind === 'expired') return restart(error);
      if (options.signal.aborted) return DONE;
      return {
        kind: 'failed',
        message:
          error instanceof KubeApiError && isFatal(error.kind)
            ? fatalMessage(error, 'list')
            : `cannot list secrets: ${messageOf(error)}`,
      };
    }
  }

  function restart(error: KubeApiError): ListStep | undefined {
    restarts += 1;
    if (restarts > options.maxListRestarts) {
      return {
        kind: 'failed',
        message: `list secrets: the continue token expired ${restarts} times; run again (finished Secrets are skipped).`,
      };
    }
    // With the server's fresh token we continue from the latest snapshot; without it we
    // restart and skip everything up to the last Secret handled (key order).
    continueToken = error.continueToken;
    resuming = continueToken === undefined;
    seenTokens = new Set();
    return undefined;
  }

  function freshItems(page: SecretMetadataPage): SecretMetadata[] {
    const fresh: SecretMetadata[] = [];
    for (const item of page.items) {
      const key = listKey(item.namespace, item.name);
      if (!isAfter(key, lastHandled)) continue;
      resuming = false;
      lastHandled = key;
      fresh.push(item);
    }
    return fresh;
  }

  /** Takes the page's continue token, or says why the walk cannot go on. */
  function advance(page: SecretMetadataPage, fresh: readonly SecretMetadata[]): string | undefined {
    if (page.items.length > 0 && fresh.length === 0 && !resuming) return NOT_ADVANCING;
    const next = page.continueToken;
    if (next !== undefined && seenTokens.has(next)) return REPEATED_TOKEN;
    if (next !== undefined) seenTokens.add(next);
    continueToken = next;
    finished = next === undefined;
    return undefined;
  }

  let pendingFailure: string | undefined;
  return {
    get restarts() {
      return restarts;
    },
    async next() {
      for (;;) {
        if (pendingFailure !== undefined) return { kind: 'failed', message: pendingFailure };
        if (finished || options.stopped()) return DONE;
        const fetched = await fetchPage();
        if (fetched === undefined) continue;
        if ('kind' in fetched) return fetched;
        const fresh = freshItems(fetched);
        // The page's Secrets are handled first; a bad token only ends what comes after.
        pendingFailure = advance(fetched, fresh);
        return { kind: 'page', page: fetched, fresh };
      }
    },
  };
}
