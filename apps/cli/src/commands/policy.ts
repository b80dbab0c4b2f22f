import type { Command } from 'commander';
import {
  policyActivateEndpoint,
  policyAttachEndpoint,
  policySetModeEndpoint,
  policyCreateEndpoint,
  policyDeleteEndpoint,
  policyDetachEndpoint,
  policyGetEndpoint,
  policyListEndpoint,
  policyModeSchema,
  policyUpdateEndpoint,
  policyValidateEndpoint,
  policyVersionsEndpoint,
  type PolicyMode,
  type PolicyView,
} from '@mandate/contracts';
import { EXIT, sendRequest, withBusOptions, type ActorOptions, type BusOptions } from '../bus.js';
import { readOptionFile, readStdin } from '../input.js';
import { block, CliError, none, orNone, printDone, printJson, printResult, table } from '../output.js';
import { listPages, printPage, withPageOptions, type PageOptions } from '../pages.js';
import { positiveInteger } from '../parse.js';
import { addPolicyReplayCommands } from './policy-replay.js';
import { addPolicyTestCommand } from './policy-test.js';

/*
 * `mandate policy …`: Cedar policy sets, their versions, and which gateway enforces which set
 * in which mode. A set's text comes from a file (`-` for stdin); every change of text is a new
 * version, made active at once; `rollback` activates the version before the active one.
 */

const EXAMPLES = `
Examples:
  mandate policy create expenses --file expenses.cedar
  mandate policy validate expenses.cedar --gateway finance      # against that gateway's tools
  mandate policy test expenses.tests.json --gateway finance --policies expenses.cedar   # exit 1 on a mismatch
  mandate policy attach finance expenses --mode log-only        # record decisions, enforce none
  mandate policy mode finance enforce                           # then enforce them (its own permission)
  mandate policy update expenses --file expenses.cedar          # a new version, active at once
  mandate policy rollback expenses                              # the version before becomes active
  mandate policy replay --gateway finance --since 7d --candidate next.cedar   # which decisions would change
  mandate policy explain 0b6f…-audit-record-id                  # the request, the decision and why
`;

async function policyText(file: string): Promise<string> {
  return file === '-' ? readStdin() : readOptionFile(file, '--file');
}

function formatPolicy(p: PolicyView): string {
  return block([
    ['name', [p.name]],
    ['tenant', [p.tenant]],
    ['description', [p.description || none]],
    ['active version', [`${p.active.version} (${p.active.hash}, ${p.active.createdAt})`]],
    ['versions', [String(p.versions)]],
    ['attached to', orNone(p.attachedTo.map((a) => `${a.gateway} (${a.mode})`))],
    ['revision', [String(p.revision)]],
  ]);
}

function parseMode(value: string): PolicyMode {
  const parsed = policyModeSchema.safeParse(value);
  if (!parsed.success) throw new CliError(`invalid_request: the mode must be enforce or log-only, not ${value}`, EXIT.invalid);
  return parsed.data;
}

async function rollback(name: string, options: ActorOptions): Promise<void> {
  const { items } = await sendRequest(options.natsUrl, policyVersionsEndpoint, { tenant: options.tenant, name });
  const active = items.find((v) => v.active);
  const before = items.filter((v) => active && v.version < active.version).sort((a, b) => b.version - a.version)[0];
  if (!before) throw new CliError(`conflict: policy set ${name} has no version before the active one (${active?.version ?? '?'})`, EXIT.conflict);
  printResult(await sendRequest(options.natsUrl, policyActivateEndpoint, { tenant: options.tenant, name, version: before.version, actor: options.actor }), options.json, formatPolicy);
}

async function validate(file: string, options: BusOptions & { gateway?: string }): Promise<void> {
  const result = await sendRequest(options.natsUrl, policyValidateEndpoint, { tenant: options.tenant, text: await policyText(file), ...(options.gateway ? { gateway: options.gateway } : {}) });
  if (options.json) printJson(result);
  else if (result.valid) process.stdout.write(`valid: ${result.policies.length} ${result.policies.length === 1 ? 'policy' : 'policies'} (${result.policies.join(', ') || none})${options.gateway ? `, against the tools of ${options.gateway}` : ', syntax and limits only (give --gateway to check against its tools)'}\n`);
  else process.stdout.write(`${result.issues.map((issue) => `✗ ${issue.message}`).join('\n')}\n`);
  if (!result.valid) process.exitCode = EXIT.invalid;
}

