import { z } from 'zod';

/** Thrown at start-up when configuration is wrong; its message names every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * Parses environment variables with a zod object whose keys are the variable names. Values are
 * never echoed back: a mistyped secret must not end up in a start-up log.
 */
export function parseEnv<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    // An empty variable means "not set": `FOO= cmd` should fall back to the default.
    input[key] = value === '' ? undefined : value;
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || '(env)'}: ${issue.message}`));
}

/** Settings every Mandate process shares. */
export const baseEnvSchema = z.object({
  NATS_URL: z
    .string()
    .default('nats://127.0.0.1:4222')
    .refine((v) => v.split(',').every((u) => /^(nats|tls|wss?):\/\/[^\s]+$/.test(u.trim())), 'must be one or more nats://host:port URLs, comma-separated'),
  NATS_USER: z.string().optional(),
  NATS_PASSWORD: z.string().optional(),
  MANDATE_MODE: z.enum(['embedded', 'production']).default('embedded'),
  MANDATE_DATA_DIR: z.string().default('.mandate'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Port of the Prometheus scrape endpoint; 0 disables it. */
  METRICS_PORT: z.coerce.number().int().min(0).max(65_535).default(0),
  METRICS_HOST: z.string().default('127.0.0.1'),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  /** How long a SIGTERM waits for in-flight requests before closing anyway. */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(120_000).default(10_000),
  /** Where documents live: JetStream KV (embedded default) or MongoDB (production). */
  MANDATE_STORE: z.enum(['jetstream-kv', 'mongodb']).default('jetstream-kv'),
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, 'must be a mongodb:// or mongodb+srv:// connection string')
    .optional(),
  MONGODB_DATABASE: z.string().regex(/^[A-Za-z0-9_-]{1,63}$/, 'must be 1-63 letters, digits, _ or -').default('mandate'),
  /** How often a service removes its expired records (consent sessions, leases, cached tokens, lapsed grants) for good; 0: never. */
  MANDATE_SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(86_400).default(600),
}).superRefine((env, ctx) => {
  if (env.MANDATE_STORE === 'mongodb' && !env.MONGODB_URI) {
    ctx.addIssue({ code: 'custom', path: ['MONGODB_URI'], message: 'required when MANDATE_STORE=mongodb' });
  }
});

export type BaseEnv = z.output<typeof baseEnvSchema>;
