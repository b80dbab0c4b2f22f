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
});
