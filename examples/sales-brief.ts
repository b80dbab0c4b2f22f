import type { JWK } from 'jose';
import { withAccessToken, type MandateClient } from '@mandate/sdk';

/**
 * The sales brief agent (three-legged OAuth): Sarah asks the agent, through her app, for a brief on
 * an account. The app hands the agent her IdP token; the agent swaps it, with proof of its own identity, for a WAT bound to her,
 * and reads the CRM with *her* CRM token, asking her to consent the first time. The CRM token is
 * handed to the function below and nowhere else: never into a prompt or a tool result.
 */
export async function salesBrief(
  mandate: MandateClient,
  options: { userJwt: string; privateJwk: JWK; account: string; crmUrl: string; onAuthUrl: (url: string, sessionId: string) => void | Promise<void>; consentTimeoutMs?: number },
): Promise<string> {
  // Sarah's token says who asks; the agent's key proves which agent acts on it.
  const wat = await mandate.tokenForJwt(options.userJwt, { privateJwk: options.privateJwk });
  const readNotes = withAccessToken(
    mandate,
    { provider: 'crm', scopes: ['crm:read'], flow: 'USER_FEDERATION', workloadToken: wat, onAuthUrl: options.onAuthUrl, consentTimeoutMs: options.consentTimeoutMs ?? 60_000 },
    async (token, account: string) => {
      const response = await fetch(`${options.crmUrl}/notes?account=${encodeURIComponent(account)}`, { headers: { authorization: `Bearer ${token}` } });
      if (!response.ok) throw new Error(`the CRM answered ${response.status}`);
      return (await response.json()) as { notes: string[] };
    },
  );
  const { notes } = await readNotes(options.account);
  return `Brief for ${options.account}:\n${notes.map((note) => `- ${note}`).join('\n')}`;
}
