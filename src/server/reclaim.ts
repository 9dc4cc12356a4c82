import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Body bytes between two minor garbage collections. V8 frees the memory behind socket
 * chunks (Buffers, outside the JS heap) only at a garbage collection, and starts one only
 * once ~64 MB of such memory piled up or the young generation fills; the streaming parser
 * allocates next to nothing on the heap, so a burst of large Secret writes held tens of MB of
 * dead chunks (100 concurrent 1 MiB UPDATE reviews: peak RSS +50 MB over idle, +20 MB with
 * this). A scavenge of the 2 MiB semi-spaces costs a fraction of a millisecond.
 */
export const RECLAIM_EVERY_BYTES = 2 * 1024 * 1024;

type MinorCollect = () => void;

/** V8's gc(), fetched from a fresh context with the flag set only for that moment. */
function minorCollector(): MinorCollect | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    setFlagsFromString('--no-expose-gc');
    if (typeof gc !== 'function') return undefined;
    return () => {
      (gc as (options: { type: 'minor' }) => void)({ type: 'minor' });
    };
  } catch {
    return undefined;
  }
}

/** Returns the callback to report received body bytes; it collects every `everyBytes`. */
export function createChunkReclaimer(everyBytes = RECLAIM_EVERY_BYTES): (bytes: number) => void {
  const collect = minorCollector();
  if (collect === undefined) return () => undefined;
  let pending = 0;
  return (bytes) => {
    pending += bytes;
    if (pending < everyBytes) return;
    pending = 0;
    collect();
  };
}