export function addPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('manage Cedar policy sets and which gateway enforces them').addHelpText('after', EXAMPLES);

  withBusOptions(policy.command('create').description('create a policy set (version 1, active)').argument('<name>', 'policy set name: lower-case letters, digits, dashes'), { actor: true })
    .requiredOption('--file <file>', 'the Cedar text (- for stdin)')
    .option('--description <text>', 'what the set is for', '')
    .action(async (name: string, options: ActorOptions & { file: string; description: string }) =>
      printResult(await sendRequest(options.natsUrl, policyCreateEndpoint, { tenant: options.tenant, name, description: options.description, text: await policyText(options.file), actor: options.actor }), options.json, formatPolicy),
    );

  withBusOptions(policy.command('update').description('write a new version of a set and make it active (refused if it does not validate against a gateway it is attached to)').argument('<name>', 'policy set name'), { actor: true })
    .requiredOption('--file <file>', 'the Cedar text (- for stdin)')
    .action(async (name: string, options: ActorOptions & { file: string }) =>
      printResult(await sendRequest(options.natsUrl, policyUpdateEndpoint, { tenant: options.tenant, name, text: await policyText(options.file), actor: options.actor }), options.json, formatPolicy),
    );

  withBusOptions(policy.command('get').description('show a policy set; --text prints its active Cedar text').argument('<name>', 'policy set name'))
    .option('--text', 'print only the active text', false)
    .action(async (name: string, options: BusOptions & { text: boolean }) => {
      const view = await sendRequest(options.natsUrl, policyGetEndpoint, { tenant: options.tenant, name });
      printResult(view, options.json, (p) => (options.text ? p.text.trimEnd() : formatPolicy(p)));
    });

  withPageOptions(withBusOptions(policy.command('list').description('list the policy sets of the tenant')), 'policy sets').action(async (options: BusOptions & PageOptions) => {
    const page = await listPages(options.natsUrl, options, 'policy sets', (bus, paging) => bus.request(policyListEndpoint, { tenant: options.tenant, ...paging }));
    printPage(page, options, 'policy set', ['name', 'active', 'versions', 'attached to'], (p: PolicyView) => [p.name, String(p.active.version), String(p.versions), p.attachedTo.map((a) => `${a.gateway}:${a.mode}`).join(',') || '-']);
  });

  withBusOptions(policy.command('versions').description('every version of a set, newest first').argument('<name>', 'policy set name')).action(async (name: string, options: BusOptions) => {
    const result = await sendRequest(options.natsUrl, policyVersionsEndpoint, { tenant: options.tenant, name });
    if (options.json) return printJson(result);
    process.stdout.write(`${table([['version', 'active', 'hash', 'created', 'by'], ...result.items.map((v) => [String(v.version), v.active ? 'yes' : '', v.hash, v.createdAt, v.actor ?? '-'])])}\n`);
  });

  withBusOptions(policy.command('activate').description('make a version the active one').argument('<name>', 'policy set name').argument('<version>', 'version number', positiveInteger), { actor: true }).action(
    async (name: string, version: number, options: ActorOptions) => printResult(await sendRequest(options.natsUrl, policyActivateEndpoint, { tenant: options.tenant, name, version, actor: options.actor }), options.json, formatPolicy),
  );

  withBusOptions(policy.command('rollback').description('activate the version before the active one').argument('<name>', 'policy set name'), { actor: true }).action((name: string, options: ActorOptions) => rollback(name, options));

  withBusOptions(policy.command('delete').description('delete a set and its versions (refused while attached)').argument('<name>', 'policy set name'), { actor: true }).action(async (name: string, options: ActorOptions) =>
    printDone(await sendRequest(options.natsUrl, policyDeleteEndpoint, { tenant: options.tenant, name, actor: options.actor }), options.json, `deleted policy set ${name}`),
  );

  withBusOptions(policy.command('validate').description('check a Cedar file: syntax and limits, and with --gateway against its tools; exit 2 when invalid').argument('<file>', 'the Cedar text (- for stdin)'))
    .option('--gateway <name>', "validate against this gateway's tools")
    .action((file: string, options: BusOptions & { gateway?: string }) => validate(file, options));

  addPolicyTestCommand(policy);
  addPolicyReplayCommands(policy);

  withBusOptions(policy.command('attach').description('attach a set to a gateway in a mode, or another set in place of its own (audited); the mode of the set attached is changed with `mode`').argument('<gateway>', 'gateway name').argument('<policy>', 'policy set name'), { actor: true })
    .requiredOption('--mode <mode>', 'enforce, or log-only (decisions recorded, none enforced)', parseMode)
    .action(async (gateway: string, name: string, options: ActorOptions & { mode: PolicyMode }) => {
      const result = await sendRequest(options.natsUrl, policyAttachEndpoint, { tenant: options.tenant, gateway, policy: name, mode: options.mode, actor: options.actor });
      printDone(result, options.json, `gateway ${gateway} now applies policy set ${name} version ${result.version.version} (${result.mode})`);
    });

  withBusOptions(
    policy
      .command('mode')
      .description("change the mode of a gateway's policy set: enforce, or log-only (decisions recorded, none enforced); its own operation and permission, audited")
      .argument('<gateway>', 'gateway name')
      .argument('<mode>', 'enforce or log-only', parseMode),
    { actor: true },
  ).action(async (gateway: string, mode: PolicyMode, options: ActorOptions) => {
    const result = await sendRequest(options.natsUrl, policySetModeEndpoint, { tenant: options.tenant, gateway, mode, actor: options.actor });
    printDone(result, options.json, result.changed ? `gateway ${gateway} now applies policy set ${result.policy} in ${result.mode} mode (was ${result.previousMode})` : `gateway ${gateway} already applies policy set ${result.policy} in ${result.mode} mode`);
  });

  withBusOptions(policy.command('detach').description("detach a gateway's policy set: its calls are no longer checked by policy").argument('<gateway>', 'gateway name'), { actor: true }).action(async (gateway: string, options: ActorOptions) =>
    printDone(await sendRequest(options.natsUrl, policyDetachEndpoint, { tenant: options.tenant, gateway, actor: options.actor }), options.json, `gateway ${gateway} has no policy set any more`),
  );
}
