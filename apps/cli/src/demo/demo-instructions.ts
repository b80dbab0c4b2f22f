import { isAbsolute, relative } from 'node:path';
import { DEMO_PASSWORD } from '@mandate/demo';
import { AGENT, DEFAULT_IDP_URL, GATEWAY, keyFileOf, REPORT_AGENT, type DemoPlan } from './demo-plan.js';

/*
 * The commands `mandate demo` prints to try it out: real `mandate` commands against what it has
 * just registered, in the order a newcomer would run them, each section copy-paste ready for a
 * second terminal in the same directory (bash or zsh).
 */

const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
const DEFAULT_TENANT = 'default';

export interface InstructionSection {
  title: string;
  /** Shell lines: commands, and `#` comments that explain them. */
  lines: string[];
}

/** A word the shell takes as it is, quoted otherwise. */
function shellWord(text: string): string {
  return /^[\w./@:=,+-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/** A path as the user would type it from here: relative when it is below the current directory. */
function shownPath(path: string): string {
  const fromHere = relative(process.cwd(), path);
  return shellWord(fromHere && !fromHere.startsWith('..') && !isAbsolute(fromHere) ? fromHere : path);
}

export function demoInstructions(plan: DemoPlan, gatewayUrl: string): InstructionSection[] {
  const key = (workload: typeof AGENT | typeof REPORT_AGENT) => shownPath(keyFileOf(plan, workload));
  const financeSpend = `${plan.apiUrls.finance}/accounts/acme/spend`;
  const job = (name: string, trigger: string) =>
    `npx mandate job create ${name} --workload ${REPORT_AGENT} --key ${key(REPORT_AGENT)} ${trigger} --http ${financeSpend} --method GET --provider finance --scope finance.spend.read`;
  const exports = [
    ...(plan.natsUrl === DEFAULT_NATS_URL ? [] : [`export NATS_URL=${shellWord(plan.natsUrl)}`]),
    ...(plan.tenant === DEFAULT_TENANT ? [] : [`export MANDATE_TENANT=${shellWord(plan.tenant)}`]),
    ...(plan.idpUrl === DEFAULT_IDP_URL ? [] : [`export MANDATE_DEMO_IDP_URL=${plan.idpUrl}`]),
  ];
  const forSarah = `npx mandate demo sign-in sarah | npx mandate token for-jwt --workload ${AGENT} --key ${key(AGENT)} --jwt -`;
  return [
    ...(exports.length > 0 ? [{ title: 'In every terminal first: this system is not on the defaults', lines: exports }] : []),
    {
      title: 'A WAT for sarah',
      lines: [
        '# she signs in at the demo IdP (as the sales app would have her do); the sales-brief agent proves itself with its key and gets a token to act for her',
        `export SARAH_WAT=$(${forSarah})`,
        `${forSarah} --decode`,
        "# bob is not in sales: with his token (npx mandate demo sign-in bob) the agent's authorizer config refuses him, exit 5",
      ],
    },
    {
      title: "sarah's CRM token for the agent, with her consent",
      lines: [
        `# the first time the vault asks her (exit 7): open the URL it prints, sign in as sarah (password ${DEMO_PASSWORD}),`,
        "# approve on Mandate's consent page and then at the CRM's, and run it again: now it prints the token",
        'npx mandate credential oauth2-token --provider crm --flow USER_FEDERATION --scope crm.notes.read --wat-env SARAH_WAT',
      ],
    },
    {
      title: 'An M2M token',
      lines: [
        "# the report agent's own token for the finance API (client credentials; the vault caches it)",
        `export REPORT_WAT=$(npx mandate token for-workload --workload ${REPORT_AGENT} --key ${key(REPORT_AGENT)})`,
        'npx mandate credential oauth2-token --provider finance --flow M2M --scope finance.spend.read --wat-env REPORT_WAT',
      ],
    },
    {
      title: 'An API key',
      lines: ['# the vault keeps it for the report agent (a demo one)', 'npx mandate credential api-key --provider weather --wat-env REPORT_WAT'],
    },
    {
      title: 'A scheduled job',
      lines: [
        "# every minute the report agent reads ACME's spend at the finance API, with its M2M token",
        job('spend-report', `--cron '* * * * *'`),
        'npx mandate job runs spend-report   # after a minute: a run that succeeded, with the HTTP status',
        '# the same on an event instead of the clock:',
        job('spend-on-request', '--event spend.requested'),
        `npx mandate trigger publish spend.requested --data '{"account":"acme"}'`,
        'npx mandate job runs spend-on-request',
      ],
    },
    {
      title: 'The MCP gateway in front of the sample APIs',
      lines: [
        '# each person sees only the tools their scopes allow: sarah the CRM, finance and documents, bob finance',
        `export SARAH_MCP_TOKEN=$(npx mandate demo sign-in sarah --audience ${gatewayUrl})`,
        `npx mandate gateway tools ${GATEWAY} --token-env SARAH_MCP_TOKEN`,
        `export BOB_MCP_TOKEN=$(npx mandate demo sign-in bob --audience ${gatewayUrl})`,
        `npx mandate gateway tools ${GATEWAY} --token-env BOB_MCP_TOKEN`,
        `# any MCP client (Streamable HTTP) connects to ${gatewayUrl} with the header "Authorization: Bearer $SARAH_MCP_TOKEN"`,
      ],
    },
    {
      title: 'The audit trail',
      lines: ['# what happened, and proof that nobody rewrote it', 'npx mandate audit query --limit 10', 'npx mandate audit verify'],
    },
  ];
}

/** The sections as the terminal shows them: numbered `#` titles, the lines below each. */
export function formatInstructions(sections: readonly InstructionSection[]): string {
  return sections.map((section, index) => [`# ${index + 1}. ${section.title}`, ...section.lines].join('\n')).join('\n\n');
}
