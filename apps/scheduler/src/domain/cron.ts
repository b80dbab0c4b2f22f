import { CronExpressionParser } from 'cron-parser';
import { MandateError } from '@mandate/contracts';

/** Cron arithmetic in a time zone (cron-parser with its `tz` option). */
export class CronSchedule {
  private constructor(
    private readonly expression: string,
    private readonly timeZone: string,
  ) {}

  /** Parses and checks an expression; `invalid_request` naming the field when it is not one. */
  static of(expression: string, timeZone: string): CronSchedule {
    const fields = expression.trim().split(/\s+/);
    if (!expression.startsWith('@') && (fields.length < 5 || fields.length > 6)) {
      throw new MandateError('invalid_request', 'invalid cron expression', { issues: [{ path: 'trigger.expression', message: 'needs 5 fields (or 6 with seconds first)' }] });
    }
    try {
      CronExpressionParser.parse(expression, { tz: timeZone, strict: false });
    } catch {
      throw new MandateError('invalid_request', 'invalid cron expression', { issues: [{ path: 'trigger.expression', message: 'not a valid cron expression' }] });
    }
    return new CronSchedule(expression, timeZone);
  }

  /** The latest fire time at or before `at`, or undefined when there is none. */
  latestAtOrBefore(at: number): number | undefined {
    const expression = CronExpressionParser.parse(this.expression, { tz: this.timeZone, currentDate: new Date(at + 1) });
    return expression.hasPrev() ? expression.prev().getTime() : undefined;
  }

  /** The first fire time after `at`. */
  nextAfter(at: number): number | undefined {
    const expression = CronExpressionParser.parse(this.expression, { tz: this.timeZone, currentDate: new Date(at) });
    return expression.hasNext() ? expression.next().getTime() : undefined;
  }
}
