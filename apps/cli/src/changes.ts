import { Option } from 'commander';
import { EXIT, type ActorOptions } from './bus.js';
import { CliError } from './output.js';
import { nonNegativeInteger } from './parse.js';

/*
 * What the commands that change or delete a named record share: the optimistic-concurrency guard
 * `--if-revision` (the change applies only if nobody changed the record since it was read), who
 * asked, and the `--clear-*` options that empty a list.
 */

export interface ChangeOptions extends ActorOptions {
  ifRevision?: number;
}

/** `--if-revision <n>`; `what` is the record, e.g. "workload". */
export function revisionOption(what: string): Option {
  return new Option('--if-revision <n>', `only if the ${what} is still at this revision (from get)`).argParser(nonNegativeInteger);
}

/** Which record a change is for, since which revision, and who asks; the caller adds what changes. */
export function changeOf(name: string, options: ChangeOptions) {
  return { tenant: options.tenant, name, ...(options.ifRevision !== undefined ? { expectedRevision: options.ifRevision } : {}), actor: options.actor };
}

/** An update that changes nothing is a usage error; the message lists what could be given. */
export function nothingToChange(options: readonly string[]): CliError {
  return new CliError(`nothing to change: give at least one of ${options.join(', ')}`, EXIT.invalid);
}

/** One `--clear-*` option: whether it was given, the field it empties, and (for the message) the option that sets that field. */
export type Clear = readonly [flag: string, given: boolean | undefined, field: string, empty: unknown, setter?: string];

/** Empties the cleared fields of an update's `set`; clearing a field and setting it on one command line is a usage error. */
export function applyClears(set: object, clears: readonly Clear[]): void {
  for (const [flag, given, field, empty, setter] of clears) {
    if (!given) continue;
    if (field in set) throw new CliError(`${flag} and ${setter ?? `the option that sets ${field}`} contradict each other; give one`, EXIT.invalid);
    Object.assign(set, { [field]: empty });
  }
}
