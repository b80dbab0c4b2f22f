import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { fetchWithRequestSignals } from '@mandate/http';

/**
 * The sales brief through the tool gateway: the agent is an MCP client and holds no credential
 * for any tool. It connects to the gateway with Sarah's token (its audience is the gateway), sees
 * the tools her scopes allow, and asks for an account's CRM notes, spend and documents; the
 * gateway gets each tool's credential from the vault. A tool she may not use is simply not there.
 */
export async function salesBriefThroughGateway(options: { gatewayUrl: string; userToken: string; account: string }): Promise<string> {
  const client = new Client({ name: 'sales-brief-agent', version: '1.0.0' });
  // Each request with its own abort signal: a long-running agent's calls do not get slower one by one (docs/gateway.md).
  await client.connect(new StreamableHTTPClientTransport(new URL(options.gatewayUrl), { requestInit: { headers: { authorization: `Bearer ${options.userToken}` } }, fetch: fetchWithRequestSignals() }));
  try {
    const available = new Set((await client.listTools()).tools.map((tool) => tool.name));
    const ask = async (tool: string): Promise<Record<string, unknown> | undefined> => {
      if (!available.has(tool)) return undefined;
      const result = await client.callTool({ name: tool, arguments: { accountId: options.account } });
      return result.isError ? undefined : (result.structuredContent as Record<string, unknown>);
    };
    const [notes, spend, documents] = await Promise.all([ask('sales-tools___crm_notes'), ask('sales-tools___finance_spend'), ask('sales-tools___documents_list')]);
    const lines = [`Brief for ${options.account}:`];
    lines.push(...((notes?.['notes'] as string[] | undefined) ?? []).map((note) => `- ${note}`));
    lines.push(spend ? `Spend this year: ${String(spend['total'])} ${String(spend['currency'])}` : 'Spend: not available to you');
    if (documents) lines.push(`Documents: ${(documents['documents'] as string[]).join(', ')}`);
    return lines.join('\n');
  } finally {
    await client.close();
  }
}
