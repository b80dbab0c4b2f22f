import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { scrubSecrets } from './scrub.js';

function capture() {
  const lines: string[] = [];
  const logger = createLogger('test', { destination: { write: (line: string) => void lines.push(line) } as never });
  return { logger, lines };
}

describe('createLogger', () => {
  it('redacts credential fields at the top level and one level down', () => {
    const { logger, lines } = capture();
    logger.info({ accessToken: 'at-123', request: { client_secret: 'cs-456', provider: 'google' } }, 'fetched');
    const entry = JSON.parse(lines[0]!);
    expect(entry.accessToken).toBe('[redacted]');
    expect(entry.request).toEqual({ client_secret: '[redacted]', provider: 'google' });
    expect(lines[0]).not.toMatch(/at-123|cs-456/);
  });

  it('scrubs credential-shaped text from error messages, stacks and causes', () => {
    const { logger, lines } = capture();
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzYXJhaCJ9.c2lnbmF0dXJlLWJ5dGVz';
    const error = new Error(`upstream said 401 for Bearer ${jwt}`, { cause: new Error('refresh_token=rt-secret-789 rejected') });
    logger.error({ err: error }, 'provider failed');
    expect(lines[0]).not.toContain(jwt);
    expect(lines[0]).not.toContain('rt-secret-789');
    const entry = JSON.parse(lines[0]!);
    expect(entry.err.message).toBe('upstream said 401 for Bearer [redacted-jwt]');
    expect(entry.err.cause.message).toBe('refresh_token=[redacted] rejected');
  });

  it('scrubs the message string itself', () => {
    const { logger, lines } = capture();
    logger.warn('retrying with password=hunter2hunter2');
    expect(JSON.parse(lines[0]!).msg).toBe('retrying with password=[redacted]');
  });
});

describe('scrubSecrets', () => {
  it.each([
    ['{"client_secret":"abc123"}', '{"client_secret":"[redacted]"}'],
    ['api_key: k-1 and more', 'api_key: [redacted] and more'],
    ['Authorization=Basic dXNlcjpwYXNz', 'Authorization=[redacted] [redacted]'],
    ['id eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. end', 'id [redacted-jwt] end'],
  ])('%s', (input, expected) => {
    expect(scrubSecrets(input)).toBe(expected);
  });

  it('leaves ordinary text alone', () => {
    const text = 'workload sales-agent asked for provider google with scopes calendar.read';
    expect(scrubSecrets(text)).toBe(text);
  });
});
