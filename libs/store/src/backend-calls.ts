import { MandateError } from '@mandate/contracts';
import { assertValidCollection } from './keys.js';
import type { DocumentCollection } from './port.js';

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
 * A store's `collection`: each one opened (and prepared) once for every caller; a failed open is
 * `unavailable` with the message `failure(name)`, and forgotten so the next call tries again.
 */
export function openOnce(open: (name: string) => Promise<DocumentCollection<unknown>>, failure: (name: string) => string): <T>(name: string) => Promise<DocumentCollection<T>> {
  const opened = new Map<string, Promise<DocumentCollection<unknown>>>();
  return <T>(name: string) => {
    assertValidCollection(name);
    if (!opened.has(name)) {
      const opening = open(name).catch((cause: unknown) => {
        opened.delete(name);
        throw new MandateError('unavailable', failure(name), { cause });
      });
      opened.set(name, opening);
    }
    return opened.get(name) as Promise<DocumentCollection<T>>;
  };
}
