import type { Command } from 'commander';
import { policyExplainEndpoint, policyReplayEndpoint, replaySinceSchema, type ResponseOf } from '@mandate/contracts';
import { EXIT, sendRequest, withBus, withBusOptions, type ActorOptions } from '../bus.js';
import { readOptionFile, readStdin } from '../input.js';
import { block, CliError, none, orNone, printJson, printResult, table } from '../output.js';

/*
 * `mandate policy replay` and `mandate policy explain`: a candidate set against the calls the
 * decision log recorded, and one recorded decision with its request and the policies that made it.
 * Both read recorded arguments: only admin may ask.
 */

/** A replay reads and evaluates up to tens of thousands of entries: longer than a request's usual wait. */
const REPLAY_TIMEOUT_MS = 120_000;

type ReplayAnswer = ResponseOf<typeof policyReplayEndpoint>;
type Explanation = ResponseOf<typeof policyExplainEndpoint>;

function parseSince(value: string): string {
  if (!replaySinceSchema.safeParse(value).success) throw new CliError(`invalid_request: --since must be a duration such as 90m, 12h or 7d, or an ISO time with its offset, not ${value}`, EXIT.invalid);
  return value;
}

function formatReplay(answer: ReplayAnswer): string {
  const { allowedToDenied, deniedToAllowed } = answer.changed;
  const skipped = Object.entries(answer.skipped).map(([why, count]) => `${count} ${why.replace('_', ' ')}`);
  const lines = [
    `replayed ${answer.evaluated} recorded ${answer.evaluated === 1 ? 'call' : 'calls'} of ${answer.gateway} from ${answer.from} to ${answer.to}`,
    `  unchanged ${answer.unchanged}, allowed → denied ${allowedToDenied}, denied → allowed ${deniedToAllowed}${skipped.length > 0 ? `; skipped ${skipped.join(', ')}` : ''}`,
  ];
  if (answer.truncated) lines.push(`  stopped at ${answer.to}: the window holds more calls than one replay reads; replay again with --since ${answer.to}`);
  if (answer.groups.length === 0) return [...lines, 'no decision would change'].join('\n');
  const rows = answer.groups.map((g) => [g.tool, g.principal.sub, g.principal.iss, String(g.allowedToDenied), String(g.deniedToAllowed), g.samples.slice(0, 3).join(' ')]);
  return [...lines, '', table([['tool', 'principal', 'issuer', 'allowed → denied', 'denied → allowed', 'for example (audit record ids)'], ...rows])].join('\n');
}

function formatExplanation(e: Explanation): string {
  const policies = (items: Explanation['determining']) =>
    items.length === 0 ? ['none: no policy permitted it (default deny), or one could not be evaluated'] : items.flatMap((p) => (p.text ? [`${p.id}:`, ...p.text.trim().split('\n').map((line) => `  ${line}`)] : [`${p.id} (its text is no longer kept)`]));
  return block([
    ['audit record', [e.id]],
    ['recorded', [e.recordedAt]],
    ['gateway', [e.gateway]],
    ['tool', [e.tool]],
    ['principal', [`${e.principal.sub} (${e.principal.iss})`]],
    ['agent', [e.client ?? none]],
    ['claims', orNone(Object.entries(e.claims).map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(', ') : value}`))],
    ['scopes', orNone(e.scopes)],
    ['arguments', JSON.stringify(e.arguments, null, 2).split('\n')],
    ['policy set', [`${e.policySet.name} ${e.policySet.version ? `version ${e.policySet.version}` : '(version no longer kept)'} (${e.policySet.hash}), ${e.mode}`]],
    ['decision', [e.decision]],
    ['because', policies(e.determining)],
    ...(e.withLogOnly ? ([['with log-only policies', [e.withLogOnly.decision, ...policies(e.withLogOnly.determining)]]] as const) : []),
  ]);
}

export function addPolicyReplayCommands(policy: Command): void {
  withBusOptions(policy.command('replay').description('evaluate a candidate set against the calls a gateway recorded and show which decisions would change'), { actor: true })
    .requiredOption('--gateway <name>', 'the gateway whose recorded calls to replay')
    .requiredOption('--candidate <file>', 'the candidate Cedar text (- for stdin)')
    .option('--since <when>', 'the window: a duration back from now (90m, 12h, 7d) or an ISO time', parseSince, '7d')
    .action(async (options: ActorOptions & { gateway: string; candidate: string; since: string }) => {
      const candidate = options.candidate === '-' ? await readStdin() : await readOptionFile(options.candidate, '--candidate');
      const answer = await withBus(options.natsUrl, (bus) =>
        bus.request(policyReplayEndpoint, { tenant: options.tenant, gateway: options.gateway, since: options.since, candidate, actor: options.actor }, { timeoutMs: REPLAY_TIMEOUT_MS }),
      );
      if (options.json) printJson(answer);
      else process.stdout.write(`${formatReplay(answer)}\n`);
    });

  withBusOptions(policy.command('explain').description('show a recorded decision: the request as Cedar saw it, the decision and the policies that made it').argument('<audit-record-id>', "the id of the call's audit record"), { actor: true }).action(
    async (id: string, options: ActorOptions) => printResult(await sendRequest(options.natsUrl, policyExplainEndpoint, { tenant: options.tenant, id, actor: options.actor }), options.json, formatExplanation),
  );
}
