import { MandateError } from '@mandate/contracts';

/** The `MandateError` a promise rejects with; throws if it resolves or rejects with anything else. */
export async function failure(promise: Promise<unknown>): Promise<MandateError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof MandateError)) throw new Error(`expected a MandateError, got ${String(error)}`);
  return error;
}
