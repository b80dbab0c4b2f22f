import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { ServiceDefinition } from '@mandate/bus';
import { baseEnvSchema, parseEnv } from '@mandate/config';
import { KeyRing, loadDecisionLogKeys, loadMasterKeys } from '@mandate/crypto';
import { newAuditSigningKey } from '../apps/cli/src/commands/keys.js';
import { loadDigestKeys } from '../apps/audit/src/domain/signing-keys.js';
import { root } from './processes.js';

/*
 * deploy/compose.yaml, read as `docker compose` would (YAML with merge keys, then variable
 * interpolation from deploy/.env), without a Docker engine: every Mandate service's environment
 * against that service's own config schema, the links between services (the vault's consent
 * links, NATS and MongoDB users, Prometheus targets), start-up order, and every file it mounts.
 */
const deployDir = join(root, 'deploy');
const composeText = readFileSync(join(deployDir, 'compose.yaml'), 'utf8');

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string | number>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

type Reference = { name: string; form: 'plain' | 'default' | 'required'; fallback?: string };
const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** Compose's interpolation of one value: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`. */
function interpolate(text: string, env: Record<string, string>, missing: Set<string>): string {
  return text.replace(REFERENCE, (match, braced: string | undefined, operator: string | undefined, argument: string | undefined, bare: string | undefined) => {
    if (match === '$$') return '$';
    const name = (braced ?? bare)!;
    const value = env[name];
    const unset = value === undefined || (operator?.startsWith(':') === true && value === '');
    if (operator?.endsWith('-')) return unset ? argument! : value!;
    if (operator?.endsWith('?') && unset) missing.add(name);
    return value ?? '';
  });
}

function referencesIn(text: string): Reference[] {
  return [...text.matchAll(REFERENCE)]
    .filter(([match]) => match !== '$$')
    .map(([, braced, operator, argument, bare]) => ({
      name: (braced ?? bare)!,
      form: operator?.endsWith('-') ? 'default' : operator?.endsWith('?') ? 'required' : 'plain',
      ...(operator?.endsWith('-') ? { fallback: argument } : {}),
    }));
}

function mapStrings(value: unknown, f: (text: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((item) => mapStrings(item, f));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, mapStrings(item, f)]));
  return value;
}

/** The Compose file as `docker compose config` would see it with this environment, and which required variables were missing. */
function loadCompose(env: Record<string, string>): { compose: ComposeFile; missing: Set<string> } {
  const missing = new Set<string>();
  const compose = mapStrings(parse(composeText, { merge: true }), (text) => interpolate(text, env, missing)) as ComposeFile;
  return { compose, missing };
}

/** deploy/.env.example as NAME -> value. */
const envExample = Object.fromEntries(
  readFileSync(join(deployDir, '.env.example'), 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z0-9_]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
);

/** deploy/.env filled in as its comments say (the keys as `mandate keys … --env` makes them). */
function filledEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const made = (name: string): string => {
    if (name === 'MANDATE_MASTER_KEYS' || name === 'MANDATE_DECISION_LOG_KEYS') return JSON.stringify(KeyRing.generate().toJSON());
    if (name === 'AUDIT_SIGNING_KEY') return JSON.stringify(newAuditSigningKey().json);
    if (name === 'MONGO_REPLICA_SET_KEY') return randomBytes(48).toString('hex');
    if (/_(CSRF_KEY|SALT)$/.test(name)) return randomBytes(32).toString('base64url');
    return randomBytes(24).toString('hex');
  };
  return { ...Object.fromEntries(Object.entries(envExample).map(([name, value]) => [name, value || made(name)])), ...overrides };
}

const env = filledEnv();
const { compose } = loadCompose(env);
const services = compose.services;

/** The Mandate services: those that run `node apps/<app>/dist/main.js`, with their definitions. */
const mandateServices = Object.entries(services).flatMap(([name, service]) => {
  const app = /^apps\/([a-z-]+)\/dist\/main\.js$/.exec(service.command?.[1] ?? '')?.[1];
  return app ? [{ name, app, service, environment: Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, String(v)])) }] : [];
});

async function definitionOf(app: string): Promise<ServiceDefinition> {
  const module = (await import(`@mandate/${app}/module`)) as Record<string, unknown>;
  const definition = module[`${app}Service`] as ServiceDefinition | undefined;
  if (!definition) throw new Error(`@mandate/${app}/module exports no ${app}Service`);
  return definition;
}

