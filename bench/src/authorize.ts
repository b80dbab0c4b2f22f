import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type CryptoKey } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { authorizerSetEndpoint, tokenForJwtEndpoint, workloadCreateEndpoint } from '@mandate/contracts';
import type { TestIdp } from '@mandate/testing/idp';
import { authorizerService } from '@mandate/authorizer/module';
import { directoryService } from '@mandate/directory/module';
import { signClientAssertion } from '@mandate/wat';
import { measureInRounds } from './measure.js';
import { startServices } from './services.js';
import { percent, printTable } from './table.js';

export const AUTHORIZE_CONCURRENCY = 64;
const AUDIENCE = 'https://bench.example';

export interface AuthorizeRow {
  name: string;
  medianUs: number;
  requestsPerSecond: number;
  /** Against the same run's raw jose verify-plus-sign rate. */
  ceilingRatio: number;
}

/** Tokens the IdP's real key signed, one per request, so nothing is served from a cache. */
async function forgeTokens(idp: TestIdp, count: number): Promise<string[]> {
  const key = idp.signingKeys.find((k) => k.alg === 'RS256')!;
  const now = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const claims = { iss: idp.issuer, sub: `user-${i}`, aud: AUDIENCE, iat: now, exp: now + 3_600, client_id: 'bench', scope: 'crm:read' };
    tokens.push(await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'at+jwt' }).sign(key.privateKey));
  }
  return tokens;
}

/**
 * The `authorize` rows (issue 3): inbound authorization plus WAT minting over NATS at concurrency
 * 64, against the ceiling of what jose alone does per request on this machine (verify the user's
 * RS256 token, sign an EdDSA WAT), measured in the same run.
 */
export async function benchAuthorize(nc: NatsConnection, natsUrl: string, dataDir: string, options: { rounds: number; total: number }): Promise<AuthorizeRow[]> {
  const { idp, bus, stop } = await startServices(nc, natsUrl, dataDir, [directoryService, authorizerService]);
  try {
    // The agent proves itself with each mint (a client assertion with the user's token), as every caller of token-for-jwt must.
    const agentKeys = await generateKeyPair('EdDSA', { extractable: true });
    const agentJwk = { ...(await exportJWK(agentKeys.privateKey)), kid: 'bench-agent-key', alg: 'EdDSA' };
    const agentPublic = { ...(await exportJWK(agentKeys.publicKey)), kid: 'bench-agent-key', alg: 'EdDSA' };
    await bus.request(workloadCreateEndpoint, { tenant: 'bench', name: 'bench-agent', publicKeys: { keys: [agentPublic as never] } });
    await bus.request(authorizerSetEndpoint, { tenant: 'bench', name: 'bench-agent', authorizer: { discoveryUrl: idp.discoveryUrl, allowedAudiences: [AUDIENCE] } });

    process.stderr.write('• signing user tokens for the authorize rows\n');
    const tokens = await forgeTokens(idp, options.total * (options.rounds * 2 + 1) + 400);
    let next = 0;
    const fresh = () => tokens[next++ % tokens.length]!;
    const repeated = tokens[tokens.length - 1]!;

    const rsaPublic = (await importJWK(idp.signingKeys.find((k) => k.alg === 'RS256')!.publicJwk, 'RS256')) as CryptoKey;
    const { privateKey: watKey } = await generateKeyPair('EdDSA');
    const assertion = () => signClientAssertion({ workload: 'bench-agent', privateJwk: agentJwk });
    const ceiling = async () => {
      await jwtVerify(await assertion(), agentKeys.publicKey, { algorithms: ['EdDSA'] });
      const { payload } = await jwtVerify(fresh(), rsaPublic, { issuer: idp.issuer, audience: AUDIENCE, algorithms: ['RS256'] });
      await new SignJWT({ tenant: 'bench', workload: 'bench-agent', user: { iss: payload.iss, sub: payload.sub } })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'wat+jwt' })
        .setIssuedAt()
        .setExpirationTime('15m')
        .sign(watKey);
    };
    const mint = (token: string) => async () => void (await bus.request(tokenForJwtEndpoint, { tenant: 'bench', workload: 'bench-agent', userToken: token, clientAssertion: await assertion() }));
    const rows = [
      { name: 'jose: sign + verify the assertion, verify RS256, sign EdDSA (ceiling)', request: ceiling },
      { name: 'authorize + WAT mint over NATS', request: async () => mint(fresh())() },
      { name: '… same token repeated (verified-token cache)', request: mint(repeated) },
    ];
    const concurrency = AUTHORIZE_CONCURRENCY;
    const measured = await measureInRounds('authorize round', rows, { ...options, warmup: { total: 200, concurrency }, latencyCount: Math.max(50, options.total / 20), concurrency });
    const ceilingRate = measured[0]!.requestsPerSecond;
    return measured.map(({ name, medianUs, requestsPerSecond }) => ({ name, medianUs, requestsPerSecond, ceilingRatio: requestsPerSecond / ceilingRate }));
  } finally {
    await stop();
  }
}

export function printAuthorize(rows: AuthorizeRow[]): void {
  const header = ['authorize', 'median µs', `req/s @${AUTHORIZE_CONCURRENCY}`, 'throughput / ceiling'];
  printTable(header, rows.map((r) => [r.name, r.medianUs.toFixed(0), r.requestsPerSecond.toFixed(0), percent(r.ceilingRatio)]));
}
