import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import {
  jobCreateEndpoint,
  jobDeleteEndpoint,
  jobGetEndpoint,
  jobListEndpoint,
  jobPauseEndpoint,
  jobResumeEndpoint,
  jobRunsEndpoint,
  type JobView,
  type LastRun,
  type RequestOf,
} from '@mandate/contracts';
import { defined, EXIT, namedCommand, sendRequest, withBusOptions, type ActorOptions, type BusOptions } from '../bus.js';
import { changeOf } from '../changes.js';
import { readPrivateKeyFile } from '../jwk-files.js';
import { block, CliError, dim, printDone, printJson, printResult, printTable } from '../output.js';
import { listPages, withPageOptions, type Page, type PageOptions } from '../pages.js';
import { collect, nonNegativeInteger, positiveInteger } from '../parse.js';

/*
 * `mandate job …`: background jobs in the scheduler. A job runs as its own workload: give the
 * workload's private key file (the one made by `mandate workload keygen`); the scheduler seals
 * it and never shows it again.
 */

interface CreateOptions extends ActorOptions {
  workload: string;
  key: string;
  cron?: string;
  tz: string;
  event?: string;
  http?: string;
  method: 'GET' | 'POST';
  provider?: string;
  scope?: string[];
  task?: boolean;
  payload?: string;
  missed: 'run-once' | 'skip';
  retries: number;
  backoffMs: number;
  maxBackoffMs: number;
  description?: string;
  paused?: boolean;
}

async function createJob(name: string, options: CreateOptions): Promise<void> {
  if (!options.cron === !options.event) throw new CliError('give exactly one trigger: --cron <expr> or --event <subject>', EXIT.invalid);
  if (!options.http === !options.task) throw new CliError('give exactly one action: --http <url> (with --provider) or --task', EXIT.invalid);
  if (options.http && !options.provider) throw new CliError('--http needs --provider: the vault provider the M2M token comes from', EXIT.invalid);
  let payload: Record<string, unknown> = {};
  if (options.payload) {
    try {
      payload = JSON.parse(await readFile(options.payload, 'utf8')) as Record<string, unknown>;
    } catch (cause) {
      throw new CliError(`cannot read --payload ${options.payload}: ${cause instanceof Error ? cause.message : String(cause)}`, EXIT.invalid);
    }
  }
  const request: RequestOf<typeof jobCreateEndpoint> = {
    tenant: options.tenant,
    name,
    ...defined({ description: options.description }),
    workload: { name: options.workload, privateJwk: (await readPrivateKeyFile(options.key)) as never },
    trigger: options.cron ? { kind: 'cron', expression: options.cron, timeZone: options.tz } : { kind: 'event', subject: options.event! },
    action: options.http ? { kind: 'http', method: options.method, url: options.http, provider: options.provider!, scopes: options.scope ?? [] } : { kind: 'task', payload },
    missedFire: options.missed,
    retry: { limit: options.retries, backoffMs: options.backoffMs, maxBackoffMs: options.maxBackoffMs },
    paused: options.paused ?? false,
    actor: options.actor,
  };
  printResult(await sendRequest(options.natsUrl, jobCreateEndpoint, request), options.json, formatJob);
}

function formatJob(job: JobView): string {
  const trigger = job.trigger.kind === 'cron' ? `cron "${job.trigger.expression}" in ${job.trigger.timeZone}` : `event on ${job.triggerSubject}`;
  const action = job.action.kind === 'http' ? `${job.action.method} ${job.action.url} (M2M token from ${job.action.provider}${job.action.scopes.length ? `, scopes ${job.action.scopes.join(' ')}` : ''})` : `task to ${job.taskSubject}`;
  return block([
    ['job', [job.name]],
    ['state', [job.state]],
    ['workload', [job.workload]],
    ['trigger', [trigger]],
    ['action', [action]],
    ['missed fires', [job.missedFire]],
    ['retries', [`${job.retry.limit}, backoff ${job.retry.backoffMs} ms doubling up to ${job.retry.maxBackoffMs} ms`]],
    ['last fired', [job.lastFiredAt ?? dim('never')]],
    ['last run', [job.lastRun ? `${job.lastRun.scheduledFor} (${job.lastRun.trigger}) ${outcomeOf(job.lastRun)}` : dim('none')]],
    ['next fire', [job.nextFireAt ?? dim(job.trigger.kind === 'event' ? 'on each event' : '-')]],
    ['revision', [String(job.revision)]],
  ]);
}

/** A page of jobs or runs: JSON, or a table (everything on stdout) with the cursor of the next page after it. */
function printJobPage<T>(page: Page<T>, json: boolean, empty: string, header: string[], row: (item: T) => string[]): void {
  if (json) return printJson(page);
  if (page.items.length === 0) return void process.stdout.write(`${dim(empty)}\n`);
  printTable(header, page.items.map(row));
  if (page.nextCursor) process.stdout.write(`${dim(`more: --cursor ${page.nextCursor}`)}\n`);
}

/** How a run ended or stands: its state, and the error code of one that did not succeed. */
function outcomeOf(run: LastRun): string {
  return run.code ? `${run.state} (${run.code})` : run.state;
}

