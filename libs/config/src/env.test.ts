import { describe, expect, it } from 'vitest';
import { baseEnvSchema, ConfigError, parseEnv } from './env.js';

function problemsOf(env: NodeJS.ProcessEnv): string {
  try {
    parseEnv(baseEnvSchema, env);
    return 'parsed';
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
}

describe('parseEnv', () => {
  it('gives the embedded defaults for an empty environment', () => {
    expect(parseEnv(baseEnvSchema, {})).toMatchObject({
      NATS_URL: 'nats://127.0.0.1:4222',
      MANDATE_MODE: 'embedded',
      MANDATE_STORE: 'jetstream-kv',
      METRICS_PORT: 0,
      LOG_LEVEL: 'info',
    });
  });

  it('treats an empty variable as unset', () => {
    expect(parseEnv(baseEnvSchema, { LOG_LEVEL: '' }).LOG_LEVEL).toBe('info');
  });

  it('names every bad variable at once and never echoes a value', () => {
    const message = problemsOf({ NATS_URL: 'http://admin:s3cret-pass@host', METRICS_PORT: '99999', LOG_LEVEL: 'loud' });
    expect(message).toContain('NATS_URL');
    expect(message).toContain('METRICS_PORT');
    expect(message).toContain('LOG_LEVEL');
    expect(message).not.toContain('s3cret-pass');
  });

  it('requires MONGODB_URI when the MongoDB store is chosen', () => {
    expect(problemsOf({ MANDATE_STORE: 'mongodb' })).toContain('MONGODB_URI: required when MANDATE_STORE=mongodb');
    expect(problemsOf({ MANDATE_STORE: 'mongodb', MONGODB_URI: 'postgres://x' })).toContain('MONGODB_URI');
    expect(parseEnv(baseEnvSchema, { MANDATE_STORE: 'mongodb', MONGODB_URI: 'mongodb://db:27017/?replicaSet=rs0' }).MONGODB_DATABASE).toBe('mandate');
  });

  it('accepts a comma-separated list of cluster URLs', () => {
    expect(parseEnv(baseEnvSchema, { NATS_URL: 'nats://n1:4222,nats://n2:4222, tls://n3:4222' }).NATS_URL).toContain('n3');
  });
});
