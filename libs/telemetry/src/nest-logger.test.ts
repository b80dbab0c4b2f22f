import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { PinoNestLogger } from './nest-logger.js';

function capture() {
  const lines: string[] = [];
  const logger = createLogger('test', { destination: { write: (line: string) => void lines.push(line) } as never });
  return { nest: new PinoNestLogger(logger), entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe('PinoNestLogger', () => {
  it('logs an error Nest hands it with its message, code and stack under err (not as {}), scrubbed', () => {
    const { nest, entries } = capture();
    class StartupError extends Error {
      override readonly name = 'StartupError';
      readonly code = 'unavailable';
    }
    nest.error(new StartupError('the store did not answer in time for password=hunter2hunter2'), undefined, 'InstanceLoader');
    const [entry] = entries();
    expect(entry!['msg']).toBe('the store did not answer in time for password=[redacted]');
    expect(entry!['context']).toBe('InstanceLoader');
    expect(entry!['err']).toMatchObject({ type: 'StartupError', code: 'unavailable', message: 'the store did not answer in time for password=[redacted]' });
    expect(JSON.stringify(entry)).not.toContain('hunter2');
  });

  it('keeps strings as the message, with the trace Nest gives, and other values as JSON', () => {
    const { nest, entries } = capture();
    nest.error('could not start', 'Error: could not start\n    at x', 'NestFactory');
    nest.warn({ some: 'value' }, 'Scanner');
    const [error, warning] = entries();
    expect(error).toMatchObject({ msg: 'could not start', trace: 'Error: could not start\n    at x', context: 'NestFactory' });
    expect(warning).toMatchObject({ msg: '{"some":"value"}', context: 'Scanner' });
  });
});
