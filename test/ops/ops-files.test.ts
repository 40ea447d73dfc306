// The operations files (Dockerfile, ops/) against the code: every metric and
// label the alert rules and the dashboard name exists, the Kubernetes example
// agrees with the worker's configuration, and the image is built the way the
// design asks. promtool, when installed, also runs the alert rules' unit tests.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

import { BLOCKED_CAPABILITY_LABELS } from '../../src/capabilities/registry.ts';
import { configSchema, ENV_NAMES } from '../../src/config/config.ts';
import { loadPolicyDir } from '../../src/policy/load.ts';
import {
  ENGINE_OPERATIONS,
  ENGINE_REQUESTS_TOTAL,
  EXECUTOR_RESTARTS_TOTAL,
  METRIC_NAMES,
  Metrics,
  OUTCOMES,
  POLICY_RELOADS_TOTAL,
  RESTART_REASONS,
} from '../../src/telemetry/metrics.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

type Json = any; // parsed YAML and JSON documents, checked field by field below

// --- what the worker exports ------------------------------------------------

type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';
interface Series {
  /** The metric this series belongs to (a histogram's name for its _bucket). */
  metric: string;
  type: MetricType;
  /** counter, or a histogram's _bucket/_sum/_count: only meaningful over a range. */
  cumulative: boolean;
  labels: Set<string>;
}

/** Every series name on /metrics, from the worker's own registry, plus Prometheus' `up`. */
function exportedSeries(): Map<string, Series> {
  const metrics = new Metrics();
  const series = new Map<string, Series>();
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const { name, type, labelNames } = metric as unknown as {
      name: string;
      type: MetricType;
      labelNames: string[];
    };
    const labels = new Set(labelNames);
    if (type === 'histogram' || type === 'summary') {
      const extra = type === 'histogram' ? 'le' : 'quantile';
      series.set(type === 'histogram' ? `${name}_bucket` : name, {
        metric: name,
        type,
        cumulative: type === 'histogram',
        labels: new Set([...labels, extra]),
      });
      series.set(`${name}_sum`, { metric: name, type, cumulative: true, labels });
      series.set(`${name}_count`, { metric: name, type, cumulative: true, labels });
    } else {
      series.set(name, { metric: name, type, cumulative: type === 'counter', labels });
    }
  }
  // Written by Prometheus for every target: 1 when the scrape worked.
  series.set('up', { metric: 'up', type: 'gauge', cumulative: false, labels: new Set() });
  return series;
}

const SERIES = exportedSeries();

/** Labels Prometheus attaches to every series of a target: job, instance, and the scrape config's relabelling. */
const TARGET_LABELS = new Set(['job', 'instance']);
for (const config of parse(read('ops/prometheus/scrape-config.yaml')).scrape_configs as Json[]) {
  for (const relabel of config.relabel_configs ?? []) {
    if (relabel.target_label && !String(relabel.target_label).startsWith('__'))
      TARGET_LABELS.add(relabel.target_label);
  }
}

/** Label values that come from a closed set in the code. */
const BOUNDED: Record<string, Record<string, readonly string[]>> = {
  outcome: { '*': OUTCOMES },
  capability: { '*': BLOCKED_CAPABILITY_LABELS },
  operation: { '*': ENGINE_OPERATIONS },
  reason: { [EXECUTOR_RESTARTS_TOTAL]: RESTART_REASONS },
  // As pre-zeroed in metrics.ts.
  result: {
    [ENGINE_REQUESTS_TOTAL]: ['success', 'error'],
    [POLICY_RELOADS_TOTAL]: ['applied', 'rejected'],
  },
};

// --- a small PromQL reader --------------------------------------------------

interface Matcher {
  label: string;
  op: string;
  value: string;
}
interface Selector {
  name: string;
  matchers: Matcher[];
  range: boolean;
  /** The function whose argument the selector is, if any. */
  within: string | undefined;
}
interface Query {
  selectors: Selector[];
  /** Labels named in by (...), without (...), on (...), ignoring (...), group_left/right (...). */
  grouping: string[];
}

