import type { JWK } from 'jose';
import { runService, type RunningService } from '@mandate/bus';
import { tokenForUserEndpoint, tokenForWorkloadEndpoint, USER_ID_ISSUER, type UserRef } from '@mandate/contracts';
import { createLogger, type Logger } from '@mandate/telemetry';
import { signClientAssertion } from '@mandate/wat';
import { startAuthorizerHarness, workloadKeyPair, type AuthorizerHarness } from '../../../authorizer/src/testing/harness.js';
import { vaultEnvSchema } from '../config.js';
import { vaultService, VaultModule, type VaultTestHooks } from '../vault.module.js';

/** nats-server, directory, authorizer (from its harness) and one or more vault replicas. */
export interface VaultHarness extends AuthorizerHarness {
  vaults: RunningService[];
  /** Starts another vault replica on the same bus and store. */
  addVault(hooks?: VaultTestHooks, logger?: Logger): Promise<RunningService>;
  /** Registers a workload with a fresh key; returns its private key for assertions. */
  workload(name: string, options?: { allowUserIdTokens?: boolean; tenant?: string; returnUrls?: string[] }): Promise<JWK>;
  /** A WAT for the workload alone. */
  machineWat(name: string, key: JWK, tenant?: string): Promise<string>;
  /** A WAT binding the workload to a user id (its user is `{ iss: urn:mandate:user-id, sub }`). */
  userWat(name: string, key: JWK, userId: string, tenant?: string): Promise<{ wat: string; user: UserRef }>;
}

export async function startVaultHarness(overrides: Record<string, string> = {}, firstHooks?: VaultTestHooks): Promise<VaultHarness> {
  const base = await startAuthorizerHarness({ VAULT_RATE_LIMIT_PER_SECOND: '100000', VAULT_RATE_LIMIT_BURST: '100000', ...overrides });
  const env = vaultEnvSchema.parse({ ...process.env, ...base.env, ...overrides, LOG_LEVEL: 'silent' });
  const vaults: RunningService[] = [];
  const addVault = async (hooks?: VaultTestHooks, logger: Logger = createLogger('vault', { level: 'silent' })) => {
    const definition = hooks ? { ...vaultService, module: VaultModule.withTestHooks(hooks) } : vaultService;
    const vault = await runService(definition, env, { logger });
    vaults.push(vault);
    return vault;
  };
  await addVault(firstHooks);
  return {
    ...base,
    vaults,
    addVault,
    async workload(name, options = {}) {
      const { publicJwk, privateJwk } = await workloadKeyPair(`${name}-key`);
      await base.createWorkload({
        tenant: options.tenant ?? 'acme',
        name,
        allowUserIdTokens: options.allowUserIdTokens ?? false,
        allowedReturnUrls: options.returnUrls ?? [],
        publicKeys: { keys: [publicJwk as never] },
      });
      return privateJwk;
    },
    async machineWat(name, key, tenant = 'acme') {
      const clientAssertion = await signClientAssertion({ workload: name, privateJwk: key });
      return (await base.bus.request(tokenForWorkloadEndpoint, { tenant, workload: name, clientAssertion })).token;
    },
    async userWat(name, key, userId, tenant = 'acme') {
      const clientAssertion = await signClientAssertion({ workload: name, privateJwk: key });
      const wat = (await base.bus.request(tokenForUserEndpoint, { tenant, workload: name, userId, clientAssertion })).token;
      return { wat, user: { iss: USER_ID_ISSUER, sub: userId } };
    },
    async stop() {
      for (const vault of vaults.splice(0)) await vault.stop();
      await base.stop();
    },
  };
}
