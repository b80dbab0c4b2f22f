import type { NatsConnection } from '@nats-io/transport-node';
import type { BusClient, JetStreamPublisher, UseCaseAssembly } from '@mandate/bus';
import { policyAudit } from '@mandate/contracts';
import { EnvelopeCipher, loadDecisionLogKeys } from '@mandate/crypto';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import type { PolicyEnv } from './config.js';
import { DecisionExplanation } from './domain/decision-explanation.js';
import { gatewayToolsOver } from './gateway-tools.js';
import { PolicyReplay } from './domain/policy-replay.js';
import { DecisionLogReader } from './store/decision-log-reader.js';
import { PolicyRecords } from './store/repositories.js';

export interface DecisionLogDependencies {
  env: PolicyEnv;
  nc: NatsConnection;
  bus: BusClient;
  store: DocumentStore;
  publisher: JetStreamPublisher;
  logger: Logger;
}

/** What reads the decision log: replay and explain, opening entries with the decision log's key ring. */
export class DecisionLogUseCases implements UseCaseAssembly {
  private constructor(readonly useCases: readonly [PolicyReplay, DecisionExplanation]) {}

  static async assemble(deps: DecisionLogDependencies): Promise<DecisionLogUseCases> {
    const { env } = deps;
    const keys = await loadDecisionLogKeys({ mode: env.MANDATE_MODE, dataDir: env.MANDATE_DATA_DIR, keysJson: env.MANDATE_DECISION_LOG_KEYS, keyFile: env.MANDATE_DECISION_LOG_KEY_FILE });
    deps.logger.info({ keys: keys.source }, 'decision log keys loaded');
    const decisions = new DecisionLogReader(deps.nc, new EnvelopeCipher(keys.ring));
    const audit = deps.publisher.auditSink(policyAudit);
    return new DecisionLogUseCases([
      new PolicyReplay({
        decisions,
        audit,
        gatewayTools: gatewayToolsOver(deps.bus),
      }),
      new DecisionExplanation({ decisions, records: await PolicyRecords.open(deps.store), audit }),
    ]);
  }
}
