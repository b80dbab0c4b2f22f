import { join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { BusClient } from '@mandate/bus/client';
import type { NatsConnection } from '@nats-io/transport-node';
import { DEMO_PASSWORD, DEMO_USERS } from '@mandate/demo';
import { connectCli, defaultActor, withoutCredentials } from '../bus.js';
import { workloadKeys } from '../demo/demo-files.js';
import { demoInstructions, formatInstructions } from '../demo/demo-instructions.js';
import { DEFAULT_IDP_URL, DEMO_PORT_FLAGS, DEMO_PORTS, demoPlan, GATEWAY, SALES_APP, type DemoPortName } from '../demo/demo-plan.js';
import { registerDemo, type Registration } from '../demo/demo-registrations.js';
import { startDemoServers, type DemoServers } from '../demo/demo-servers.js';
import { demoSignIn, type SignInOptions } from '../demo/demo-sign-in.js';
import { localNatsPort, startSystemForDemo, type SystemForDemo } from '../demo/system-for-demo.js';
import { bold, done, printJson, step, table } from '../output.js';
import { collect } from '../parse.js';

/*
 * `mandate demo`: the seed scenario on this machine in one command. On the running system (or
 * one it starts), it runs a demo IdP where sarah and bob sign in, a demo authorization server
 * and the sample CRM, finance and documents APIs behind it, registers the workloads, providers
 * and a tool gateway that use them, and prints commands to try. Ctrl-C stops what it started;
 * what it registered stays, and the next run reuses it.
 */

type DemoPorts = Record<`${DemoPortName}Port`, number>;

interface DemoOptions extends DemoPorts {
  natsUrl: string;
  tenant: string;
  json: boolean;
  actor: string;
  dataDir: string;
  consentUrl: string;
}

const DEFAULT_CONSENT_URL = 'http://127.0.0.1:4490';

function port(value: string): number {
  const parsed = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN;
  if (!(parsed >= 1 && parsed <= 65_535)) throw new InvalidArgumentError('must be a port number (1-65535)');
  return parsed;
}

/** The bus, or (when nothing answers at a URL of this machine) the system started for the demo, then the bus. */
async function connectOrStart(options: DemoOptions, logFile: string): Promise<{ nc: NatsConnection; system?: SystemForDemo }> {
  try {
    return { nc: await connectCli(options.natsUrl, 'mandate-demo') };
  } catch (unreachable) {
    const natsPort = localNatsPort(options.natsUrl);
    if (natsPort === undefined) throw unreachable;
    step(`nothing answers at ${withoutCredentials(options.natsUrl)}: starting the system (mandate up --data-dir ${options.dataDir}; its output goes to ${logFile})`);
    const system = await startSystemForDemo({ dataDir: options.dataDir, natsPort, logFile });
    try {
      return { nc: await connectCli(options.natsUrl, 'mandate-demo'), system };
    } catch (error) {
      await system.stop();
      throw error;
    }
  }
}

function summary(servers: DemoServers, gatewayUrl: string, tenant: string, registered: readonly Registration[]): string {
  const users = DEMO_USERS.map((user) => `${user.login} (${user.department})`).join(', ');
  const rows = [
    ['Demo IdP', `${servers.idp.issuer}   people: ${users}, password ${DEMO_PASSWORD}`],
    ['Demo authorization server', `${servers.authServer.issuer}   of the sample APIs`],
    ['Sample CRM API', servers.apis.crm.url],
    ['Sample finance API', servers.apis.finance.url],
    ['Sample documents API', servers.apis.documents.url],
    ['MCP gateway', `${gatewayUrl}   (gateway ${GATEWAY})`],
  ];
  const byKind = (kind: Registration['kind']) =>
    registered
      .filter((r) => r.kind === kind)
      .map((r) => `${r.name}${r.outcome === 'created' ? '' : ` (${r.outcome})`}`)
      .join(', ');
  const records = [
    ['workloads', byKind('workload')],
    ['providers', byKind('provider')],
    ['gateway', `${byKind('gateway')}, targets ${byKind('target')}`],
  ];
  return `${table(rows)}\n\nIn tenant ${tenant} (created unless it says kept or updated):\n${table(records.map(([label, value]) => [`  ${label}`, value!]))}`;
}

export async function demo(options: DemoOptions): Promise<void> {
  const plan = demoPlan({
    tenant: options.tenant,
    natsUrl: options.natsUrl,
    dataDir: resolve(options.dataDir),
    consentUrl: options.consentUrl,
    ports: { idp: options.idpPort, authServer: options.authServerPort, crm: options.crmPort, finance: options.financePort, documents: options.documentsPort },
  });
  // Listened for from the start: a Ctrl-C while it starts up stops it once it has, with what it started (the system too).
  const signalled = new Promise<NodeJS.Signals>((resolveSignal) => {
    for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(name, () => resolveSignal(name));
  });
  const { nc, system } = await connectOrStart(options, join(plan.dir, 'up.log'));
  let servers: DemoServers | undefined;
  const stopStarted = async () => {
    await servers?.stop();
    await nc.close().catch(() => undefined);
    await system?.stop();
  };
  try {
    const keys = await workloadKeys(plan);
    servers = await startDemoServers(plan);
    done(`demo IdP, authorization server and sample APIs listening (${servers.idp.issuer} …)`);
    const { gatewayUrl, registered } = await registerDemo({ bus: new BusClient(nc), plan, keys, actor: options.actor });
    done(`registered in tenant ${plan.tenant}`);
    const sections = demoInstructions(plan, gatewayUrl);
    if (options.json) {
      printJson({
        idp: servers.idp.issuer,
        authorizationServer: servers.authServer.issuer,
        apis: { crm: servers.apis.crm.url, finance: servers.apis.finance.url, documents: servers.apis.documents.url },
        gateway: { name: GATEWAY, url: gatewayUrl },
        users: DEMO_USERS.map((user) => user.login),
        password: DEMO_PASSWORD,
        registered,
        instructions: sections,
      });
    } else {
      process.stdout.write(
        `\n${bold('The Mandate demo is running')} (demo accounts and secrets: nothing here is for real use)\n${summary(servers, gatewayUrl, plan.tenant, registered)}\n\n` +
          `${bold('Try it')} in another terminal, in this directory:\n\n${formatInstructions(sections)}\n\n` +
          `Ctrl-C stops the demo servers${system ? ' and the system it started' : ''}; what it registered stays, and the next \`mandate demo\` reuses it.\n`,
      );
    }
  } catch (error) {
    await stopStarted();
    throw error;
  }

  const signal = await signalled;
  step(`${signal}: stopping the demo servers${system ? ' and the system' : ''}`);
  await stopStarted();
  done(`stopped; the demo's workloads, providers and gateway stay registered in tenant ${plan.tenant}, its keys in ${plan.dir}`);
}

export function addDemoCommands(program: Command): void {
  const demoCommand = program
    .command('demo')
    .description('run the seed scenario here: a demo IdP (sarah, bob), an authorization server and sample APIs, registered with a gateway; prints commands to try; Ctrl-C stops it')
    .addOption(new Option('--nats-url <url>', 'NATS server to talk to (nothing there, on this machine: the demo starts the system)').env('NATS_URL').default('nats://127.0.0.1:4222'))
    .addOption(new Option('--tenant <id>', 'tenant to register in').env('MANDATE_TENANT').default('default'))
    .addOption(new Option('--json', 'print what it set up, and the commands, as JSON').default(false))
    .addOption(new Option('--actor <name>', 'operator name recorded in the audit trail').default(defaultActor(), 'cli:<your user name>'))
    .addOption(new Option('--data-dir <dir>', "the system's data directory: the demo keeps its keys in <data-dir>/demo").env('MANDATE_DATA_DIR').default('.mandate'))
    .addOption(new Option('--consent-url <url>', "where people reach the consent service (mandate up's --consent-port)").default(DEFAULT_CONSENT_URL));
  const what: Record<DemoPortName, string> = { idp: 'the demo IdP', authServer: 'the demo authorization server', crm: 'the sample CRM API', finance: 'the sample finance API', documents: 'the sample documents API' };
  for (const name of Object.keys(DEMO_PORTS) as DemoPortName[]) {
    demoCommand.addOption(new Option(`${DEMO_PORT_FLAGS[name]} <port>`, `port of ${what[name]}`).argParser(port).default(DEMO_PORTS[name]));
  }
  demoCommand.action((options: DemoOptions) => demo(options));

  demoCommand
    .command('sign-in')
    .description("print a demo user's access token from the running demo IdP, as the sales app gets it when they sign in")
    .argument('<user>', DEMO_USERS.map((user) => user.login).join(' or '))
    .addOption(new Option('--idp-url <url>', 'the demo IdP').env('MANDATE_DEMO_IDP_URL').default(DEFAULT_IDP_URL))
    .option('--audience <uri>', "the token's audience (RFC 8707 resource), e.g. a gateway's MCP URL", SALES_APP.audience)
    // No --json: `demo` has one, which commander would take for itself; the token alone is the result.
    .option('--scope <scope>', "a scope to ask for; repeatable (default: the user's sample API scopes)", collect)
    .action((user: string, options: SignInOptions) => demoSignIn(user, options));
}
