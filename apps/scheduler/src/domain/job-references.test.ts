import { describe, expect, it } from 'vitest';
import { MandateError, type jobCreateEndpoint, type ParsedRequestOf, type TenantId } from '@mandate/contracts';
import { JobReferences, type ReferencePorts } from './job-references.js';

type CreateRequest = ParsedRequestOf<typeof jobCreateEndpoint>;

const request = (action: CreateRequest['action'], workload = 'report-agent'): CreateRequest => ({
  tenant: 'acme' as TenantId,
  name: 'weekly-report',
  description: '',
  workload: { name: workload, privateJwk: { kty: 'OKP', kid: 'k1', d: 'private' } },
  trigger: { kind: 'cron', expression: '0 20 * * 3', timeZone: 'UTC' },
  action,
  missedFire: 'run-once',
  retry: { limit: 3, backoffMs: 10_000, maxBackoffMs: 600_000 },
  paused: false,
});
const http = (provider: string): CreateRequest['action'] => ({ kind: 'http', method: 'POST', url: 'https://reports.example/weekly', provider, scopes: [] });

/** The directory knows report-agent (with key k1); the vault has an OAuth2 provider and an API key one. */
function ports(asked: string[]): ReferencePorts {
  return {
    async checkKey(_tenant, workload) {
      asked.push(`key ${workload}`);
      if (workload !== 'report-agent') throw new MandateError('invalid_request', `the authorizer does not accept this key for workload ${workload} (unauthenticated)`);
    },
    async workloadExists(_tenant, workload) {
      asked.push(`workload ${workload}`);
      return workload === 'report-agent';
    },
    async providerKind(_tenant, provider) {
      asked.push(`provider ${provider}`);
      return ({ reporting: 'oauth2', weather: 'api-key' } as const)[provider as 'reporting' | 'weather'];
    },
  };
}

const refusal = (promise: Promise<unknown>) => promise.then(() => expect.fail('expected a refusal'), (error: unknown) => error as MandateError);

describe('JobReferences', () => {
  it('lets a job through whose workload takes its key and whose provider gives M2M tokens, asking the directory nothing', async () => {
    const asked: string[] = [];
    await new JobReferences(ports(asked)).assertExist(request(http('reporting')));
    expect(asked).toEqual(['key report-agent', 'provider reporting']);
  });

  it('asks the vault nothing for a task action', async () => {
    const asked: string[] = [];
    await new JobReferences(ports(asked)).assertExist(request({ kind: 'task', payload: {} }));
    expect(asked).toEqual(['key report-agent']);
  });

  it('names the unknown provider, and refuses an API key provider for an HTTP action', async () => {
    expect(await refusal(new JobReferences(ports([])).assertExist(request(http('ghost'))))).toMatchObject({
      code: 'invalid_request',
      message: 'no provider ghost in tenant acme',
      issues: [{ path: 'action.provider', message: 'no such provider in the vault' }],
    });
    expect(await refusal(new JobReferences(ports([])).assertExist(request(http('weather'))))).toMatchObject({
      code: 'invalid_request',
      issues: [{ path: 'action.provider', message: 'an HTTP action needs an OAuth2 provider for its M2M token' }],
    });
  });

  it('tells an unknown workload from a refused key, and checks no provider after either', async () => {
    const asked: string[] = [];
    expect(await refusal(new JobReferences(ports(asked)).assertExist(request(http('reporting'), 'ghost-agent')))).toMatchObject({
      code: 'invalid_request',
      message: 'no workload ghost-agent in tenant acme',
      issues: [{ path: 'workload.name', message: 'no such workload in the directory' }],
    });
    expect(asked).toEqual(['key ghost-agent', 'workload ghost-agent']);

    const wrongKey: ReferencePorts = { ...ports([]), checkKey: async () => Promise.reject(new MandateError('invalid_request', 'the authorizer does not accept this key for workload report-agent (unauthenticated)')) };
    expect((await refusal(new JobReferences(wrongKey).assertExist(request(http('reporting'))))).message).toBe('the authorizer does not accept this key for workload report-agent (unauthenticated)');
  });

  it('passes on a failure that is not a refusal (the authorizer is down) without asking the directory', async () => {
    const asked: string[] = [];
    const down: ReferencePorts = { ...ports(asked), checkKey: async () => Promise.reject(new MandateError('unavailable', 'no authorizer')) };
    expect((await refusal(new JobReferences(down).assertExist(request(http('reporting'))))).code).toBe('unavailable');
    expect(asked).toEqual([]);
  });
});
