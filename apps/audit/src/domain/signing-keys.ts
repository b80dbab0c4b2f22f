import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '@mandate/config';
import { MandateError } from '@mandate/contracts';

/*
 * The key that signs trail digests. It is deliberately not in the document store: whoever can
 * write the store (a leaked MongoDB password, a NATS user with KV rights) can rewrite entries and
 * recompute every hash, but cannot sign a digest, so the digests still expose the rewrite.
 *
 * Key file (JSON, mode 0600), also accepted as the value of AUDIT_SIGNING_KEY:
 *   { "current": { "kty": "OKP", "crv": "Ed25519", "x": "…", "d": "…" },
 *     "retired": [ { "kty": "OKP", "crv": "Ed25519", "x": "…" } ] }
 * Retired keys are public halves only: they verify old digests and never sign again. Key ids are
 * RFC 7638 thumbprints, computed here, never taken from the file, so a file cannot lie about them.
 */

const publicJwkSchema = z.object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string().regex(/^[A-Za-z0-9_-]{43}$/) });
const privateJwkSchema = publicJwkSchema.extend({ d: z.string().regex(/^[A-Za-z0-9_-]{43}$/) });
const keyFileSchema = z.object({ current: privateJwkSchema, retired: z.array(publicJwkSchema).default([]) });

export type PublicEd25519Jwk = z.output<typeof publicJwkSchema>;

export interface DigestPublicKey {
  kid: string;
  status: 'current' | 'retired';
  publicJwk: PublicEd25519Jwk & { kid: string };
}

/** RFC 7638 thumbprint of an Ed25519 public JWK (members crv, kty, x in that order). */
export function jwkThumbprint(jwk: PublicEd25519Jwk): string {
  return createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).digest('base64url');
}

/** The current signing key and every key the trail's digests may have been signed with. */
export class DigestKeyRing {
  readonly #signingKey: KeyObject;
  readonly #verifiers: ReadonlyMap<string, { key: KeyObject; info: DigestPublicKey }>;
  readonly currentKid: string;

  private constructor(current: z.output<typeof privateJwkSchema>, retired: readonly PublicEd25519Jwk[]) {
    this.#signingKey = createPrivateKey({ key: current, format: 'jwk' });
    const publicOf = (jwk: PublicEd25519Jwk) => ({ kty: jwk.kty, crv: jwk.crv, x: jwk.x });
    // A private half that does not belong to its public half would sign digests nobody can verify.
    const derived = createPublicKey(this.#signingKey).export({ format: 'jwk' }) as { x?: string };
    if (derived.x !== current.x) throw new MandateError('internal', 'the audit signing key file is inconsistent: x is not the public half of d');
    this.currentKid = jwkThumbprint(current);
    const verifiers = new Map<string, { key: KeyObject; info: DigestPublicKey }>();
    const add = (jwk: PublicEd25519Jwk, status: DigestPublicKey['status']) => {
      const kid = jwkThumbprint(jwk);
      if (verifiers.has(kid)) return;
      verifiers.set(kid, { key: createPublicKey({ key: publicOf(jwk), format: 'jwk' }), info: { kid, status, publicJwk: { ...publicOf(jwk), kid } } });
    };
    add(current, 'current');
    for (const jwk of retired) add(jwk, 'retired');
    this.#verifiers = verifiers;
  }

  /** Parses a key file's text; the message never quotes it. */
  static fromJson(text: string, source: string): DigestKeyRing {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new MandateError('internal', `${source} is not JSON`);
    }
    const parsed = keyFileSchema.safeParse(json);
    if (!parsed.success) throw new MandateError('internal', `${source} is not an audit signing key file: ${parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ')}`);
    return new DigestKeyRing(parsed.data.current, parsed.data.retired);
  }

  /** A fresh key file's content; the caller writes it with mode 0600. */
  static generateFile(): string {
    const { privateKey } = generateKeyPairSync('ed25519');
    const jwk = privateKey.export({ format: 'jwk' }) as { x: string; d: string };
    return `${JSON.stringify({ current: { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d }, retired: [] }, null, 2)}\n`;
  }

  sign(data: string): string {
    return sign(null, Buffer.from(data, 'utf8'), this.#signingKey).toString('base64url');
  }

  /** `unknown-key` when the kid is not one of ours; otherwise whether the signature holds. */
  verify(kid: string, data: string, signature: string): 'valid' | 'invalid' | 'unknown-key' {
    const verifier = this.#verifiers.get(kid);
    if (!verifier) return 'unknown-key';
    return verify(null, Buffer.from(data, 'utf8'), verifier.key, Buffer.from(signature, 'base64url')) ? 'valid' : 'invalid';
  }

  publicKeys(): DigestPublicKey[] {
    return [...this.#verifiers.values()].map((v) => v.info);
  }
}

export interface LoadDigestKeysOptions {
  mode: 'embedded' | 'production';
  /** AUDIT_SIGNING_KEY: the key file's JSON itself (a mounted secret as a variable). */
  keyJson?: string | undefined;
  /** AUDIT_SIGNING_KEY_FILE, or the embedded default `<data dir>/keys/audit-signing-key.json`. */
  keyFile: string;
}

/**
 * Loads the digest key ring. Embedded mode generates a key file on first start; production
 * refuses to, so a lost key is noticed rather than silently replaced by one nobody pinned.
 */
export async function loadDigestKeys(options: LoadDigestKeysOptions): Promise<{ ring: DigestKeyRing; source: string; generated: boolean }> {
  if (options.keyJson) return { ring: DigestKeyRing.fromJson(options.keyJson, 'AUDIT_SIGNING_KEY'), source: 'AUDIT_SIGNING_KEY', generated: false };
  let text: string | undefined;
  try {
    text = await readFile(options.keyFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new MandateError('internal', `cannot read the audit signing key file ${options.keyFile}`, { cause: error });
  }
  if (text !== undefined) return { ring: DigestKeyRing.fromJson(text, options.keyFile), source: options.keyFile, generated: false };
  if (options.mode === 'production') {
    // A ConfigError, so the start-up log says which variable is missing (a MandateError's message is not logged).
    throw new ConfigError([`AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE: required in production mode (production never generates one; make one with mandate keys audit-signing; looked for ${options.keyFile})`]);
  }
  const generated = DigestKeyRing.generateFile();
  await mkdir(dirname(options.keyFile), { recursive: true, mode: 0o700 });
  // `wx`: two services starting at once must not overwrite each other's fresh key.
  try {
    await writeFile(options.keyFile, generated, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { ring: DigestKeyRing.fromJson(await readFile(options.keyFile, 'utf8'), options.keyFile), source: options.keyFile, generated: false };
  }
  await chmod(options.keyFile, 0o600);
  return { ring: DigestKeyRing.fromJson(generated, options.keyFile), source: options.keyFile, generated: true };
}
