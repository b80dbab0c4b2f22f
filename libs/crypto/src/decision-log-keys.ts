import { join } from 'node:path';
import { ConfigError } from '@mandate/config';
import { loadMasterKeys, type LoadedKeyRing } from './master-keys.js';

export interface DecisionLogKeyOptions {
  mode: 'embedded' | 'production';
  dataDir: string;
  /** `MANDATE_DECISION_LOG_KEYS`: a key ring as JSON, in the master key ring's format. */
  keysJson?: string | undefined;
  /** `MANDATE_DECISION_LOG_KEY_FILE`: a file holding that JSON. */
  keyFile?: string | undefined;
}

/**
 * The key ring that seals the decision log: its own, not the master key ring, so the policy
 * service (which opens the log for replay and explain) never holds a key that opens the vault's
 * secrets or the gateways' keys, and the gateway seals with a key that opens nothing but the log.
 * Loaded as the master ring is (production requires one; the embedded default generates its own
 * file under `<data dir>/decision-log/keys/`), and refused naming its own variables.
 */
export async function loadDecisionLogKeys(options: DecisionLogKeyOptions): Promise<LoadedKeyRing> {
  try {
    const loaded = await loadMasterKeys({ mode: options.mode, dataDir: join(options.dataDir, 'decision-log'), keysJson: options.keysJson, keyFile: options.keyFile });
    return { ...loaded, source: loaded.source === 'MANDATE_MASTER_KEYS' ? 'MANDATE_DECISION_LOG_KEYS' : loaded.source };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(
      error.problems.map((problem) =>
        problem
          .replaceAll('MANDATE_MASTER_KEY_FILE', 'MANDATE_DECISION_LOG_KEY_FILE')
          .replaceAll('MANDATE_MASTER_KEYS', 'MANDATE_DECISION_LOG_KEYS')
          .replace('a generated local key file', 'a generated local decision-log key file'),
      ),
    );
  }
}
