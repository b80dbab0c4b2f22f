import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { BusClient } from '@mandate/bus/client';
import { jobCreateEndpoint, providerCreateEndpoint, workloadCreateEndpoint, type TaskMessage } from '@mandate/contracts';
import { consumeTasks, withAccessToken, type MandateClient, type TaskConsumer } from '@mandate/sdk';

/** Where the summary of each incident goes (core NATS; a real agent would post to the ticket). */
export const SUMMARY_SUBJECT = 'examples.incident.summary';

/**
 * The registrations of the incident agent: its workload and key, an M2M provider for the logs
 * API that only it may use, and a job that turns every `tickets.high` event into a task.
 */
export async function setUpIncidentAgent(
  bus: BusClient,
  options: { tenant: string; logs: { discoveryUrl: string; clientId: string; clientSecret: string; audience: string } },
): Promise<{ privateJwk: JWK }> {
  const { tenant, logs } = options;
  const pair = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'incident-1', alg: 'ES256' };
  const privateJwk = { ...(await exportJWK(pair.privateKey)), kid: 'incident-1', alg: 'ES256' };
  await bus.request(workloadCreateEndpoint, { tenant, name: 'incident-agent', description: 'Root-cause analysis of high-severity tickets', publicKeys: { keys: [publicJwk as never] } });
  await bus.request(providerCreateEndpoint, {
    kind: 'oauth2',
    tenant,
    name: 'logs',
    vendor: 'custom',
    discoveryUrl: logs.discoveryUrl,
    clientId: logs.clientId,
    clientSecret: logs.clientSecret,
    tokenParameters: { resource: logs.audience },
    allowedWorkloads: ['incident-agent'],
  });
  await bus.request(jobCreateEndpoint, {
    tenant,
    name: 'incident-agent',
    workload: { name: 'incident-agent', privateJwk: privateJwk as never },
    trigger: { kind: 'event', subject: 'tickets.high' },
    action: { kind: 'task', payload: { analysis: 'root-cause' } },
  });
  return { privateJwk };
}

/**
 * The agent itself: takes each task, reads the logs with an M2M token (handed to the function
 * only, never to a model), and publishes a root-cause summary. Idempotent on the task's key.
 */
export async function runIncidentAgent(mandate: MandateClient, options: { privateJwk: JWK; logsUrl: string }): Promise<TaskConsumer> {
  const summarised = new Set<string>();
  const readLogs = withAccessToken(
    mandate,
    { provider: 'logs', scopes: ['logs:read'], flow: 'M2M', workloadToken: () => mandate.workloadToken({ privateJwk: options.privateJwk }) },
    async (token, ticket: unknown) => {
      const response = await fetch(`${options.logsUrl}/logs?ticket=${encodeURIComponent(String(ticket))}`, { headers: { authorization: `Bearer ${token}` } });
      if (!response.ok) throw new Error(`the logs API answered ${response.status}`);
      return (await response.json()) as { lines: string[] };
    },
  );
  return consumeTasks(mandate, { job: 'incident-agent', retryDelayMs: 200 }, async (task: TaskMessage) => {
    if (summarised.has(task.idempotencyKey)) return;
    const ticket = (task.event?.data as { ticket?: unknown } | undefined)?.ticket;
    const { lines } = await readLogs(ticket);
    const cause = lines.find((line) => line.includes('ERROR')) ?? 'no error in the logs';
    mandate.connection.publish(SUMMARY_SUBJECT, JSON.stringify({ ticket, cause, idempotencyKey: task.idempotencyKey }));
    summarised.add(task.idempotencyKey);
  });
}
