import { describe, expect, it } from 'vitest';
import { auditEnvSchema, dedupWindowSeconds } from './config.js';

describe('audit configuration', () => {
  it('remembers records for 120 s by default (far longer than the intake duplicate window), or what AUDIT_DEDUP_WINDOW_SECONDS says (its former name still read)', () => {
    expect(dedupWindowSeconds(auditEnvSchema.parse({}))).toBe(120);
    expect(dedupWindowSeconds(auditEnvSchema.parse({ AUDIT_DEDUP_WINDOW_SECONDS: '300' }))).toBe(300);
    expect(dedupWindowSeconds(auditEnvSchema.parse({ AUDIT_CLAIM_RETENTION_SECONDS: '240' }))).toBe(240);
    expect(dedupWindowSeconds(auditEnvSchema.parse({ AUDIT_DEDUP_WINDOW_SECONDS: '300', AUDIT_CLAIM_RETENTION_SECONDS: '240' }))).toBe(300);
  });

  it('refuses a window shorter than two ack waits, naming the variable that set it', () => {
    const short = auditEnvSchema.safeParse({ AUDIT_DEDUP_WINDOW_SECONDS: '60', AUDIT_ACK_WAIT_SECONDS: '45' });
    expect(short.success).toBe(false);
    expect(short.error?.issues[0]).toMatchObject({ path: ['AUDIT_DEDUP_WINDOW_SECONDS'], message: expect.stringContaining('twice AUDIT_ACK_WAIT_SECONDS') });
    const formerName = auditEnvSchema.safeParse({ AUDIT_CLAIM_RETENTION_SECONDS: '60', AUDIT_ACK_WAIT_SECONDS: '45' });
    expect(formerName.error?.issues[0]?.path).toEqual(['AUDIT_CLAIM_RETENTION_SECONDS']);
    expect(auditEnvSchema.safeParse({ AUDIT_DEDUP_WINDOW_SECONDS: '30' }).success).toBe(false);
  });

  it('waits up to a second for a batch to fill by default; 0 to 10,000 ms, anything else refused naming the variable', () => {
    expect(auditEnvSchema.parse({}).AUDIT_CHAIN_LINGER_MS).toBe(1_000);
    expect(auditEnvSchema.parse({ AUDIT_CHAIN_LINGER_MS: '0' }).AUDIT_CHAIN_LINGER_MS).toBe(0);
    for (const bad of ['-1', '10001', 'soon']) {
      expect(auditEnvSchema.safeParse({ AUDIT_CHAIN_LINGER_MS: bad }).error?.issues[0]?.path).toEqual(['AUDIT_CHAIN_LINGER_MS']);
    }
    // Waiting longer than a quarter of the ack wait would have the intake deliver the records again.
    const long = auditEnvSchema.safeParse({ AUDIT_CHAIN_LINGER_MS: '2000', AUDIT_ACK_WAIT_SECONDS: '5' });
    expect(long.error?.issues[0]).toMatchObject({ path: ['AUDIT_CHAIN_LINGER_MS'], message: expect.stringContaining('quarter of AUDIT_ACK_WAIT_SECONDS') });
    expect(auditEnvSchema.safeParse({ AUDIT_CHAIN_LINGER_MS: '1250', AUDIT_ACK_WAIT_SECONDS: '5' }).success).toBe(true);
  });
});
