import { startDemoAuthorizationServer, startResourceServers, type DemoAuthorizationServer, type ResourceServers } from '@mandate/demo';
import { checkPortsFree } from '../embedded/port-check.js';
import { serverSigningKeys } from './demo-files.js';
import { audienceForScopes, authServerClients, DEMO_PORT_FLAGS, idpClients, type DemoPlan, type DemoPortName } from './demo-plan.js';

/** People's tokens from the demo IdP last an hour, long enough to copy from one command into the next. */
const IDP_TOKEN_SECONDS = 3_600;

export interface DemoServers {
  idp: DemoAuthorizationServer;
  authServer: DemoAuthorizationServer;
  apis: ResourceServers;
  stop(): Promise<void>;
}

/**
 * The demo IdP (where sarah and bob sign in), the demo authorization server of the sample APIs,
 * and the sample CRM, finance and documents APIs, each on its port. A taken port is refused
 * before anything starts, with the flag that moves it.
 */
export async function startDemoServers(plan: DemoPlan): Promise<DemoServers> {
  await checkPortsFree((Object.keys(DEMO_PORT_FLAGS) as DemoPortName[]).map((name) => ({ port: plan.ports[name], host: '127.0.0.1', flag: DEMO_PORT_FLAGS[name] })));
  const started: { stop(): Promise<void> }[] = [];
  const stop = () => Promise.all(started.map((server) => server.stop())).then(() => undefined);
  try {
    const idp = await startDemoAuthorizationServer({ title: 'Demo IdP', port: plan.ports.idp, clients: idpClients(plan), signingKeys: await serverSigningKeys(plan, 'idp'), accessTokenTtlSeconds: IDP_TOKEN_SECONDS });
    started.push(idp);
    const authServer = await startDemoAuthorizationServer({
      title: 'the sample APIs (demo)',
      port: plan.ports.authServer,
      clients: authServerClients(plan),
      signingKeys: await serverSigningKeys(plan, 'auth-server'),
      defaultResource: audienceForScopes,
    });
    started.push(authServer);
    const apis = await startResourceServers({ issuer: authServer.issuer, ports: { crm: plan.ports.crm, finance: plan.ports.finance, documents: plan.ports.documents } });
    started.push(apis);
    return { idp, authServer, apis, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
