import { pino, type Logger, type LoggerOptions } from 'pino';

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
  };
  return options.destination ? pino(config, options.destination as pino.DestinationStream) : pino(config);
}

export type { Logger } from 'pino';