type Token = { kind: 'ident' | 'string' | 'number' | 'punct' | 'op'; text: string };

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const rules: [Token['kind'] | 'skip', RegExp][] = [
    ['skip', /^(?:\s+|#[^\n]*)/],
    ['string', /^(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/],
    // A number, a duration, or a Grafana variable standing for one ($__rate_interval).
    ['number', /^(?:\d[\w.]*|\.\d+|\$\{?\w+\}?)/],
    ['ident', /^[A-Za-z_:][\w:]*/],
    ['punct', /^[(){}[\],]/],
    ['op', /^(?:==|!=|=~|!~|<=|>=|[-+*/%^<>=@])/],
  ];
  let rest = expr;
  while (rest.length > 0) {
    const rule = rules.find(([, re]) => re.test(rest));
    if (!rule) throw new Error(`cannot read PromQL at: ${rest.slice(0, 30)}`);
    const text = rule[1].exec(rest)![0];
    if (rule[0] !== 'skip') tokens.push({ kind: rule[0], text });
    rest = rest.slice(text.length);
  }
  return tokens;
}

const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2']);
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
]);

function unquote(text: string): string {
  return text.startsWith('`')
    ? text.slice(1, -1)
    : (JSON.parse(`"${text.slice(1, -1).replace(/"/g, '\\"')}"`) as string);
}

function readQuery(expr: string): Query {
  const tokens = tokenize(expr);
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  const calls: (string | undefined)[] = [];
  let pendingCall: string | undefined;
  const at = (i: number) => tokens[i];

  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.kind === 'punct' && token.text === '(') {
      calls.push(pendingCall);
      pendingCall = undefined;
      continue;
    }
    if (token.kind === 'punct' && token.text === ')') {
      calls.pop();
      continue;
    }
    if (token.kind === 'punct' && token.text === '[') {
      while (i < tokens.length && at(i)!.text !== ']') i++; // a subquery's range
      continue;
    }
    if (token.kind === 'punct' && token.text === '{')
      throw new Error(`a selector without a metric name in: ${expr}`);
    if (token.kind !== 'ident') continue;

    if (GROUPING.has(token.text)) {
      if (at(i + 1)?.text !== '(') continue; // group_left without labels
      for (i += 2; i < tokens.length && at(i)!.text !== ')'; i++) {
        if (at(i)!.kind === 'ident') grouping.push(at(i)!.text);
      }
      continue;
    }
    if (KEYWORDS.has(token.text)) continue;
    if (
      at(i + 1)?.text === '(' ||
      (AGGREGATIONS.has(token.text) && GROUPING.has(at(i + 1)?.text ?? ''))
    ) {
      pendingCall = token.text;
      continue;
    }

    const selector: Selector = {
      name: token.text,
      matchers: [],
      range: false,
      within: calls.at(-1),
    };
    if (at(i + 1)?.text === '{') {
      for (i += 2; i < tokens.length && at(i)!.text !== '}'; i++) {
        if (at(i)!.text === ',') continue;
        const [label, op, value] = [at(i), at(i + 1), at(i + 2)];
        if (label?.kind !== 'ident' || op?.kind !== 'op' || value?.kind !== 'string') {
          throw new Error(`cannot read the label matchers of ${token.text} in: ${expr}`);
        }
        selector.matchers.push({ label: label.text, op: op.text, value: unquote(value.text) });
        i += 2;
      }
    }
    if (at(i + 1)?.text === '[') {
      selector.range = true;
      for (i += 1; i < tokens.length && at(i)!.text !== ']'; i++);
    }
    selectors.push(selector);
  }
  return { selectors, grouping };
}

const RANGE_FUNCTIONS = new Set(['rate', 'irate', 'increase']);

/**
 * What is wrong with one PromQL expression, as messages; empty when nothing is.
 * `selectorOnly`: the expression is a bare series selector (Grafana's label_values).
 */
