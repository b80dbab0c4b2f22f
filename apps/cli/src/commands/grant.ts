import type { Command } from 'commander';
import { grantCheckEndpoint, grantListEndpoint, grantRevokeEndpoint, USER_ID_ISSUER, type GrantView } from '@mandate/contracts';
import { EXIT, sendRequest, withBusOptions, type BusOptions } from '../bus.js';
import { block, dim, done, orNone, printJson, printTable } from '../output.js';
import { collect } from '../parse.js';

/*
 * `mandate grant …`: consent grants (which person let which agent use which provider, with which
 * scopes, until when), kept in the vault's consent ledger. Operators list, check and revoke them; people
 * do the same for themselves on the "My access" page.
 */

interface UserOptions {
  userSub?: string;
  userIss: string;
}

const userOf = (options: UserOptions) => (options.userSub ? { user: { iss: options.userIss, sub: options.userSub } } : {});

function until(grant: GrantView): string {
  if (grant.once) return 'this time only';
  return grant.expiresAt ?? 'until revoked';
}

/** `mandate grant list`: live grants of the tenant, a person's, or an agent's. */
export async function listGrants(options: BusOptions & UserOptions & { workload?: string }): Promise<void> {
  const { items } = await sendRequest(options.natsUrl, grantListEndpoint, { tenant: options.tenant, ...userOf(options), ...(options.workload ? { workload: options.workload } : {}) });
  if (options.json) return printJson(items);
  if (items.length === 0) return void process.stderr.write(dim('no live grants\n'));
  printTable(['WORKLOAD', 'PROVIDER', 'USER', 'SCOPES', 'SINCE', 'UNTIL'], items.map((g) => [g.workload, g.provider, g.user.sub, g.scopes.join(' '), g.grantedAt, until(g)]));
}

/**
 * `mandate grant check`: would a token request for these scopes be released without asking the
 * person? Exit code 1 when not, as `grep` does, so a script can write `if mandate grant check …`.
 */
export async function checkGrant(options: BusOptions & UserOptions & { workload: string; provider: string; scope: string[] }): Promise<void> {
  const user = { iss: options.userIss, sub: options.userSub! };
  const result = await sendRequest(options.natsUrl, grantCheckEndpoint, { tenant: options.tenant, workload: options.workload, provider: options.provider, user, scopes: options.scope });
  if (!result.granted) process.exitCode = EXIT.failure;
  if (options.json) return printJson(result);
  process.stdout.write(`${block([['granted', [result.granted ? 'yes' : 'no']], ['missing', orNone(result.missing)]])}\n`);
}

/** `mandate grant revoke`: removes a person's grants to an agent; tokens no other grant needs are revoked upstream. */
export async function revokeGrants(options: BusOptions & UserOptions & { workload: string; provider?: string; actor: string }): Promise<void> {
  const user = { iss: options.userIss, sub: options.userSub! };
  const result = await sendRequest(options.natsUrl, grantRevokeEndpoint, { tenant: options.tenant, workload: options.workload, user, ...(options.provider ? { provider: options.provider } : {}), actor: options.actor });
  if (options.json) return printJson(result);
  done(`revoked ${result.revoked} grant${result.revoked === 1 ? '' : 's'} of ${options.userSub} to ${options.workload}`);
  if (result.tokensRevoked.length > 0) process.stderr.write(dim(`stored tokens deleted and revoked at: ${result.tokensRevoked.join(', ')}\n`));
}

const userIssOption = ['--user-iss <iss>', "the user's issuer: the IdP's issuer, or the default for a bare user id", USER_ID_ISSUER] as const;

export function addGrantCommands(program: Command): void {
  const grant = program.command('grant').description("consent grants: which person let which agent use which provider's scopes, until when");

  withBusOptions(grant.command('list').description("list live grants: the tenant's, a person's (--user-sub) or an agent's (--workload)"))
    .option('--user-sub <sub>', "only this person's grants")
    .option(...userIssOption)
    .option('--workload <name>', "only this workload's grants")
    .action((options: BusOptions & UserOptions & { workload?: string }) => listGrants(options));

  withBusOptions(grant.command('check').description('say whether a live grant covers these scopes, and which are missing'))
    .requiredOption('--workload <name>', 'the agent')
    .requiredOption('--provider <name>', 'the credential provider')
    .requiredOption('--user-sub <sub>', 'the person')
    .option(...userIssOption)
    .option('--scope <scope>', 'a scope (repeat for more)', collect, [])
    .action((options: BusOptions & UserOptions & { workload: string; provider: string; scope: string[] }) => checkGrant(options));

  withBusOptions(grant.command('revoke').description("revoke a person's grants to an agent (one provider, or all); tokens no other grant needs are revoked at the provider"), { actor: true })
    .requiredOption('--workload <name>', 'the agent')
    .requiredOption('--user-sub <sub>', 'the person')
    .option(...userIssOption)
    .option('--provider <name>', 'only this provider (default: every provider)')
    .action((options: BusOptions & UserOptions & { workload: string; provider?: string; actor: string }) => revokeGrants(options));
}
