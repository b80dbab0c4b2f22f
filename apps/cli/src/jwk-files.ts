import { access, rm, writeFile } from 'node:fs/promises';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { PublicJwk } from '@mandate/contracts';
import { EXIT } from './bus.js';
import { CliError } from './output.js';
import { readOptionFile, warnIfOthersCanRead } from './input.js';

/** Members only a private (or symmetric) JWK has; the directory refuses them, and so do we, earlier. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

export const KEYGEN_ALGORITHMS = ['EdDSA', 'ES256'] as const;
export type KeygenAlgorithm = (typeof KEYGEN_ALGORITHMS)[number];

function invalid(message: string): CliError {
  return new CliError(message, EXIT.invalid);
}

async function readJson(file: string, what: string): Promise<unknown> {
  const text = await readOptionFile(file, what);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // The parser's message may quote the file's content, which may be key material: not shown.
    throw invalid(`${file} is not JSON; ${what} must be a JWK or a JWK set ({"keys": […]}) as JSON`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The keys in a file holding one JWK or a JWK set. */
function keysIn(file: string, json: unknown, what: string): Record<string, unknown>[] {
  if (isObject(json) && Array.isArray(json['keys'])) {
    if (!json['keys'].every(isObject)) throw invalid(`${file}: every entry of "keys" must be a JWK object`);
    return json['keys'];
  }
  if (isObject(json) && typeof json['kty'] === 'string') return [json];
  throw invalid(`${file} holds neither a JWK (with "kty") nor a JWK set ({"keys": […]}); ${what} must be one of these`);
}

function describeKey(key: Record<string, unknown>, index: number, count: number): string {
  if (typeof key['kid'] === 'string') return `key ${key['kid']}`;
  return count > 1 ? `key #${index + 1}` : 'the key';
}

/**
 * Public keys to register for a workload, from files holding a JWK or a JWK set. A private or
 * symmetric key is refused here, before anything is sent: a private key never leaves the machine.
 */
export async function readPublicKeyFiles(files: readonly string[]): Promise<{ keys: PublicJwk[] }> {
  const keys: PublicJwk[] = [];
  for (const file of files) {
    const found = keysIn(file, await readJson(file, '--public-key'), '--public-key');
    for (const [index, key] of found.entries()) {
      const member = PRIVATE_JWK_MEMBERS.find((m) => m in key);
      if (member) {
        throw invalid(
          `${file}: ${describeKey(key, index, found.length)} is a ${member === 'k' ? 'symmetric' : 'private'} key (it has "${member}"); ` +
            'register only the public key (`mandate workload keygen` writes it to <out>.pub.json). Nothing was sent.',
        );
      }
      keys.push(key as PublicJwk);
    }
  }
  return { keys };
}

/**
 * A private signing key: the workload's, for client assertions (`--key`), or a provider's client
 * key for private_key_jwt (`--client-key`). Warns if others may read the file.
 */
export async function readPrivateKeyFile(file: string, option = '--key'): Promise<JWK> {
  const found = keysIn(file, await readJson(file, option), option);
  if (found.length !== 1) throw invalid(`${file} holds ${found.length} keys; ${option} needs exactly one private JWK`);
  const key = found[0] as JWK;
  if (typeof key.d !== 'string') throw invalid(`${file} is a public key; ${option} needs the private JWK (the file \`mandate workload keygen --out\` wrote)`);
  if (typeof key.kid !== 'string' || key.kid.length === 0) throw invalid(`${file}: the private JWK has no "kid"; add the kid its public key is registered under`);
  await warnIfOthersCanRead(file);
  return key;
}

/** `foo.jwk.json` → `foo.jwk.pub.json`; without `.json`, `.pub.json` is appended. */
export function publicKeyPathFor(out: string): string {
  return `${out.endsWith('.json') ? out.slice(0, -'.json'.length) : out}.pub.json`;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(() => true, () => false);
}

/** Writes `value` as JSON to a new file: `wx` fails if the file appeared meanwhile; the mode applies as the file is created. */
async function writeNewJsonFile(file: string, value: unknown, mode: number): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`, { flag: 'wx', mode }).catch((error: unknown) => {
    throw new CliError(`cannot write ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  });
}

/**
 * A new signing key pair for a workload. The private JWK goes to `out` (mode 0600, never over an
 * existing file), the public one next to it; the default kid is the RFC 7638 thumbprint.
 */
export async function generateWorkloadKey(options: { out: string; alg: KeygenAlgorithm; kid?: string }): Promise<{ publicJwk: PublicJwk; privateFile: string; publicFile: string }> {
  const publicFile = publicKeyPathFor(options.out);
  for (const file of [options.out, publicFile]) {
    if (await exists(file)) throw new CliError(`${file} already exists; not overwriting a key file (choose another --out)`);
  }
  const { publicKey, privateKey } = await generateKeyPair(options.alg, { extractable: true });
  const publicPart = await exportJWK(publicKey);
  const kid = options.kid ?? (await calculateJwkThumbprint(publicPart, 'sha256'));
  const publicJwk = { ...publicPart, kid, alg: options.alg, use: 'sig' } as PublicJwk;
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: options.alg, use: 'sig' };

  await writeNewJsonFile(options.out, privateJwk, 0o600);
  // No private key without its public half: a failed second write takes the first file back.
  await writeNewJsonFile(publicFile, publicJwk, 0o644).catch(async (error: unknown) => {
    await rm(options.out, { force: true });
    throw error;
  });
  return { publicJwk, privateFile: options.out, publicFile };
}
