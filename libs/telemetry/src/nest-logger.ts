import type { LoggerService } from '@nestjs/common';
import type { Logger } from 'pino';

/**
 * Routes NestJS's own log lines through pino, so a service has one log format. Nest hands some
 * of them an error object (a module that fails to start, say): it goes under `err`, through the
 * logger's error serializer (which scrubs credential-shaped text), with its message as the line's,
 * rather than as `JSON.stringify` of an Error, which is `{}`.
 */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, context?: string): void {
    this.logger.info(fields(message, { context }), text(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.logger.error(fields(message, { context, ...(trace && !(message instanceof Error) ? { trace } : {}) }), text(message));
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn(fields(message, { context }), text(message));
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug(fields(message, { context }), text(message));
  }
  verbose(message: unknown, context?: string): void {
    this.logger.trace(fields(message, { context }), text(message));
  }
}

function fields(message: unknown, base: Record<string, unknown>): Record<string, unknown> {
  return message instanceof Error ? { ...base, err: message } : base;
}

function text(message: unknown): string {
  if (typeof message === 'string') return message;
  if (message instanceof Error) return message.message;
  return JSON.stringify(message);
}
