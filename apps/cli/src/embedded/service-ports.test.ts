import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { checkPortsFree } from './port-check.js';
import { httpEnv, portPlan, type PortOptions } from './service-ports.js';

const defaults: PortOptions = { natsPort: 4222, monitorPort: 8222, metricsPort: 9464, authorizerPort: 4480, consentPort: 4490, gatewayPort: 4494 };

describe('the ports of mandate up', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  async function takenPort(): Promise<number> {
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  }

  it('plans every port with the flag that moves it: NATS, monitoring, one metrics port per service, the HTTP listeners of the services that run', () => {
    const plan = portPlan(defaults, ['audit', 'authorizer', 'consent', 'vault'], {});
    expect(plan.map((use) => `${use.port} ${use.flag}`)).toEqual([
      '4222 --nats-port',
      '8222 --monitor-port',
      '9464 --metrics-port',
      '9465 --metrics-port',
      '9466 --metrics-port',
      '9467 --metrics-port',
      '4480 --authorizer-port',
      '4490 --consent-port',
    ]);
    expect(plan[5]!.note).toBe("9464 + 3: the vault service's metrics");
    expect(portPlan({ ...defaults, metricsPort: 0 }, ['audit'], { METRICS_HOST: '0.0.0.0' }).map((use) => use.flag)).toEqual(['--nats-port', '--monitor-port']);
  });

  it('moves the public URLs with the ports, unless they are set', () => {
    expect(httpEnv({ ...defaults, consentPort: 5490, gatewayPort: 5494 }, {})).toEqual({
      AUTHORIZER_HTTP_PORT: '4480',
      CONSENT_HTTP_PORT: '5490',
      CONSENT_PUBLIC_URL: 'http://127.0.0.1:5490',
      CONSENT_BASE_URL: 'http://127.0.0.1:5490',
      GATEWAY_HTTP_PORT: '5494',
      GATEWAY_PUBLIC_URL: 'http://127.0.0.1:5494',
    });
    const behindProxy = httpEnv({ ...defaults, consentPort: 5490 }, { CONSENT_PUBLIC_URL: 'https://consent.acme.example', GATEWAY_HTTP_HOST: '0.0.0.0' });
    expect(behindProxy).toMatchObject({ CONSENT_PUBLIC_URL: 'https://consent.acme.example', CONSENT_BASE_URL: 'https://consent.acme.example', GATEWAY_PUBLIC_URL: 'http://127.0.0.1:4494' });
    expect(httpEnv({ ...defaults, consentPort: 0 }, {})).not.toHaveProperty('CONSENT_PUBLIC_URL');
  });

  it('refuses a taken port in one line that names the flag', async () => {
    const port = await takenPort();
    await expect(checkPortsFree([{ port, host: '127.0.0.1', flag: '--metrics-port' }])).rejects.toThrow(`port ${port} (--metrics-port) is in use: choose another with --metrics-port`);
    await expect(checkPortsFree([{ port, host: '127.0.0.1', flag: '--metrics-port', note: '9464 + 2: the vault service\'s metrics' }])).rejects.toThrow(
      `port ${port} (--metrics-port 9464 + 2: the vault service's metrics) is in use: choose another with --metrics-port`,
    );
  });

  it('refuses one port given to two listeners, and skips the ports that are off', async () => {
    await expect(checkPortsFree([{ port: 4490, host: '127.0.0.1', flag: '--nats-port' }, { port: 4490, host: '127.0.0.1', flag: '--consent-port' }])).rejects.toThrow(
      'port 4490 is given to both --nats-port and --consent-port: choose another with --consent-port',
    );
    await expect(checkPortsFree([{ port: 0, host: '127.0.0.1', flag: '--consent-port' }, { port: 0, host: '127.0.0.1', flag: '--gateway-port' }])).resolves.toBeUndefined();
  });
});
