import type { Command } from 'commander';
import { approvalDecideEndpoint, approvalGetEndpoint, approvalListEndpoint, approvalStateSchema, type ApprovalState, type ApprovalView, type Approver } from '@mandate/contracts';
import { EXIT, sendRequest, withBusOptions, type ActorOptions, type BusOptions } from '../bus.js';
import { block, CliError, none, orNone, printResult } from '../output.js';
import { listPages, printPage, withPageOptions, type PageOptions } from '../pages.js';
import { readSecret, secretGiven, secretOptions, secretSourcesOf, type SecretFlags } from '../secrets.js';

/*
 * `mandate approval …`: tool calls that policy holds until a person approves them. Anyone can
 * look; only an allowed approver decides, proving who they are with their own token of the
 * gateway's IdP for the gateway (read from a file, a variable or stdin, never the command line),
 * which the authorizer checks as it checks an MCP client's token.
 */

const EXAMPLES = `
Examples:
  mandate approval list --state requested
  mandate approval get apr_0a1b…
  mandate approval approve apr_0a1b… --token-file maria.jwt --comment "team offsite"
  mandate approval deny apr_0a1b… --token - < maria.jwt
`;

const TOKEN: SecretFlags = { stem: 'token', what: "approver's token" };

function who(approver: Approver): string {
  return approver.kind === 'user' ? 'the user' : `${approver.kind} ${approver.name}`;
}

export function formatApproval(a: ApprovalView): string {
  return block([
    ['id', [a.id]],
    ['state', [a.state]],
    ['what', [a.bindingMessage]],
    ['gateway', [a.gateway]],
    ['tool', [`${a.tool} (${a.toolTitle})`]],
    ['arguments', orNone(a.arguments.map((argument) => `${argument.title}: ${argument.value}`))],
    ['user', [`${a.user.sub} (${a.user.iss})`]],
    ['agent', [a.agent ?? none]],
    ['approvers', a.approvers.map(who)],
    ['policy', [`${a.policy.name} (${a.policy.determining.join(', ')})`]],
    ['requested', [a.requestedAt]],
    ['expires', [a.expiresAt]],
    ...(a.decidedAt ? ([['decided', [`${a.decidedAt} by ${a.decidedBy?.displayName ?? a.decidedBy?.sub ?? '?'}`]]] as const) : []),
    ...(a.comment ? ([['comment', [a.comment]]] as const) : []),
    ...(a.consumedAt ? ([['used', [a.consumedAt]]] as const) : []),
    ['digest', [a.digest]],
  ]);
}

function parseState(value: string): ApprovalState {
  const parsed = approvalStateSchema.safeParse(value);
  if (!parsed.success) throw new CliError(`invalid_request: --state must be one of ${approvalStateSchema.options.join(', ')}, not ${value}`, EXIT.invalid);
  return parsed.data;
}

async function decide(decision: 'approve' | 'deny', id: string, options: ActorOptions & { comment?: string }): Promise<void> {
  const sources = secretSourcesOf(options, TOKEN);
  if (!secretGiven(sources)) throw new CliError("invalid_request: give the approver's token: --token-file FILE, --token-env VAR or --token - (stdin). Nothing was sent.", EXIT.invalid);
  const approverToken = (await readSecret(TOKEN, sources))!.trim().replace(/^Bearer\s+/i, '');
  if (!approverToken) throw new CliError('invalid_request: the token is empty. Nothing was sent.', EXIT.invalid);
  const decided = await sendRequest(options.natsUrl, approvalDecideEndpoint, { tenant: options.tenant, id, decision, approverToken, actor: options.actor, ...(options.comment ? { comment: options.comment } : {}) });
  printResult(decided, options.json, (a) => `${a.state === 'approved' ? 'approved' : 'denied'} ${a.id}: ${a.bindingMessage}`);
}

export function addApprovalCommands(program: Command): void {
  const approval = program.command('approval').description('tool calls held until a person approves them: list, show, approve, deny').addHelpText('after', EXAMPLES);

  withPageOptions(withBusOptions(approval.command('list').description('list approval requests, newest first')), 'approval requests')
    .option('--state <state>', `only in this state (${approvalStateSchema.options.join(', ')})`, parseState)
    .option('--gateway <name>', 'only calls through this gateway')
    .action(async (options: BusOptions & PageOptions & { state?: ApprovalState; gateway?: string }) => {
      const filters = { ...(options.state ? { state: options.state } : {}), ...(options.gateway ? { gateway: options.gateway } : {}) };
      const page = await listPages(options.natsUrl, options, 'approval requests', (bus, paging) => bus.request(approvalListEndpoint, { tenant: options.tenant, ...filters, ...paging }));
      printPage(page, options, 'approval', ['id', 'state', 'gateway', 'tool', 'user', 'expires', 'what'], (a: ApprovalView) => [a.id, a.state, a.gateway, a.tool, a.user.sub, a.expiresAt, a.bindingMessage.slice(0, 60)]);
    });

  withBusOptions(approval.command('get').description('show one approval request').argument('<id>', 'approval id (apr_…)')).action(async (id: string, options: BusOptions) =>
    printResult(await sendRequest(options.natsUrl, approvalGetEndpoint, { tenant: options.tenant, id }), options.json, formatApproval),
  );

  for (const decision of ['approve', 'deny'] as const) {
    const command = withBusOptions(
      approval
        .command(decision)
        .description(`${decision} a requested approval, as an allowed approver proven by your own token of the gateway's IdP`)
        .argument('<id>', 'approval id (apr_…)'),
      { actor: true },
    ).option('--comment <text>', 'a comment kept with the decision (at most 1024 characters)');
    for (const option of secretOptions(TOKEN)) command.addOption(option);
    command.action((id: string, options: ActorOptions & { comment?: string }) => decide(decision, id, options));
  }
}
