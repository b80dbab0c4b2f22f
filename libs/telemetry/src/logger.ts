import { pino, type Logger, type LoggerOptions } from 'pino';
import { scrubSecrets } from './scrub.js';

/**
 * Field names whose values are credentials. pino replaces them with "[redacted]" wherever they
 * appear (top level or one object deep), so a careless `log.info({ req })` cannot leak them.
 */
export const SECRET_FIELDS = [
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'idToken',
  'id_token',
  'clientSecret',
  'client_secret',
  'apiKey',
  'api_key',
  'password',
  'secret',
  'authorization',
  'assertion',
  'client_assertion',
  'authorizationCode',
  'code_verifier',
  'dataKey',
  'masterKey',
  'privateKey',
] as const;

const redactPaths = SECRET_FIELDS.flatMap((field) => [field, `*.${field}`]);

export function createLogger(service: string, options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const config: LoggerOptions = {
    name: `mandate-${service}`,
    level: options.level ?? 'info',
    redact: { paths: redactPaths, censor: '[redacted]' },
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: serializeError },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((arg) => (typeof arg === 'string' ? scrubSecrets(arg) : arg)) as Parameters<typeof method>);
      },
    },
  };
  return options.destination ? pino(config, options.destination as pino.DestinationStream) : pino(config);
}

export type { Logger } from 'pino';

/** Errors keep their type, code and stack, with free text scrubbed of anything credential-shaped. */
function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: scrubSecrets(String(error)) };
  const serialized: Record<string, unknown> = { type: error.name, message: scrubSecrets(error.message) };
  if (error.stack) serialized['stack'] = scrubSecrets(error.stack);
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') serialized['code'] = code;
  if (error.cause !== undefined) serialized['cause'] = serializeError(error.cause);
  return serialized;
}
