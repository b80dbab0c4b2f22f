import { describe, expect, it } from 'vitest';
import { formatLogLine } from './service-processes.js';

const line = JSON.stringify({ level: 40, time: '2026-12-02T07:30:01.123Z', pid: 7, hostname: 'h', msg: 'upstream slow', target: 'crm', latencyMs: 812, tags: ['a'], note: 'two words' });

describe('service log lines under mandate up', () => {
  it('on a terminal: one readable line, the structured fields after the message', () => {
    expect(formatLogLine('gateway', line, 'pretty')).toBe('07:30:01 gateway      warn upstream slow target=crm latencyMs=812 tags=["a"] note="two words"');
  });

  it('otherwise: the JSON line with every field, the service named in it', () => {
    expect(JSON.parse(formatLogLine('gateway', line, 'json'))).toEqual({ ...JSON.parse(line), service: 'gateway' });
  });

  it('a line that is not JSON is kept whole, as the message', () => {
    expect(formatLogLine('vault', 'Error: boom', 'pretty')).toBe('vault        Error: boom');
    expect(JSON.parse(formatLogLine('vault', 'Error: boom', 'json'))).toMatchObject({ service: 'vault', msg: 'Error: boom', level: 30 });
  });

  it('an error keeps its message; a very long field is cut', () => {
    const failed = JSON.stringify({ level: 50, time: '2026-12-02T07:30:01.123Z', msg: 'call failed', err: { message: 'timeout', stack: 'x' }, detail: 'y'.repeat(500) });
    const text = formatLogLine('audit', failed, 'pretty');
    expect(text).toContain('error call failed: timeout detail=');
    expect(text).not.toContain('stack');
    expect(text.length).toBeLessThan(300);
  });
});
