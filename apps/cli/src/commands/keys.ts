import { resolve } from 'node:path';
import { defaultKeyFile, rotateKeyFile } from '@mandate/crypto';
import { done } from '../output.js';

/**
 * `mandate keys rotate`: adds a new primary master key to the embedded key file. Old keys stay,
 * so existing records remain readable; services pick the new key up on restart.
 */
export async function rotateKeys(options: { dataDir: string; keyFile?: string }): Promise<void> {
  const file = options.keyFile ?? defaultKeyFile(resolve(options.dataDir));
  const ring = await rotateKeyFile(file);
  done(`${file}: new primary key ${ring.primaryId}; keys ${ring.keyIds.join(', ')}. Restart services to use it.`);
}
