import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/*
 * The dashboard names metrics as Prometheus sees them; the services declare OpenTelemetry
 * instruments. A renamed instrument would leave a panel silently empty, so every metric a panel
 * queries must be one some service declares, under the OpenTelemetry Prometheus exporter's
 * naming: dots become underscores, counters gain `_total`, histograms are read through
 * `_bucket`, `_count` and `_sum` (no unit suffix: checked against the exporter by the
 * service-transport test's scrape).
 */
const root = join(import.meta.dirname, '..');
const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/mandate-dashboard.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'dist' || name === 'node_modules' ? [] : sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : [];
  });
}

const sources = ['apps', 'libs']
  .flatMap((top) => readdirSync(join(root, top)).map((pkg) => join(root, top, pkg, 'src')))
  .filter((dir) => statSync(dir, { throwIfNoEntry: false })?.isDirectory())
  .flatMap(sourceFiles)
  .map((file) => readFileSync(file, 'utf8'));

/** Prometheus series names of every instrument the services and libraries declare. */
function declaredSeries(): Set<string> {
  const series = new Set<string>();
  for (const source of sources) {
    for (const [, kind, name] of source.matchAll(/create(Counter|Histogram|ObservableGauge|UpDownCounter|Gauge)\(\s*'([^']+)'/g)) {
      const base = name!.replace(/\./g, '_');
      if (kind === 'Counter') series.add(`${base}_total`);
      else if (kind === 'Histogram') for (const suffix of ['_bucket', '_count', '_sum']) series.add(base + suffix);
      else series.add(base);
    }
  }
  return series;
}

function targets(): { panel: string; expr: string }[] {
  return dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));
}

describe('deploy/grafana/mandate-dashboard.json', () => {
  it('queries only metrics that some service declares', () => {
    const declared = declaredSeries();
    expect(declared.size).toBeGreaterThan(10);
    const queried = targets().flatMap(({ panel, expr }) =>
      [...expr.replace(/\bby \([^)]*\)/g, '').matchAll(/\b(?:mandate|rpc)_[a-z0-9_]+/g)].map(([name]) => ({ panel, name })),
    );
    expect(queried.length).toBeGreaterThan(10);
    expect(queried.filter(({ name }) => !declared.has(name))).toEqual([]);
  });

  it('groups only by attributes that the services record (or the histogram bucket bound)', () => {
    // Attribute keys of every measurement: `.add(n, { outcome: …, 'rpc.method': … })` and alike.
    const recorded = new Set(['le']);
    for (const source of sources) {
      for (const [, attributes] of source.matchAll(/\.(?:add|record|observe)\([^{;]*\{([^}]*)\}/g)) {
        for (const member of attributes!.split(',')) {
          const key = member.split(':')[0]!.trim().replace(/^'|'$/g, '');
          if (key && !key.startsWith('...')) recorded.add(key.replace(/\./g, '_'));
        }
      }
    }
    const labels = targets().flatMap(({ panel, expr }) =>
      [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap(([, list]) => list!.split(',').map((label) => ({ panel, label: label.trim() }))),
    );
    expect(labels.length).toBeGreaterThan(10);
    expect(labels.filter(({ label }) => !recorded.has(label))).toEqual([]);
  });

  it('has a panel for each family of metrics issues 6 and 16 ask for', () => {
    const exprs = targets()
      .map(({ expr }) => expr)
      .join('\n');
    for (const family of [
      'rpc_server_call_duration',
      'mandate_authorizer_inbound_decisions_total',
      'mandate_authorizer_wat_mints_total',
      'mandate_vault_token_fetches_total',
      'mandate_vault_api_key_fetches_total',
      'mandate_vault_refreshes_total',
      'mandate_consent_prompts_total',
      'mandate_consent_grants_total',
      'mandate_audit_consumer_lag',
      // Issue 16: the gateway's calls by outcome, their latency, targets left out, requests refused.
      'mandate_gateway_calls_total',
      'mandate_gateway_call_duration_bucket',
      'mandate_gateway_targets_unreachable_total',
      'mandate_gateway_requests_refused_total',
    ]) {
      expect(exprs, family).toContain(family);
    }
  });
});