function problemsOf(expr: string, { selectorOnly = false } = {}): string[] {
  const problems: string[] = [];
  let query: Query;
  try {
    query = readQuery(expr);
  } catch (err) {
    return [(err as Error).message];
  }
  if (query.selectors.length === 0) problems.push('names no metric');

  for (const selector of query.selectors) {
    const series = SERIES.get(selector.name);
    if (!series) {
      problems.push(
        `${selector.name} is not a metric the worker exports (METRIC_NAMES or prom-client's defaults)`,
      );
      continue;
    }
    for (const { label, op, value } of selector.matchers) {
      if (label !== '__name__' && !series.labels.has(label) && !TARGET_LABELS.has(label)) {
        problems.push(
          `${selector.name} has no label ${label} (it has: ${[...series.labels, ...TARGET_LABELS].join(', ')})`,
        );
      }
      const allowed = BOUNDED[label]?.[series.metric] ?? BOUNDED[label]?.['*'];
      if (!allowed || value.includes('$')) continue;
      const values = op === '=~' || op === '!~' ? value.split('|') : [value];
      for (const v of values) {
        if (!/^[\w-]+$/.test(v))
          problems.push(
            `${selector.name}{${label}${op}"${value}"}: write a plain a|b|c alternation`,
          );
        else if (!allowed.includes(v))
          problems.push(
            `${selector.name}{${label}${op}"${value}"}: ${v} is not a value of ${label}`,
          );
      }
    }
    if (series.cumulative && !selector.range && selector.within !== 'absent' && !selectorOnly) {
      problems.push(`${selector.name} is cumulative: use it over a range (rate, increase)`);
    }
    if (!series.cumulative && selector.within && RANGE_FUNCTIONS.has(selector.within)) {
      problems.push(`${selector.name} is a ${series.type}: ${selector.within}() is for counters`);
    }
  }
  for (const label of query.grouping) {
    if (TARGET_LABELS.has(label)) continue;
    for (const selector of query.selectors) {
      const series = SERIES.get(selector.name);
      if (series && !series.labels.has(label))
        problems.push(`groups by ${label}, which ${selector.name} does not have`);
    }
  }
  return problems;
}

// --- the files --------------------------------------------------------------

const alerts = parse(read('ops/prometheus/alerts.yaml')) as Json;
const rules: Json[] = (alerts.groups as Json[]).flatMap((group) => group.rules as Json[]);
const dashboard = JSON.parse(read('ops/grafana/camunda-sandbox.json')) as Json;

function panelsOf(panels: Json[]): Json[] {
  return panels.flatMap((panel) => [panel, ...panelsOf(panel.panels ?? [])]);
}
const panels = panelsOf(dashboard.panels as Json[]);
const dashboardTargets: { panel: string; expr: string }[] = panels.flatMap((panel) =>
  ((panel.targets ?? []) as Json[]).map((target) => ({
    panel: panel.title as string,
    expr: target.expr as string,
  })),
);

const k8sDocs: Json[] = [];
const kustomization = parse(read('ops/kubernetes/kustomization.yaml')) as Json;
for (const file of [...(kustomization.resources as string[]), 'secret.example.yaml']) {
  for (const doc of parseAllDocuments(read(`ops/kubernetes/${file}`))) {
    expect(doc.errors, file).toEqual([]);
    k8sDocs.push({ ...(doc.toJS() as Json), file });
  }
}
const k8s = (kind: string, name?: string): Json =>
  k8sDocs.find((doc) => doc.kind === kind && (name === undefined || doc.metadata.name === name));

// --- Dockerfile -------------------------------------------------------------

interface Stage {
  from: string;
  name: string | undefined;
  instructions: { op: string; args: string }[];
  env: Map<string, string>;
}

