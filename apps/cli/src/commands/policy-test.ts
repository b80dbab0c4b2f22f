import type { Command } from 'commander';
import { policyTestEndpoint, type RequestOf, type ResponseOf } from '@mandate/contracts';
import { EXIT, sendRequest, withBusOptions, type BusOptions } from '../bus.js';
import { readOptionFile } from '../input.js';
import { CliError, none, printJson } from '../output.js';

type TestAnswer = ResponseOf<typeof policyTestEndpoint>;

/*
 * `mandate policy test FILE --gateway G [--policies FILE]`: a file of requests with the decisions
 * expected (a JSON array of cases, after the Cedar CLI's `run-tests` files), run against a
 * candidate text or the set attached to the gateway, with the schema from the gateway's tools.
 * Exit 0 when every case passes, 1 when one does not, 2 when the file cannot be used.
 */

async function testCases(file: string): Promise<unknown[]> {
  const text = await readOptionFile(file, 'the test file');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CliError(`invalid_request: the test file ${file} is not JSON: ${(error as Error).message}`, EXIT.invalid);
  }
  if (!Array.isArray(parsed)) throw new CliError(`invalid_request: the test file ${file} must hold a JSON array of test cases`, EXIT.invalid);
  if (parsed.length === 0) throw new CliError(`invalid_request: the test file ${file} holds no test cases`, EXIT.invalid);
  return parsed;
}

function formatAnswer(answer: TestAnswer, gateway: string): string {
  const set = answer.policySet.source === 'candidate' ? 'the candidate policies' : `policy set ${answer.policySet.name} version ${answer.policySet.version}`;
  const lines = [`running ${answer.results.length} test(s) against ${set}, with the tools of gateway ${gateway}`];
  for (const result of answer.results) {
    const decided = result.decision ? `${result.decision} by ${result.determining.join(', ') || none}${result.errors.length > 0 ? ` (errors: ${result.errors.join(', ')})` : ''}` : '';
    if (result.outcome === 'pass') lines.push(`  test ${result.name} ... ok: ${decided}`);
    else if (result.outcome === 'fail') lines.push(`  test ${result.name} ... fail: ${result.message ?? ''}; decided ${decided}`);
    else lines.push(`  test ${result.name} ... invalid: ${result.message ?? ''}`);
  }
  lines.push(`results: ${answer.passed} passed, ${answer.failed} failed`);
  return lines.join('\n');
}

async function runTests(file: string, options: BusOptions & { gateway: string; policies?: string }): Promise<void> {
  const tests = await testCases(file);
  const candidate = options.policies === undefined ? undefined : await readOptionFile(options.policies, '--policies');
  const request = { tenant: options.tenant, gateway: options.gateway, tests, ...(candidate === undefined ? {} : { text: candidate }) } as RequestOf<typeof policyTestEndpoint>;
  const answer = await sendRequest(options.natsUrl, policyTestEndpoint, request);
  if (options.json) printJson(answer);
  else process.stdout.write(`${formatAnswer(answer, options.gateway)}\n`);
  if (answer.failed > 0) process.exitCode = EXIT.failure;
}

export function addPolicyTestCommand(policy: Command): void {
  withBusOptions(
    policy
      .command('test')
      .description("run a file of requests with expected decisions (a JSON array, as the Cedar CLI's tests) against --policies or the set attached to --gateway; exit 1 on a mismatch")
      .argument('<file>', 'the test cases (JSON)'),
  )
    .requiredOption('--gateway <name>', "the gateway whose tools give the schema (and whose attached set is tested without --policies)")
    .option('--policies <file>', 'a candidate Cedar file to test instead of the attached set')
    .action((file: string, options: BusOptions & { gateway: string; policies?: string }) => runTests(file, options));
}
