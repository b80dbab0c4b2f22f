import { MandateError } from '@mandate/contracts';
import { assertValidCollection, assertValidMaxAge } from './keys.js';
import type { CollectionOptions, DocumentCollection } from './port.js';

/** Runs a backend call; anything it throws that is not ours becomes `unavailable`. */
export async function backend<R>(call: () => Promise<R>): Promise<R> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof MandateError) throw error;
    throw new MandateError('unavailable', 'the store did not answer', { cause: error });
  }
}

/**
 * A store's `collection`: each one opened (and prepared) once for every caller (once per max age); a failed open is
 * `unavailable` with the message `failure(name)`, and forgotten so the next call tries again.
 */
export function openOnce(
  open: (name: string, options: CollectionOptions) => Promise<DocumentCollection<unknown>>,
  failure: (name: string) => string,
): <T>(name: string, options?: CollectionOptions) => Promise<DocumentCollection<T>> {
  const opened = new Map<string, Promise<DocumentCollection<unknown>>>();
  return <T>(name: string, options: CollectionOptions = {}) => {
    assertValidCollection(name);
    // Keyed by the max age too: a service prepares its collections at start-up by name alone, and
    // the repository that opens one with a max age must still get it.
    const key = `${name}/${assertValidMaxAge(options.maxAgeMs) ?? ''}`;
    if (!opened.has(key)) {
      const opening = open(name, options).catch((cause: unknown) => {
        opened.delete(key);
        throw new MandateError('unavailable', failure(name), { cause });
      });
      opened.set(key, opening);
    }
    return opened.get(key) as Promise<DocumentCollection<T>>;
  };
}
