import { describe, expect, it } from 'vitest';
import { runCli } from './cli-process.js';
import { assertBuilt, cliEntry } from './processes.js';

// Usage errors are found before anything is sent: no NATS needed.
describe('mandate: an unknown option names the closest known one', () => {
  it('suggests the options a word is part of, where commander finds no near spelling', async () => {
    assertBuilt(cliEntry);
    const port = await runCli(['up', '--port', '4333']);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain("error: unknown option '--port'\n(Did you mean one of --nats-port, --monitor-port, --metrics-port, --authorizer-port, --consent-port, --gateway-port?)");

    const url = await runCli(['status', '--url', 'nats://127.0.0.1:4333']);
    expect(url.code).toBe(2);
    expect(url.stderr).toContain('(Did you mean --nats-url?)');
  });

  it('keeps commander’s own suggestion for a near spelling, on subcommands too', async () => {
    const typo = await runCli(['up', '--nats-prot', '4333']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('(Did you mean --nats-port?)');
    expect(typo.stderr.match(/Did you mean/g)).toHaveLength(1);
    expect((await runCli(['workload', 'list', '--limt', '3'])).stderr).toContain('(Did you mean --limit?)');
  });

  it('reports a mistyped required option as the typo, with the suggestion, not as the option missing', async () => {
    const run = await runCli(['grant', 'check', '--workloda', 'sales-agent', '--provider', 'crm', '--user-sub', 'sarah']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("error: unknown option '--workloda'\n(Did you mean --workload?)");
    expect(run.stderr).not.toContain('required option');
    // A required option that is simply missing still says so.
    expect((await runCli(['grant', 'check', '--provider', 'crm', '--user-sub', 'sarah'])).stderr).toContain("error: required option '--workload <name>' not specified");
  });
});
