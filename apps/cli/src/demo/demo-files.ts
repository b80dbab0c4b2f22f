import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JWK } from 'jose';
import type { PublicJwk } from '@mandate/contracts';
import { newSigningKey, signingKeyFromJwk, type SigningKeyPair } from '@mandate/demo';
import { generateWorkloadKey, publicKeyPathFor, readPrivateKeyFile } from '../jwk-files.js';
import { keyFileOf, WORKLOADS, type DemoPlan, type DemoWorkload } from './demo-plan.js';

/*
 * What the demo keeps on disk, under `<data-dir>/demo`, so a second run reuses it: each
 * workload's key pair (as `mandate workload keygen` writes them), and the signing keys of the
 * demo IdP and authorization server, so tokens they issued before a restart still verify.
 */

export interface WorkloadKey {
  workload: DemoWorkload;
  privateFile: string;
  privateJwk: JWK;
  publicJwk: PublicJwk;
  created: boolean;
}

async function workloadKey(plan: DemoPlan, workload: DemoWorkload): Promise<WorkloadKey> {
  const privateFile = keyFileOf(plan, workload);
  const created = !existsSync(privateFile);
  if (created) await generateWorkloadKey({ out: privateFile, alg: 'EdDSA' });
  const publicJwk = JSON.parse(await readFile(publicKeyPathFor(privateFile), 'utf8')) as PublicJwk;
  return { workload, privateFile, privateJwk: await readPrivateKeyFile(privateFile), publicJwk, created };
}

export async function workloadKeys(plan: DemoPlan): Promise<Record<DemoWorkload, WorkloadKey>> {
  await mkdir(join(plan.dir, 'keys'), { recursive: true, mode: 0o700 });
  const keys = await Promise.all(WORKLOADS.map((workload) => workloadKey(plan, workload)));
  return Object.fromEntries(keys.map((key) => [key.workload, key])) as Record<DemoWorkload, WorkloadKey>;
}

/** A demo server's signing keys (RS256, which ID tokens default to, then ES256), kept in `<demo dir>/<name>-signing-keys.json`. */
export async function serverSigningKeys(plan: DemoPlan, name: 'idp' | 'auth-server'): Promise<SigningKeyPair[]> {
  const file = join(plan.dir, `${name}-signing-keys.json`);
  if (existsSync(file)) {
    const stored = JSON.parse(await readFile(file, 'utf8')) as { keys: JWK[] };
    return Promise.all(stored.keys.map((jwk) => signingKeyFromJwk(jwk)));
  }
  const keys = [await newSigningKey('RS256'), await newSigningKey('ES256')];
  await mkdir(plan.dir, { recursive: true, mode: 0o700 });
  await writeFile(file, `${JSON.stringify({ keys: keys.map((key) => key.privateJwk) }, null, 2)}\n`, { mode: 0o600 });
  return keys;
}
