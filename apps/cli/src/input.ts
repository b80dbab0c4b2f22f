import { readFile, stat } from 'node:fs/promises';
import { EXIT } from './bus.js';
import { CliError, warn } from './output.js';

/*
 * What commands read besides command-line values: files that options name, and stdin. Messages
 * name the option and the file, never the content, which may be a secret or a private key.
 */

/** The text of a file an option names; one that cannot be read is a usage error, e.g. "cannot read --key-file f: ENOENT". */
export async function readOptionFile(file: string, option: string): Promise<string> {
  return readFile(file, 'utf8').catch((error: unknown) => {
    throw new CliError(`cannot read ${option} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, EXIT.invalid);
  });
}

/** Everything on stdin, as text. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** A file holding a secret or a private key should be its owner's alone; say so when it is not (the read goes ahead). */
export async function warnIfOthersCanRead(file: string): Promise<void> {
  const mode = (await stat(file)).mode;
  if ((mode & 0o077) !== 0) warn(`${file} can be read by other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
}