function readDockerfile(text: string): { stages: Stage[] } {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  const stages: Stage[] = [];
  for (const line of lines) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(trimmed) ?? [];
    if (!op) throw new Error(`cannot read Dockerfile line: ${line}`);
    if (op.toUpperCase() === 'FROM') {
      const [from, , name] = args!.split(/\s+/);
      stages.push({ from: from!, name, instructions: [], env: new Map() });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) continue; // ARG before the first FROM
    stage.instructions.push({ op: op.toUpperCase(), args: args!.trim() });
    if (op.toUpperCase() === 'ENV') {
      for (const [, key, value] of args!.matchAll(/(\w+)=("[^"]*"|\S+)/g))
        stage.env.set(key!, value!.replace(/^"|"$/g, ''));
    }
  }
  // A stage inherits the ENV of the stage it is built FROM.
  for (const stage of stages) {
    const parent = stages.find((s) => s.name === stage.from);
    if (parent) stage.env = new Map([...parent.env, ...stage.env]);
  }
  return { stages };
}

const dockerfile = readDockerfile(read('Dockerfile'));

describe('metric names and labels', () => {
  it('METRIC_NAMES is what the registry exports under the camunda_sandbox_ prefix', () => {
    const ours = [...new Set([...SERIES.values()].map((s) => s.metric))].filter((m) =>
      m.startsWith('camunda_sandbox_'),
    );
    expect(ours.sort()).toEqual([...METRIC_NAMES].sort());
  });

  it('the reader finds what is wrong', () => {
    expect(
      problemsOf('sum by (outcome) (rate(camunda_sandbox_tasks_total{outcome="completed"}[5m]))'),
    ).toEqual([]);
    expect(problemsOf('rate(camunda_sandbox_tasks_totl[5m])')[0]).toMatch(/not a metric/);
    expect(problemsOf('rate(camunda_sandbox_tasks_total{outcome="done"}[5m])')[0]).toMatch(
      /done is not a value/,
    );
    expect(problemsOf('rate(camunda_sandbox_tasks_total{outcome=~"failed|oops"}[5m])')[0]).toMatch(
      /oops/,
    );
    expect(problemsOf('rate(camunda_sandbox_tasks_total{capabilty="x"}[5m])')[0]).toMatch(
      /no label capabilty/,
    );
    expect(
      problemsOf('sum by (topic) (rate(camunda_sandbox_engine_requests_total[5m]))')[0],
    ).toMatch(/groups by topic/);
    expect(problemsOf('camunda_sandbox_tasks_total > 0')[0]).toMatch(/cumulative/);
    expect(problemsOf('rate(camunda_sandbox_tasks_in_flight[5m])')[0]).toMatch(/is a gauge/);
    expect(
      problemsOf(
        'histogram_quantile(0.9, sum by (le) (rate(camunda_sandbox_script_duration_seconds_bucket[5m])))',
      ),
    ).toEqual([]);
    expect(
      problemsOf('rate(process_cpu_seconds_total[1m]) + nodejs_heap_size_used_bytes{instance="x"}'),
    ).toEqual([]);
  });

  it.each(rules.map((rule) => [rule.alert ?? rule.record, rule.expr]))(
    'alert %s names existing metrics and labels',
    (_, expr) => {
      expect(problemsOf(String(expr))).toEqual([]);
    },
  );

  it.each(dashboardTargets.map((t) => [t.panel, t.expr]))(
    'dashboard panel "%s" names existing metrics and labels',
    (_, expr) => {
      expect(problemsOf(String(expr))).toEqual([]);
    },
  );

  it('the dashboard variables query existing metrics and labels', () => {
    for (const variable of dashboard.templating.list as Json[]) {
      if (variable.type !== 'query') continue;
      const query = String(
        typeof variable.query === 'string' ? variable.query : variable.query.query,
      );
      const match = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
      expect(match, query).not.toBeNull();
      const [, selector, label] = match!;
      expect(problemsOf(selector!, { selectorOnly: true }), query).toEqual([]);
      const series = SERIES.get(readQuery(selector!).selectors[0]!.name)!;
      expect(series.labels.has(label!) || TARGET_LABELS.has(label!), query).toBe(true);
    }
  });
});

describe('alert rules', () => {
  it('each has a name, a for:, a severity and a summary and description', () => {
    const names = rules.map((rule) => rule.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^CamundaSandbox\w+$/);
      expect(String(rule.for), rule.alert).toMatch(/^\d+[smh]$/);
      expect(['info', 'warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
      expect(String(rule.annotations?.summary ?? ''), rule.alert).not.toBe('');
      expect(String(rule.annotations?.description ?? ''), rule.alert).not.toBe('');
    }
  });

  it('cover incidents, blocked calls, engine errors, readiness, executor restarts and lost locks', () => {
    const exprs = rules.map((rule) => String(rule.expr).replace(/\s+/g, ' '));
    const has = (re: RegExp) => exprs.some((e) => re.test(e));
    expect(has(/camunda_sandbox_tasks_total\{outcome=~"[^"]*timeout[^"]*"/)).toBe(true);
    expect(has(/camunda_sandbox_blocked_calls_total/)).toBe(true);
    expect(has(/camunda_sandbox_engine_requests_total\{result="error"\}/)).toBe(true);
    expect(has(/^up\{[^}]*\} == 0/)).toBe(true);
    expect(has(/^absent\(/)).toBe(true);
    expect(has(/camunda_sandbox_executor_restarts_total/)).toBe(true);
    expect(has(/outcome="lock_lost"/)).toBe(true);
  });

  it('together, the two blocked-call rules match every capability label', () => {
    const regexes = rules
      .map((rule) =>
        /camunda_sandbox_blocked_calls_total\{capability(=~|!~)"([^"]*)"\}/.exec(String(rule.expr)),
      )
      .filter((m) => m !== null);
    expect(regexes.length).toBe(2);
    expect(new Set(regexes.map((m) => m[2])).size).toBe(1);
    expect(regexes.map((m) => m[1]).sort()).toEqual(['!~', '=~']);
  });

  const promtool = spawnSync('promtool', ['--version']).status === 0;
  it.skipIf(!promtool)(
    'promtool checks the rules, runs their unit tests and parses the dashboard queries',
    () => {
      const dir = join(root, 'ops/prometheus');
      const check = spawnSync('promtool', ['check', 'rules', 'alerts.yaml'], {
        cwd: dir,
        encoding: 'utf8',
      });
      expect(check.status, check.stdout + check.stderr).toBe(0);
      const unit = spawnSync('promtool', ['test', 'rules', 'alerts.test.yaml'], {
        cwd: dir,
        encoding: 'utf8',
      });
      expect(unit.status, unit.stdout + unit.stderr).toBe(0);

      // The dashboard's queries as recording rules, Grafana's variables filled in.
      const fill = (expr: string) =>
        expr
          .replace(/\$__(rate_interval|interval|range)/g, '5m')
          .replace(/\$\{?job\}?/g, 'camunda-sandbox')
          .replace(/\$\{?\w+\}?/g, '.*');
      const temp = mkdtempSync(join(tmpdir(), 'ops-dashboard-'));
      try {
        const recording = {
          groups: [
            {
              name: 'dashboard',
              rules: dashboardTargets.map((t, i) => ({
                record: `dashboard:query${i}`,
                expr: fill(t.expr),
              })),
            },
          ],
        };
        writeFileSync(join(temp, 'dashboard.rules.json'), JSON.stringify(recording));
        const parsed = spawnSync('promtool', ['check', 'rules', 'dashboard.rules.json'], {
          cwd: temp,
          encoding: 'utf8',
        });
        expect(parsed.status, parsed.stdout + parsed.stderr).toBe(0);
      } finally {
        rmSync(temp, { recursive: true, force: true });
      }
    },
  );
});

describe('Grafana dashboard', () => {
  it('uses a Prometheus data source variable everywhere', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const variables = dashboard.templating.list as Json[];
    expect(variables.find((v) => v.type === 'datasource')).toMatchObject({
      name: 'datasource',
      query: 'prometheus',
    });
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const target of panel.targets as Json[])
        expect(target.datasource, panel.title).toEqual(panel.datasource);
    }
  });

  it('refers only to variables it defines', () => {
    const defined = new Set((dashboard.templating.list as Json[]).map((v) => v.name as string));
    const text = JSON.stringify(dashboard);
    for (const [, name] of text.matchAll(/\$\{?(\w+)/g)) {
      if (!name!.startsWith('__')) expect(defined, `$${name}`).toContain(name);
    }
  });

  it('has unique panel ids and panels that fit the grid without overlapping', () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const boxes = panels.map((p) => ({
      title: p.title as string,
      ...(p.gridPos as { x: number; y: number; w: number; h: number }),
    }));
    for (const [i, a] of boxes.entries()) {
      expect(a.x + a.w, a.title).toBeLessThanOrEqual(24);
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${a.title} / ${b.title}`).toBe(false);
      }
    }
  });

  it('shows outcomes, blocked calls, duration quantiles, in flight, engine requests, restarts and process figures', () => {
    const exprs = dashboardTargets.map((t) => t.expr).join('\n');
    for (const needed of [
      /sum by \(outcome\) \(rate\(camunda_sandbox_tasks_total/,
      /sum by \(capability\) \(increase\(camunda_sandbox_blocked_calls_total/,
      /histogram_quantile\(0\.5, sum by \(le\) \(rate\(camunda_sandbox_script_duration_seconds_bucket/,
      /histogram_quantile\(0\.95,/,
      /histogram_quantile\(0\.99,/,
      /camunda_sandbox_tasks_in_flight/,
      /sum by \(operation, result\) \(rate\(camunda_sandbox_engine_requests_total/,
      /camunda_sandbox_executor_restarts_total/,
      /process_resident_memory_bytes/,
      /process_cpu_seconds_total/,
    ]) {
      expect(exprs).toMatch(needed);
    }
  });
});

describe('Kubernetes example', () => {
  const deployment = k8s('Deployment');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const env = new Map<string, string | undefined>(
    (container.env as Json[]).map((e) => [e.name, e.value]),
  );
  const defaults = configSchema.parse({});
  const setting = (key: 'shutdownGraceMs' | 'pollTimeoutMs' | 'metricsPort'): number =>
    Number(env.get(ENV_NAMES[key]) ?? defaults[key]);
  const metricsPort = setting('metricsPort');
  const portNumber = (port: string | number) =>
    typeof port === 'number'
      ? port
      : (container.ports as Json[]).find((p) => p.name === port)?.containerPort;

  it('sets only environment variables the worker reads', () => {
    const known = new Set(Object.values(ENV_NAMES));
    for (const name of env.keys()) expect(known, name).toContain(name);
    for (const key of Object.keys(k8s('Secret').stringData)) expect(known, key).toContain(key);
  });

  it('gives the pod longer than the worker needs to drain', () => {
    const graceMs = pod.terminationGracePeriodSeconds * 1000;
    expect(graceMs).toBeGreaterThan(setting('shutdownGraceMs'));
    // After the grace period the worker still waits for its pending long poll
    // (up to POLL_TIMEOUT_MS) and its executors (up to 5 s): see Worker.drain.
    expect(graceMs).toBeGreaterThan(setting('shutdownGraceMs') + setting('pollTimeoutMs') + 5000);
  });

  it('runs 2 replicas with liveness on /healthz and readiness on /readyz on the metrics port', () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(portNumber(container.livenessProbe.httpGet.port)).toBe(metricsPort);
    expect(portNumber(container.readinessProbe.httpGet.port)).toBe(metricsPort);
    expect(Number(deployment.spec.template.metadata.annotations['prometheus.io/port'])).toBe(
      metricsPort,
    );
    const service = k8s('Service');
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(portNumber(service.spec.ports[0].targetPort)).toBe(metricsPort);
  });

  it('runs locked down, with resources', () => {
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.seccompProfile.type).toBe('RuntimeDefault');
    const sc = container.securityContext;
    expect(sc).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    expect(sc.capabilities.drop).toContain('ALL');
    expect(sc.runAsUser ?? pod.securityContext.runAsUser).toBeGreaterThan(0);
    for (const kind of ['requests', 'limits']) {
      expect(container.resources[kind].cpu, kind).toBeDefined();
      expect(container.resources[kind].memory, kind).toBeDefined();
    }
  });

  it('mounts the policy ConfigMap at SANDBOX_POLICIES, and its policies are valid', () => {
    const mount = (container.volumeMounts as Json[]).find(
      (m) => m.mountPath === env.get('SANDBOX_POLICIES'),
    );
    expect(mount, 'a volume mounted at SANDBOX_POLICIES').toBeDefined();
    const volume = (pod.volumes as Json[]).find((v) => v.name === mount.name);
    const configMap = k8s('ConfigMap', volume.configMap.name);
    expect(configMap, `ConfigMap ${volume.configMap.name}`).toBeDefined();

    const dir = mkdtempSync(join(tmpdir(), 'ops-policies-'));
    try {
      for (const [file, text] of Object.entries(configMap.data as Record<string, string>)) {
        expect(file).toMatch(/\.ya?ml$/);
        writeFileSync(join(dir, file), text);
      }
      expect(loadPolicyDir(dir).policies.length).toBe(Object.keys(configMap.data).length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('uses the same paths as the image', () => {
    const dockerEnv = dockerfile.stages.at(-1)!.env;
    expect(env.get('SANDBOX_POLICIES')).toBe(dockerEnv.get('SANDBOX_POLICIES'));
    expect(env.get('SANDBOX_SCRIPTS')).toBe(dockerEnv.get('SANDBOX_SCRIPTS'));
    const mounted = new Set((container.volumeMounts as Json[]).map((m) => m.mountPath));
    expect(mounted).toContain(env.get('SANDBOX_SCRIPTS'));
    expect(mounted).toContain('/tmp'); // the only writable place under readOnlyRootFilesystem
  });
});

// --- Dockerfile ---------------------------------------------------------

describe('Dockerfile', () => {
  const stages = dockerfile.stages;
  const runtime = stages.at(-1)!;
  const all = (stage: Stage, op: string) =>
    stage.instructions.filter((i) => i.op === op).map((i) => i.args);

  it('builds from a pinned Node image at the version of .node-version', () => {
    const nodeVersion = read('.node-version').trim();
    const external = stages.filter((s) => !stages.some((other) => other.name === s.from));
    expect(external.length).toBeGreaterThan(0);
    for (const { from } of external) {
      expect(from).not.toMatch(/latest/);
      const pinned = /^node:(\d+\.\d+\.\d+)-[a-z]+(?:-slim)?(?:@sha256:[0-9a-f]{64})?$/.exec(from);
      expect(pinned, from).not.toBeNull();
      expect(pinned![1]).toBe(nodeVersion);
    }
  });

  it('runs as a non-root user with the production dependencies only', () => {
    const user = all(runtime, 'USER').at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(all(runtime, 'RUN').join('\n')).toMatch(/npm ci --omit=dev/);
    expect(runtime.env.get('NODE_ENV')).toBe('production');
  });

  it('checks /healthz, exposes the metrics port, and starts the worker', () => {
    expect(all(runtime, 'HEALTHCHECK').join('\n')).toMatch(/\/healthz/);
    expect(all(runtime, 'EXPOSE')).toContain(String(runtime.env.get('METRICS_PORT') ?? 9464));
    expect(all(runtime, 'STOPSIGNAL')).toEqual(['SIGTERM']);
    expect(JSON.parse(all(runtime, 'ENTRYPOINT').at(-1)!)).toEqual(['node', 'dist/cli/main.js']);
    expect(JSON.parse(all(runtime, 'CMD').at(-1)!)).toEqual(['worker']);
    expect(runtime.env.get('SANDBOX_POLICIES')).toBe('/etc/camunda-sandbox/policies');
    expect(runtime.env.get('SANDBOX_SCRIPTS')).toBe('/srv/camunda-sandbox/scripts');
    const volumes = all(runtime, 'VOLUME').flatMap((v) => JSON.parse(v) as string[]);
    expect(volumes).toEqual(
      expect.arrayContaining([
        runtime.env.get('SANDBOX_POLICIES'),
        runtime.env.get('SANDBOX_SCRIPTS'),
      ]),
    );
  });

  it('sends every file it copies from the context through .dockerignore', () => {
    const patterns = read('.dockerignore')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const glob = (p: string) =>
      new RegExp(
        `^${p
          .replace(/\/$/, '')
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')}(/.*)?$`,
      );
    const included = (path: string) => {
      let keep = true;
      for (const pattern of patterns) {
        const negated = pattern.startsWith('!');
        if (glob(negated ? pattern.slice(1) : pattern).test(path)) keep = negated;
      }
      return keep;
    };
    const sources = stages.flatMap((stage) =>
      all(stage, 'COPY')
        .filter((args) => !args.startsWith('--from'))
        .flatMap((args) =>
          args
            .split(/\s+/)
            .filter((a) => !a.startsWith('--'))
            .slice(0, -1),
        ),
    );
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      const path = source.replace(/\/$/, '');
      expect(existsSync(join(root, path)), source).toBe(true);
      expect(included(path), `${source} is excluded by .dockerignore`).toBe(true);
    }
    expect(included('node_modules')).toBe(false);
    expect(included('dist')).toBe(false);
    expect(included('.git')).toBe(false);
  });
});