async function listJobs(options: BusOptions & PageOptions): Promise<void> {
  const page = await listPages(options.natsUrl, options, 'jobs', (bus, paging) => bus.request(jobListEndpoint, { tenant: options.tenant, ...paging }));
  // A page where no job has run yet has no run columns: they would hold nothing but dashes.
  const anyRun = page.items.some((job) => job.lastRun);
  const header = ['NAME', 'STATE', 'WORKLOAD', 'TRIGGER', 'ACTION', 'NEXT FIRE', ...(anyRun ? ['LAST RUN', 'OUTCOME'] : [])];
  printJobPage(page, options.json, 'no jobs', header, (job) => [
    job.name,
    job.state,
    job.workload,
    job.trigger.kind === 'cron' ? `${job.trigger.expression} ${job.trigger.timeZone}` : `event ${job.trigger.subject}`,
    job.action.kind === 'http' ? `${job.action.method} ${job.action.url}` : 'task',
    job.nextFireAt ?? '-',
    ...(anyRun ? [job.lastRun?.scheduledFor ?? '-', job.lastRun ? outcomeOf(job.lastRun) : '-'] : []),
  ]);
}

async function listRuns(name: string, options: BusOptions & PageOptions): Promise<void> {
  const page = await listPages(options.natsUrl, options, 'runs', (bus, paging) => bus.request(jobRunsEndpoint, { tenant: options.tenant, name, ...paging }));
  printJobPage(page, options.json, 'no runs yet', ['SCHEDULED FOR', 'TRIGGER', 'STATE', 'ATTEMPTS', 'HTTP', 'DETAIL'], (run) => [
    run.scheduledFor,
    run.trigger,
    run.state,
    String(run.attempts),
    run.httpStatus !== undefined ? String(run.httpStatus) : '-',
    run.lastError ? `${run.lastError.code}: ${run.lastError.message}` : run.nextAttemptAt ? `next attempt ${run.nextAttemptAt}` : '',
  ]);
}

export function addJobCommands(program: Command): void {
  const job = program.command('job').description('manage background jobs in the scheduler (cron or event triggered, run as their own workload)');

  namedCommand(job, 'create', 'create a job', { actor: true, name: 'job name: lower-case letters, digits, dashes' })
    .requiredOption('--workload <name>', 'the workload the job runs as')
    .requiredOption('--key <file>', "the workload's private JWK file (sealed by the scheduler, never shown again)")
    .option('--cron <expression>', 'cron trigger: 5 fields (or 6 with seconds first), e.g. "0 20 * * 3"')
    .option('--tz <zone>', 'IANA time zone of --cron', 'UTC')
    .option('--event <subject>', 'event trigger: subject filter under mandate.trigger.<tenant>., e.g. tickets.high')
    .option('--http <url>', 'action: call this URL (https, or http://localhost) with an M2M token')
    .addOption(new Option('--method <method>', 'HTTP method of --http').choices(['GET', 'POST']).default('POST'))
    .option('--provider <name>', 'vault provider of the M2M token for --http')
    .option('--scope <scope>', 'scope of the M2M token; repeatable', collect)
    .option('--task', 'action: publish a task to mandate.task.<tenant>.<job> for agent code')
    .option('--payload <file>', 'JSON object carried in each task message')
    .addOption(new Option('--missed <policy>', 'a fire missed while the scheduler was down').choices(['run-once', 'skip']).default('run-once'))
    .option('--retries <n>', 'retries after a failed attempt before dead-lettering', nonNegativeInteger, 3)
    .option('--backoff-ms <ms>', 'wait before the first retry (doubles each time)', positiveInteger, 10_000)
    .option('--max-backoff-ms <ms>', 'longest wait between retries', positiveInteger, 600_000)
    .option('--description <text>', 'what the job does')
    .option('--paused', 'create it paused')
    .action((name: string, options: CreateOptions) => createJob(name, options));

  namedCommand(job, 'get', 'show one job').action(async (name: string, options: BusOptions) =>
    printResult(await sendRequest(options.natsUrl, jobGetEndpoint, { tenant: options.tenant, name }), options.json, formatJob),
  );

  withPageOptions(withBusOptions(job.command('list').description('list the jobs of the tenant')), 'jobs').action((options: BusOptions & PageOptions) => listJobs(options));

  for (const [verb, endpoint, text] of [
    ['pause', jobPauseEndpoint, 'stop firing a job (runs under way finish)'],
    ['resume', jobResumeEndpoint, 'fire a paused job again from now on'],
  ] as const) {
    namedCommand(job, verb, text, { actor: true }).action(async (name: string, options: ActorOptions) => {
      const view = await sendRequest(options.natsUrl, endpoint, changeOf(name, options));
      printDone(view, options.json, `job ${name} is ${view.state}`);
    });
  }

  namedCommand(job, 'delete', 'delete a job; unfinished runs are cancelled', { actor: true }).action(async (name: string, options: ActorOptions) =>
    printDone(await sendRequest(options.natsUrl, jobDeleteEndpoint, changeOf(name, options)), options.json, `job ${name} deleted`),
  );

  withPageOptions(namedCommand(job, 'runs', 'list the recorded runs of a job, oldest first'), 'runs').action((name: string, options: BusOptions & PageOptions) => listRuns(name, options));
}
