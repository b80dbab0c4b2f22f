import type { PortUse } from './port-check.js';

/** The ports of `mandate up`, as its options give them; 0 turns a listener off (not NATS). */
export interface PortOptions {
  natsPort: number;
  monitorPort: number;
  /** First Prometheus port; service i gets metricsPort + i. */
  metricsPort: number;
  authorizerPort: number;
  consentPort: number;
  gatewayPort: number;
}

/** A service's HTTP listener: the flag that moves it, the variables the service reads, the public URLs that follow it. */
interface HttpListener {
  service: string;
  flag: string;
  option: keyof PortOptions;
  portVariable: string;
  hostVariable: string;
  /** Where others reach it (the first is the service's own); each one not set follows the port. */
  publicUrlVariables: readonly string[];
  defaultPort: number;
}

export const HTTP_LISTENERS: readonly HttpListener[] = [
  { service: 'authorizer', flag: '--authorizer-port', option: 'authorizerPort', portVariable: 'AUTHORIZER_HTTP_PORT', hostVariable: 'AUTHORIZER_HTTP_HOST', publicUrlVariables: [], defaultPort: 4480 },
  // CONSENT_BASE_URL is the vault's name for the consent service's public URL.
  { service: 'consent', flag: '--consent-port', option: 'consentPort', portVariable: 'CONSENT_HTTP_PORT', hostVariable: 'CONSENT_HTTP_HOST', publicUrlVariables: ['CONSENT_PUBLIC_URL', 'CONSENT_BASE_URL'], defaultPort: 4490 },
  { service: 'gateway', flag: '--gateway-port', option: 'gatewayPort', portVariable: 'GATEWAY_HTTP_PORT', hostVariable: 'GATEWAY_HTTP_HOST', publicUrlVariables: ['GATEWAY_PUBLIC_URL'], defaultPort: 4494 },
];

const LOCAL = '127.0.0.1';
const hostOf = (env: NodeJS.ProcessEnv, variable: string) => env[variable] || LOCAL;

/** Every port `mandate up` will open for these services, each with the flag that moves it. */
export function portPlan(options: PortOptions, services: readonly string[], env: NodeJS.ProcessEnv): PortUse[] {
  const metricsHost = hostOf(env, 'METRICS_HOST');
  return [
    { port: options.natsPort, host: LOCAL, flag: '--nats-port' },
    { port: options.monitorPort, host: LOCAL, flag: '--monitor-port' },
    ...(options.metricsPort === 0
      ? []
      : services.map((service, index) => ({
          port: options.metricsPort + index,
          host: metricsHost,
          flag: '--metrics-port',
          ...(index === 0 ? {} : { note: `${options.metricsPort} + ${index}: the ${service} service's metrics` }),
        }))),
    ...HTTP_LISTENERS.filter((listener) => services.includes(listener.service)).map((listener) => ({
      port: options[listener.option],
      host: hostOf(env, listener.hostVariable),
      flag: listener.flag,
    })),
  ];
}

/**
 * The services' HTTP ports as the options give them, and the public URLs that follow those
 * ports where the environment does not set them (a URL set by the user wins).
 */
export function httpEnv(options: PortOptions, env: NodeJS.ProcessEnv): Record<string, string> {
  const result: Record<string, string> = {};
  for (const listener of HTTP_LISTENERS) {
    const port = options[listener.option];
    result[listener.portVariable] = String(port);
    if (port === 0) continue;
    const given = listener.publicUrlVariables.map((variable) => env[variable]).find(Boolean);
    const url = given ?? localUrl(hostOf(env, listener.hostVariable), port);
    for (const variable of listener.publicUrlVariables) result[variable] = env[variable] || url;
  }
  return result;
}

/** How this machine reaches a listener: a wildcard host is reached on the loopback address. */
export function localUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '::' ? LOCAL : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}
