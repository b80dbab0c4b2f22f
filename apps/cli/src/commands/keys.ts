import { createHash, generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { defaultKeyFile, KeyRing, rotateKeyFile } from '@mandate/crypto';
import { EXIT } from '../bus.js';
import { CliError, dim, done } from '../output.js';

/**
 * `mandate keys rotate`: adds a new primary master key to the embedded key file. Old keys stay,
 * so existing records remain readable; services pick the new key up on restart.
 */
export async function rotateKeys(options: { dataDir: string; keyFile?: string }): Promise<void> {
  const file = options.keyFile ?? defaultKeyFile(resolve(options.dataDir));
  const ring = await rotateKeyFile(file);
  done(`${file}: new primary key ${ring.primaryId}; keys ${ring.keyIds.join(', ')}. Restart services to use it.`);
}

/** A new production key: its content, the variable that takes it as a value, and what the person should know. */
interface NewKey {
  json: unknown;
  variable: string;
  fileVariable: string;
  summary: string;
}

/** A fresh master key ring (`MANDATE_MASTER_KEYS`), as libs/crypto reads it: `{ "primary": "k1", "keys": { "k1": "<32 bytes, base64>" } }`. */
export function newMasterKeys(): NewKey {
  const ring = KeyRing.generate();
  return { json: ring.toJSON(), variable: 'MANDATE_MASTER_KEYS', fileVariable: 'MANDATE_MASTER_KEY_FILE', summary: `master key ring, primary key ${ring.primaryId}` };
}

/**
 * A fresh audit digest signing key file (`AUDIT_SIGNING_KEY`), as apps/audit reads it:
 * `{ "current": <Ed25519 private JWK>, "retired": [] }`. The key id is its RFC 7638 thumbprint, as
 * the audit service computes it, so it can be pinned before the service ever starts.
 */
export function newAuditSigningKey(): NewKey & { kid: string } {
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) as { x: string; d: string };
  const kid = createHash('sha256').update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x: jwk.x })).digest('base64url');
  return {
    json: { current: { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d }, retired: [] },
    variable: 'AUDIT_SIGNING_KEY',
    fileVariable: 'AUDIT_SIGNING_KEY_FILE',
    summary: `audit signing key ${kid} (Ed25519); pin this key id where the store's writers cannot change it: mandate.audit-trail.v1.keys must keep listing it`,
    kid,
  };
}

interface KeyOutputOptions {
  out?: string;
  env?: boolean;
}

/**
 * Hands a new key over: to a new file (mode 0600, never over an existing one), or on stdout as the
 * JSON value or, with `--env`, as the line for an env file (single-quoted, so Compose takes it as it is).
 */
async function handOver(key: NewKey, options: KeyOutputOptions): Promise<void> {
  if (options.out && options.env) throw new CliError('choose --out or --env, not both', EXIT.invalid);
  if (options.out) {
    await writeFile(options.out, `${JSON.stringify(key.json, null, 2)}\n`, { flag: 'wx', mode: 0o600 }).catch((error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      throw new CliError(code === 'EEXIST' ? `${options.out} already exists; not overwriting a key file (choose another --out)` : `cannot write ${options.out}: ${code ?? String(error)}`);
    });
    done(`${options.out} (mode 0600): ${key.summary}`);
    process.stderr.write(dim(`give it to the service as ${key.fileVariable}=${options.out} (a mounted secret), or its content as ${key.variable}\n`));
    return;
  }
  const value = JSON.stringify(key.json);
  process.stdout.write(options.env ? `${key.variable}='${value}'\n` : `${value}\n`);
  done(key.summary);
  process.stderr.write(dim(`${options.env ? 'put the line in deploy/.env' : `set it as ${key.variable}`}; it is a secret: keep it out of shell history and logs\n`));
}

/** `mandate keys master` and `mandate keys audit-signing`: the keys a production deployment needs, made before its first start. */
export function addKeyFileCommands(program: Command): void {
  const keys = program.commands.find((command) => command.name() === 'keys');
  if (!keys) throw new TypeError('the keys command group must be registered before its key file commands');
  keys.description('make the keys a production deployment needs, and rotate the master keys');
  const outputOptions = (command: Command) =>
    command
      .addOption(new Option('--out <file>', 'write a new key file (mode 0600, never over an existing file) instead of printing the key'))
      .addOption(new Option('--env', 'print the line for an env file (NAME=\'…\'), e.g. deploy/.env for Compose'));
  outputOptions(keys.command('master').description('make a new master key ring for MANDATE_MASTER_KEYS (production needs one; `up` makes its own)')).action(
    (options: KeyOutputOptions) => handOver(newMasterKeys(), options),
  );
  outputOptions(keys.command('audit-signing').description('make a new audit digest signing key for AUDIT_SIGNING_KEY (production refuses to start without one)')).action(
    (options: KeyOutputOptions) => handOver(newAuditSigningKey(), options),
  );
}