/** The hosts a URL names: `nats://a:4222,nats://b:4222` and `mongodb://user:pw@a:27017,b:27017/?…` alike. */
const hostsOf = (urls: string) =>
  urls.split(',').map((part) => part.replace(/^[a-z+]+:\/\//, '').replace(/^[^@/]*@/, '').split(/[/?]/)[0]!.split(':')[0]!);
const dependsOn = (service: ComposeService) => (Array.isArray(service.depends_on) ? Object.fromEntries(service.depends_on.map((name) => [name, { condition: 'service_started' }])) : (service.depends_on ?? {}));
const bindMounts = (service: ComposeService) =>
  (service.volumes ?? []).map((volume) => volume.split(':')).filter(([source]) => source!.startsWith('.') || source!.startsWith('/')).map(([source, target]) => ({ host: resolve(deployDir, source!), container: target! }));

describe('deploy/compose.yaml', () => {
  it('runs every Mandate service app', () => {
    const apps = readdirSync(join(root, 'apps')).filter((app) => {
      const manifest = join(root, 'apps', app, 'package.json');
      return existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { mandate?: { service?: boolean } }).mandate?.service === true;
    });
    expect(mandateServices.map((s) => s.app).sort()).toEqual(apps.sort());
  });

  it('needs every secret before it starts: a variable without a default is required (${VAR:?…}), and every one is in deploy/.env.example', () => {
    const references = referencesIn(composeText);
    const names = new Set(references.map((r) => r.name));
    expect([...names].filter((name) => !(name in envExample))).toEqual([]);
    const withDefault = new Set(references.filter((r) => r.form === 'default').map((r) => r.name));
    expect(references.filter((r) => r.form === 'plain' && !withDefault.has(r.name) && !references.some((o) => o.name === r.name && o.form === 'required')).map((r) => r.name)).toEqual([]);
    // The defaults are the example's values, so leaving a line as it is means what the file says.
    for (const r of references.filter((r) => r.form === 'default')) expect(r.fallback, r.name).toBe(envExample[r.name]);
    // Without deploy/.env, Compose refuses to start and names every secret.
    const { missing } = loadCompose({});
    expect([...missing].sort()).toEqual([...names].filter((name) => !withDefault.has(name)).sort());
    expect(missing).toContain('AUDIT_SIGNING_KEY');
  });

  it("gives each Mandate service an environment its own config schema accepts, with no variable it does not know", async () => {
    for (const { name, app, environment } of mandateServices) {
      const schema = (await definitionOf(app)).envSchema ?? baseEnvSchema;
      expect(Object.keys(environment).filter((variable) => !(variable in schema.shape)), name).toEqual([]);
      const parsed = parseEnv(schema, environment) as Record<string, unknown>;
      expect(parsed['MANDATE_MODE'], name).toBe('production');
    }
  });

  it('gives each service the production keys it loads, and no others', async () => {
    for (const { name, app, environment } of mandateServices) {
      const schema = (await definitionOf(app)).envSchema ?? baseEnvSchema;
      if ('MANDATE_MASTER_KEYS' in schema.shape) {
        const { ring } = await loadMasterKeys({ mode: 'production', dataDir: '/nonexistent', keysJson: environment['MANDATE_MASTER_KEYS'] });
        expect(ring.keyIds, name).toHaveLength(1);
      }
      if ('AUDIT_SIGNING_KEY' in schema.shape) {
        await loadDigestKeys({ mode: 'production', keyJson: environment['AUDIT_SIGNING_KEY'], keyFile: '/nonexistent' });
        expect(environment['AUDIT_WRITER_ID'], `${name}: a writer id that survives a new container`).toMatch(/^[A-Za-z0-9_.:-]+$/);
      }
    }
    expect(Object.entries(services).filter(([, s]) => 'MANDATE_MASTER_KEYS' in (s.environment ?? {})).map(([n]) => n).sort()).toEqual(['authorizer', 'gateway', 'scheduler', 'vault']);
    // The decision log's ring: the gateway seals with it, the policy service opens with it; nobody else holds it.
    expect(Object.entries(services).filter(([, s]) => 'MANDATE_DECISION_LOG_KEYS' in (s.environment ?? {})).map(([n]) => n).sort()).toEqual(['gateway', 'policy']);
    for (const name of ['gateway', 'policy']) {
      const { ring } = await loadDecisionLogKeys({ mode: 'production', dataDir: '/nonexistent', keysJson: String(services[name]!.environment!['MANDATE_DECISION_LOG_KEYS']) });
      expect(ring.keyIds, name).toHaveLength(1);
    }
  });

  it.each([['the example', undefined], ['another origin', 'https://consent.acme.example']])("points the vault's consent links at the consent pages (CONSENT_PUBLIC_URL: %s)", (_what, publicUrl) => {
    const { compose: configured } = loadCompose(publicUrl ? filledEnv({ CONSENT_PUBLIC_URL: publicUrl }) : env);
    const consentUrl = String(configured.services['consent']!.environment!['CONSENT_PUBLIC_URL']);
    expect(consentUrl).toBe(publicUrl ?? envExample['CONSENT_PUBLIC_URL']);
    expect(configured.services['vault']!.environment!['CONSENT_BASE_URL']).toBe(consentUrl);
  });

  it('connects each service to NATS as its own user, and to MongoDB as its own user exactly when it keeps documents', async () => {
    const natsNodes = Object.keys(services).filter((name) => /^nats-\d$/.test(name));
    const mongoMembers = Object.keys(services).filter((name) => /^mongo-\d$/.test(name));
    expect(natsNodes).toHaveLength(3);
    expect(mongoMembers).toHaveLength(3);
    for (const { name, app, environment } of mandateServices) {
      expect(environment['NATS_USER'], name).toBe(app);
      expect(environment['NATS_PASSWORD'], name).toBe(env[`${app.toUpperCase()}_NATS_PASSWORD`]);
      expect(hostsOf(environment['NATS_URL']!).sort(), name).toEqual(natsNodes);
      expect(hostsOf(environment['OTEL_EXPORTER_OTLP_ENDPOINT']!).every((host) => host in services), name).toBe(true);
      const { collections } = await definitionOf(app);
      if (!collections) {
        expect(environment['MONGODB_URI'], `${name} keeps no documents: no MongoDB user`).toBeUndefined();
        continue;
      }
      expect(environment['MANDATE_STORE'], name).toBe('mongodb');
      const uri = new URL(environment['MONGODB_URI']!.replace(/@[^/]+\//, '@placeholder/'));
      expect([uri.username, uri.password], name).toEqual([app, env[`${app.toUpperCase()}_MONGODB_PASSWORD`]]);
      expect(uri.searchParams.get('authSource'), name).toBe('mandate');
      expect(uri.searchParams.get('replicaSet'), name).toBe('rs0');
      expect(hostsOf(environment['MONGODB_URI']!).sort(), name).toEqual(mongoMembers);
    }
  });

  it("gives each service's MongoDB user exactly the collections the service opens (roles.js and users.js, as mongo-init applies them)", async () => {
    const roles = new Map<string, { collection: string; actions: string[] }[]>();
    const users = new Map<string, string[]>();
    const mandateDb = {
      getRole: (role: string) => (roles.has(role) ? { role } : null),
      createRole: ({ role, privileges }: { role: string; privileges: { resource: { db: string; collection: string }; actions: string[] }[] }) => {
        expect(privileges.every((p) => p.resource.db === 'mandate'), role).toBe(true);
        roles.set(role, privileges.map((p) => ({ collection: p.resource.collection, actions: p.actions })));
      },
      updateRole: () => {
        throw new Error('a fresh database has no roles to update');
      },
      getUser: (user: string) => (users.has(user) ? { user } : null),
      createUser: ({ user, pwd, roles: granted }: { user: string; pwd: string; roles: string[] }) => {
        expect(pwd, user).toBe(env[`${user.toUpperCase()}_MONGODB_PASSWORD`]);
        users.set(user, granted);
      },
      updateUser: () => {
        throw new Error('a fresh database has no users to update');
      },
    };
    const mongoshGlobals = { db: { getSiblingDB: (name: string) => (expect(name).toBe('mandate'), mandateDb) }, process: { env: services['mongo-init']!.environment } };
    for (const script of ['roles.js', 'users.js']) runInNewContext(readFileSync(join(deployDir, 'mongodb', script), 'utf8'), mongoshGlobals);

    for (const { name, app } of mandateServices) {
      const { collections } = await definitionOf(app);
      if (!collections) continue;
      const privileges = (users.get(app) ?? []).flatMap((role) => roles.get(role) ?? []);
      expect(privileges.map((p) => p.collection).sort(), name).toEqual([...collections].sort());
      if (app === 'audit') {
        const trail = privileges.find((p) => p.collection === 'audit-trail')!;
        expect(trail.actions.filter((action) => ['update', 'remove'].includes(action)), 'the audit trail is append-only').toEqual([]);
      }
    }
  });

  it('starts the services once NATS is healthy and MongoDB has a primary and their users; mongo-init once every member is up', () => {
    const mongoMembers = Object.keys(services).filter((name) => /^mongo-\d$/.test(name));
    for (const member of mongoMembers) expect(services[member]!.healthcheck, member).toBeTruthy();
    const init = services['mongo-init']!;
    expect(dependsOn(init)).toEqual(Object.fromEntries(mongoMembers.map((member) => [member, { condition: 'service_healthy' }])));
    // The replica set first (it waits for the primary), then the roles, then the users.
    const script = init.command!.join('\n');
    const order = ['replica-set.js', 'roles.js', 'users.js'].map((file) => script.indexOf(`/mongodb/${file}`));
    expect(order.every((at, i) => at > 0 && (i === 0 || at > order[i - 1]!))).toBe(true);
    const replicaSet = readFileSync(join(deployDir, 'mongodb', 'replica-set.js'), 'utf8');
    expect(replicaSet).toContain('isWritablePrimary');
    for (const member of mongoMembers) expect(replicaSet).toContain(`'${member}:27017'`);

    for (const { name, service } of mandateServices) {
      const deps = dependsOn(service);
      for (const node of ['nats-1', 'nats-2', 'nats-3']) expect(deps[node], `${name} on ${node}`).toEqual({ condition: 'service_healthy' });
      if (service.environment?.['MONGODB_URI']) expect(deps['mongo-init'], name).toEqual({ condition: 'service_completed_successfully' });
    }
    for (const node of ['nats-1', 'nats-2', 'nats-3']) expect(services[node]!.healthcheck, node).toBeTruthy();
  });

  it('gives every NATS route the route user and password, to the two other nodes', () => {
    const nodes = ['nats-1', 'nats-2', 'nats-3'];
    for (const node of nodes) {
      const command = services[node]!.command!;
      const routes = command[command.indexOf('--routes') + 1]!.split(',').map((route) => new URL(route));
      expect(routes.map((route) => [route.protocol, route.username, route.password]), node).toEqual(routes.map(() => ['nats-route:', 'route', env['NATS_ROUTE_PASSWORD']]));
      expect(routes.map((route) => route.host).sort(), node).toEqual(nodes.filter((other) => other !== node).map((other) => `${other}:6222`));
    }
  });

  it('publishes each HTTP listener on the port it listens on, bound to every interface in its container', async () => {
    for (const { name, app, environment, service } of mandateServices) {
      const parsed = parseEnv((await definitionOf(app)).envSchema ?? baseEnvSchema, environment) as Record<string, unknown>;
      expect(parsed['METRICS_HOST'], name).toBe('0.0.0.0');
      for (const published of service.ports ?? []) {
        const containerPort = Number(published.split(':').at(-1));
        const listener = Object.keys(parsed).find((key) => key.endsWith('_HTTP_PORT') && parsed[key] === containerPort);
        expect(listener, `${name} publishes ${published}`).toBeTruthy();
        expect(parsed[listener!.replace(/_PORT$/, '_HOST')], name).toBe('0.0.0.0');
      }
    }
  });

  it('has Prometheus scrape every Mandate service on its METRICS_PORT, and Grafana load the dashboard from Prometheus', () => {
    const prometheus = parse(readFileSync(join(deployDir, 'prometheus', 'prometheus.yml'), 'utf8')) as {
      scrape_configs: { dns_sd_configs: { names: string[]; port: number }[] }[];
    };
    const discovery = prometheus.scrape_configs.flatMap((job) => job.dns_sd_configs);
    for (const { name, environment } of mandateServices) {
      expect(discovery.some((d) => d.names.includes(name) && d.port === Number(environment['METRICS_PORT'])), name).toBe(true);
    }
    expect(discovery.flatMap((d) => d.names).every((name) => name in services)).toBe(true);

    const grafana = services['grafana']!;
    const datasources = parse(readFileSync(join(deployDir, 'grafana/provisioning/datasources/prometheus.yaml'), 'utf8')) as { datasources: { type: string; url: string }[] };
    expect(datasources.datasources.map((d) => [d.type, d.url])).toEqual([['prometheus', 'http://prometheus:9090']]);
    const providers = parse(readFileSync(join(deployDir, 'grafana/provisioning/dashboards/mandate.yaml'), 'utf8')) as { providers: { options: { path: string } }[] };
    const dashboardMount = bindMounts(grafana).find((mount) => mount.host === join(deployDir, 'grafana', 'mandate-dashboard.json'))!;
    expect(dashboardMount.container.startsWith(`${providers.providers[0]!.options.path}/`)).toBe(true);
    expect(bindMounts(grafana).some((mount) => mount.container === '/etc/grafana/provisioning')).toBe(true);
  });

  it('mounts only files that exist, and declares every named volume', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.build) {
        expect(existsSync(join(resolve(deployDir, service.build.context), service.build.dockerfile)), `${name}: build`).toBe(true);
      }
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.') || source.startsWith('/')) expect(existsSync(resolve(deployDir, source)), `${name}: ${volume}`).toBe(true);
        else expect(compose.volumes, `${name}: ${volume}`).toHaveProperty(source);
      }
      // Files named in commands and variables, inside a bind-mounted directory: they exist on this side.
      const mounts = bindMounts(service);
      const named = [...(service.command ?? []), ...Object.values(service.environment ?? {}).map(String)].flatMap((text) => text.match(/\/[A-Za-z0-9._/-]+/g) ?? []);
      for (const path of named) {
        const mount = mounts.find((m) => path === m.container || path.startsWith(`${m.container}/`));
        if (mount) expect(existsSync(mount.host + path.slice(mount.container.length)), `${name}: ${path}`).toBe(true);
      }
    }
  });
});
