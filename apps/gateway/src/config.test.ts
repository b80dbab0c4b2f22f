import { describe, expect, it } from 'vitest';
import { decisionLogStream } from '@mandate/contracts';
import { gatewayEnvSchema } from './config.js';

describe('the gateway configuration', () => {
  it('keeps the decision log 30 days unless told otherwise; 0 keeps none; a negative or fractional retention is refused naming the variable', () => {
    const env = gatewayEnvSchema.parse({ NATS_URL: 'nats://127.0.0.1:4222' });
    expect(env.GATEWAY_DECISION_LOG_RETENTION_DAYS).toBe(30);
    expect(decisionLogStream(env.GATEWAY_DECISION_LOG_RETENTION_DAYS).maxAgeMs).toBe(30 * 24 * 3_600_000);
    expect(gatewayEnvSchema.parse({ NATS_URL: 'nats://127.0.0.1:4222', GATEWAY_DECISION_LOG_RETENTION_DAYS: '0' }).GATEWAY_DECISION_LOG_RETENTION_DAYS).toBe(0);
    for (const bad of ['-1', '1.5', 'forever']) {
      const parsed = gatewayEnvSchema.safeParse({ NATS_URL: 'nats://127.0.0.1:4222', GATEWAY_DECISION_LOG_RETENTION_DAYS: bad });
      expect(parsed.success, bad).toBe(false);
      expect(parsed.error?.issues[0]?.path).toEqual(['GATEWAY_DECISION_LOG_RETENTION_DAYS']);
    }
  });
});
