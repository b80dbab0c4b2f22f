#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '@mandate/config';
import { isMandateError } from '@mandate/contracts';
import { addUpCommand } from './commands/up.js';
import { status } from './commands/status.js';
import { addKeyFileCommands, rotateKeys } from './commands/keys.js';
import { addWorkloadCommands } from './commands/workload.js';
import { addTokenCommands } from './commands/token.js';
import { addProviderCommands } from './commands/provider.js';
import { addAuditCommands } from './commands/audit.js';
import { addJobCommands } from './commands/job.js';
import { addGrantCommands } from './commands/grant.js';
import { addGatewayCommands } from './commands/gateway.js';
import { addPolicyCommands } from './commands/policy.js';
import { addApprovalCommands } from './commands/approval.js';
import { addCredentialCommands } from './commands/credential.js';
import { addTriggerCommands } from './commands/trigger.js';
import { addDemoCommands } from './commands/demo.js';
import { describeMandateError, EXIT, exitCodeFor } from './bus.js';
import { CliError, fail } from './output.js';
import { suggestClosestOptions } from './option-suggestions.js';

const natsUrlOption = new Option('--nats-url <url>', 'NATS server to talk to').env('NATS_URL').default('nats://127.0.0.1:4222');
const dataDirOption = new Option('--data-dir <dir>', 'where the embedded system keeps its data').env('MANDATE_DATA_DIR').default('.mandate');

const program = new Command()
  .name('mandate')
  .description('Mandate: identity, consent and credentials for AI agents')
  .version('0.1.0')
  .showHelpAfterError()
  // Commander has printed the problem by the time it throws; main decides the exit code (usage: 2).
  // Set before any subcommand is added, so every subcommand inherits it.
  .exitOverride();

addUpCommand(program);

program
  .command('status')
  .description('list the services answering on the bus and the state of the streams')
  .addOption(natsUrlOption)
  .option('--json', 'print JSON instead of tables', false)
  .action((options: { natsUrl: string; json: boolean }) => status(options));

program
  .command('keys')
  .description('manage the master keys that encrypt stored secrets')
  .command('rotate')
  .description('add a new primary key to the embedded key file (old keys stay readable)')
  .addOption(dataDirOption)
  .option('--key-file <file>', 'key file to rotate (default: <data-dir>/keys/master-keys.json)')
  .action((options: { dataDir: string; keyFile?: string }) => rotateKeys(options));

addKeyFileCommands(program);
addWorkloadCommands(program);
addTokenCommands(program);
addProviderCommands(program);
addAuditCommands(program);
addJobCommands(program);
addGrantCommands(program);
addGatewayCommands(program);
addPolicyCommands(program);
addApprovalCommands(program);
addCredentialCommands(program);
addTriggerCommands(program);
addDemoCommands(program);
// After every command is added: it is installed on each of them.
suggestClosestOptions(program);

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version exit 0; a command group without its subcommand shows help (exit 1).
    const usageError = error.exitCode !== 0 && error.code !== 'commander.help';
    process.exit(usageError ? EXIT.invalid : error.exitCode);
  }
  if (isMandateError(error)) {
    fail(describeMandateError(error));
    process.exit(exitCodeFor(error.code));
  }
  if (error instanceof CliError || error instanceof ConfigError) {
    fail(error.message);
    process.exit(error instanceof CliError ? error.exitCode : 78);
  }
  fail(`unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  if (process.env['DEBUG']) console.error(error);
  else process.stderr.write('  (set DEBUG=1 for the stack trace)\n');
  process.exit(1);
}
