import { Option, InvalidArgumentError, type Command } from 'commander';
import { auditQueryEndpoint, auditRecordSchema, auditVerifyEndpoint, type AuditRecord, type AuditVerifyReport, type RequestOf, type TrailEntry } from '@mandate/contracts';
import { connectCli, defined, sendRequest, withBusOptions, type BusOptions } from '../bus.js';
import { positiveInteger } from '../parse.js';
import { done, fail, green, printJson, printTable, red, step } from '../output.js';

/*
 * `mandate audit …`: read the audit trail (query), follow it live (tail) and check it was not
 * tampered with (verify). They talk to the audit service (`mandate.audit-trail.v1.*`), except tail,
 * which listens to the records as services publish them.
 */

/** Exit code of `verify` when the trail does not verify. */
export const EXIT_TAMPERED = 1;

/** `--from`/`--to` of verify: a sequence number or an ISO time. */
function sequenceOrTime(value: string): number | string {
  if (/^\d+$/.test(value)) return positiveInteger(value);
  return isoTime(value);
}

function isoTime(value: string): string {
  if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new InvalidArgumentError('must be an ISO 8601 time, e.g. 2025-01-31T12:00:00Z');
  }
  return new Date(value).toISOString();
}

function userOf(record: AuditRecord): string {
  return record.actor.user?.sub ?? record.actor.admin ?? '';
}

function printEntries(entries: TrailEntry[]): void {
  if (entries.length === 0) return void process.stderr.write('no records\n');
  const rows = entries.map(({ sequence, record }) => [
    String(sequence),
    record.occurredAt,
    `${record.service}/${record.action}`,
    record.reason ? `${record.outcome} (${record.reason})` : record.outcome,
    record.actor.workload ?? '',
    userOf(record),
    record.target?.provider ?? '',
    record.traceId,
  ]);
  printTable(['seq', 'occurred', 'service/action', 'outcome', 'workload', 'user', 'provider', 'trace id'], rows);
}

/** Each filter option is the request field of the same name (`--trace-id` is `traceId`). */
type QueryOptions = BusOptions & Omit<RequestOf<typeof auditQueryEndpoint>, 'tenant' | 'limit'> & { limit: number };

export async function auditQuery(options: QueryOptions): Promise<void> {
  const request: RequestOf<typeof auditQueryEndpoint> = { tenant: options.tenant, limit: options.limit };
  for (const key of ['traceId', 'workload', 'user', 'provider', 'service', 'action', 'outcome', 'from', 'to', 'cursor'] as const) {
    if (options[key] !== undefined) (request as Record<string, unknown>)[key] = options[key];
  }
  const result = await sendRequest(options.natsUrl, auditQueryEndpoint, request);
  if (options.json) return printJson(result);
  printEntries(result.entries);
  if (result.nextCursor) process.stderr.write(`more: --cursor ${result.nextCursor} (${result.scanned} records read)\n`);
}

export async function auditVerify(options: BusOptions & { from?: number | string; to?: number | string }): Promise<void> {
  const report: AuditVerifyReport = await sendRequest(options.natsUrl, auditVerifyEndpoint, { tenant: options.tenant, ...defined({ from: options.from, to: options.to }) });
  if (!report.ok) process.exitCode = EXIT_TAMPERED;
  if (options.json) return printJson(report);
  const line = `${report.records.valid}/${report.records.total} records valid, ${report.digests.valid}/${report.digests.total} digests valid`;
  process.stdout.write(`${report.ok ? green(line) : red(line)}\n`);
  if (report.problem) {
    process.stdout.write(`first problem: ${report.problem.kind}: ${report.problem.message}\n`);
    for (const more of report.problems.slice(1)) process.stdout.write(`  also ${more.kind}: ${more.message}\n`);
  }
  const trail = `the audit trail of ${options.tenant} (records ${report.fromSequence}-${report.toSequence})`;
  if (report.ok) done(`${trail} verifies`);
  else fail(`${trail} does not verify`);
}

/** Prints records as services publish them, until Ctrl-C. */
export async function auditTail(options: BusOptions & { allTenants: boolean }): Promise<void> {
  const nc = await connectCli(options.natsUrl, 'mandate-cli-tail');
  const subject = options.allTenants ? 'mandate.audit.>' : `mandate.audit.${options.tenant}.>`;
  const subscription = nc.subscribe(subject);
  const stop = () => subscription.unsubscribe();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // The server knows the subscription once a round trip has passed: only then say we follow.
  await nc.flush();
  step(`following ${subject} (Ctrl-C stops)`);
  for await (const msg of subscription) {
    let parsed;
    try {
      parsed = auditRecordSchema.safeParse(msg.json());
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) {
      process.stderr.write(`! ${msg.subject}: not a valid audit record\n`);
      continue;
    }
    const r = parsed.data;
    if (options.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else {
      const who = [r.actor.workload && `workload=${r.actor.workload}`, userOf(r) && `user=${userOf(r)}`, r.target?.provider && `provider=${r.target.provider}`].filter(Boolean).join(' ');
      process.stdout.write(`${r.occurredAt}  ${r.tenant}  ${r.service}/${r.action}  ${r.outcome}${r.reason ? ` (${r.reason})` : ''}  ${who}  trace=${r.traceId}\n`);
    }
  }
  await nc.close().catch(() => undefined);
}

export function addAuditCommands(program: Command): void {
  const audit = program.command('audit').description('read, follow and verify the audit trail');

  withBusOptions(audit.command('query').description("a tenant's audit records, newest first"))
    .option('--trace-id <id>', 'only records of this trace (32 hex digits)')
    .option('--workload <name>', 'only records about this workload')
    .option('--user <sub>', "only records about this user (the IdP's sub)")
    .option('--provider <name>', 'only records about this credential provider')
    .option('--service <name>', 'only records from this service')
    .option('--action <name>', 'only records of this action')
    .addOption(new Option('--outcome <outcome>', 'only records with this outcome').choices(['allowed', 'denied', 'succeeded', 'failed']))
    .addOption(new Option('--from <time>', 'only records that occurred at or after this ISO time').argParser(isoTime))
    .addOption(new Option('--to <time>', 'only records that occurred before this ISO time').argParser(isoTime))
    .addOption(new Option('--limit <n>', 'records per page (1-500)').argParser(positiveInteger).default(50))
    .option('--cursor <cursor>', 'the next page, as printed after the previous one')
    .action((options: QueryOptions) => auditQuery(options));

  withBusOptions(audit.command('tail').description('print audit records as services publish them, until Ctrl-C'))
    .option('--all-tenants', 'every tenant, not only --tenant', false)
    .action((options: BusOptions & { allTenants: boolean }) => auditTail(options));

  const verify = `check every hash, sequence and digest signature of a tenant's trail; exit ${EXIT_TAMPERED} naming the first broken record if it does not verify`;
  withBusOptions(audit.command('verify').description(verify))
    .addOption(new Option('--from <seq|time>', 'first record: a sequence number or an ISO time').argParser(sequenceOrTime))
    .addOption(new Option('--to <seq|time>', 'last record: a sequence number, or an ISO time (records appended before it)').argParser(sequenceOrTime))
    .action((options: BusOptions & { from?: number | string; to?: number | string }) => auditVerify(options));
}
