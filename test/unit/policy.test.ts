// DESIGN.md "Policies": the schema, the shipped files, and errors that name
// file, line and field.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  loadPolicyDir,
  loadPolicyFile,
  PolicyError,
  type PolicyProblem,
} from '../../src/policy/load.ts';
import { backoffFor, policySchema } from '../../src/policy/schema.ts';

const SHIPPED = resolve(import.meta.dirname, '../../sandbox-policies');

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh policy folder holding the given files. */
function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'policy-unit-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function policyError(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw new Error(`expected a PolicyError, got ${String(err)}`);
  }
  throw new Error('expected a PolicyError, nothing was thrown');
}

/** Loads a folder with one file and returns its single problem, checking the message carries file:line and field. */
function onlyProblem(text: string, name = 'team.yaml'): PolicyProblem & { text: string } {
  const dir = folder({ [name]: text });
  const error = policyError(() => loadPolicyDir(dir));
  expect(error.code).toBe('POLICY_INVALID');
  expect(error.problems).toHaveLength(1);
  const problem = error.problems[0]!;
  expect(problem.file).toBe(join(dir, name));
  expect(error.message).toContain(
    `${join(dir, name)}:${problem.line}: ${problem.field || '(file)'}:`,
  );
  return { ...problem, text: error.message };
}

const VALID = `name: team
topics:
  - team-scripts
`;

describe('the policy schema', () => {
  it('a policy with only a name and topics gets every default', () => {
    const policy = policySchema.parse({ name: 'minimal', topics: ['t'] });
    expect(policy).toEqual({
      name: 'minimal',
      topics: ['t'],
      limits: {
        memoryMb: 64,
        wallMs: 5000,
        cpuMs: 2000,
        inputBytes: 1_048_576,
        outputBytes: 1_048_576,
      },
      retries: { count: 3, backoffMs: 5000, factor: 2, maxBackoffMs: 300_000 },
      sources: { inline: true, registry: true, requirePin: false },
      capabilities: {},
    });
  });

  it('a partly written section keeps the defaults of the keys it leaves out', () => {
    const policy = policySchema.parse({
      name: 'p',
      topics: ['t'],
      limits: { memoryMb: 16 },
      retries: { count: 0 },
    });
    expect(policy.limits).toEqual({
      memoryMb: 16,
      wallMs: 5000,
      cpuMs: 2000,
      inputBytes: 1_048_576,
      outputBytes: 1_048_576,
    });
    expect(policy.retries).toEqual({ count: 0, backoffMs: 5000, factor: 2, maxBackoffMs: 300_000 });
  });

  it('a granted capability gets its own defaults', () => {
    const policy = policySchema.parse({
      name: 'p',
      topics: ['t'],
      capabilities: { console: {}, crypto: {} },
    });
    expect(policy.capabilities['console']).toEqual({ maxLines: 100, maxBytes: 16_384 });
    expect(policy.capabilities['crypto']).toEqual({
      maxRandomBytes: 65_536,
      maxHashInputBytes: 8 * 1_048_576,
    });
  });

  it('a capability that is not named is not granted', () => {
    expect(policySchema.parse({ name: 'p', topics: ['t'] }).capabilities).toEqual({});
    const policy = policySchema.parse({ name: 'p', topics: ['t'], capabilities: { console: {} } });
    expect(
      Object.keys(policy.capabilities).filter((k) => policy.capabilities[k] !== undefined),
    ).toEqual(['console']);
  });

  it.each([
    ['no topic', { name: 'p', topics: [] }],
    ['an upper-case name', { name: 'Team', topics: ['t'] }],
    ['a topic with a space', { name: 'p', topics: ['my topic'] }],
    ['memory under 8 MB', { name: 'p', topics: ['t'], limits: { memoryMb: 4 } }],
    ['a fractional wall limit', { name: 'p', topics: ['t'], limits: { wallMs: 10.5 } }],
    ['negative retries', { name: 'p', topics: ['t'], retries: { count: -1 } }],
    ['a backoff factor under 1', { name: 'p', topics: ['t'], retries: { factor: 0.5 } }],
  ])('%s is refused', (_label, input) => {
    expect(policySchema.safeParse(input).success).toBe(false);
  });
});

describe('the shipped policies', () => {
  it('every file in sandbox-policies/ validates', () => {
    const set = loadPolicyDir(SHIPPED);
    expect([...set.byName.keys()].sort()).toEqual(['default', 'strict']);
  });

  it('default serves the topic sandbox, accepts inline and registry scripts and grants no network', () => {
    const { policy } = loadPolicyDir(SHIPPED).byTopic.get('sandbox')!;
    expect(policy.name).toBe('default');
    expect(policy.sources.inline).toBe(true);
    expect(policy.sources.registry).toBe(true);
    expect(policy.capabilities['fetch']).toBeUndefined();
  });

  it('strict accepts only pinned registry scripts, with smaller limits and no capabilities', () => {
    const { policy } = loadPolicyFile(join(SHIPPED, 'strict.yaml'));
    const defaults = loadPolicyFile(join(SHIPPED, 'default.yaml')).policy;
    expect(policy.sources).toEqual({ inline: false, registry: true, requirePin: true });
    expect(policy.limits.memoryMb).toBeLessThan(defaults.limits.memoryMb);
    expect(policy.limits.wallMs).toBeLessThan(defaults.limits.wallMs);
    expect(Object.values(policy.capabilities).filter((c) => c !== undefined)).toEqual([]);
  });
});

describe('policy errors name the file, the line and the field', () => {
  it('an unknown top-level key', () => {
    const problem = onlyProblem(`${VALID}timeout: 5\n`);
    expect(problem).toMatchObject({ line: 4, field: 'timeout' });
    expect(problem.text).toMatch(/team\.yaml:4: timeout: /);
  });

  it('an unknown key inside a section', () => {
    const problem = onlyProblem(`${VALID}limits:\n  memoryMb: 32\n  heapMb: 16\n`);
    expect(problem).toMatchObject({ line: 6, field: 'limits.heapMb' });
  });

  it('an unknown capability', () => {
    const problem = onlyProblem(
      `${VALID}capabilities:\n  console: {}\n  shell:\n    allow: true\n`,
    );
    // The key's own line, though its value starts on the next.
    expect(problem).toMatchObject({ line: 6, field: 'capabilities.shell' });
  });

  it('a wrong type', () => {
    const problem = onlyProblem(`${VALID}limits:\n  memoryMb: 32\n  wallMs: "five seconds"\n`);
    expect(problem).toMatchObject({ line: 6, field: 'limits.wallMs' });
    expect(problem.message).toMatch(/number/);
  });

  it('a wrong type in a capability setting', () => {
    const problem = onlyProblem(`${VALID}capabilities:\n  console:\n    maxLines: many\n`);
    expect(problem).toMatchObject({ line: 6, field: 'capabilities.console.maxLines' });
  });

  it('a bad topic', () => {
    const problem = onlyProblem(`name: team\ntopics:\n  - good-topic\n  - "bad topic!"\n`);
    expect(problem).toMatchObject({ line: 4, field: 'topics.1' });
    expect(problem.message).toContain('a topic is letters, digits');
  });

  it('a bad name', () => {
    const problem = onlyProblem(`# comment\nname: Team Scripts\ntopics: [t]\n`);
    expect(problem).toMatchObject({ line: 2, field: 'name' });
  });

  it('a missing topics list', () => {
    const problem = onlyProblem(`name: team\n`);
    expect(problem.field).toBe('topics');
  });

  it('cpuMs greater than wallMs', () => {
    const problem = onlyProblem(`${VALID}limits:\n  wallMs: 1000\n  cpuMs: 2000\n`);
    expect(problem).toMatchObject({ line: 6, field: 'limits.cpuMs' });
    expect(problem.message).toBe('cpuMs cannot exceed wallMs');
  });

  it('invalid YAML', () => {
    const problem = onlyProblem(`name: team\ntopics:\n  - a\nlimits:\n  memoryMb: [1, 2\n`);
    expect(problem.line).toBeGreaterThanOrEqual(5);
    expect(problem.message).toContain('not valid YAML');
  });

  it('a key written twice', () => {
    const problem = onlyProblem(`name: team\ntopics: [a]\nname: other\n`);
    expect(problem.line).toBe(3);
    expect(problem.message).toContain('not valid YAML');
  });

  it('every problem of every file is reported at once', () => {
    const dir = folder({
      'a.yaml': `name: a\ntopics: [a]\nlimits:\n  memoryMb: big\n`,
      'b.yml': `name: b\ntopics: [b]\nextra: 1\n`,
    });
    const error = policyError(() => loadPolicyDir(dir));
    expect(error.problems.map((p) => [p.file, p.line, p.field])).toEqual([
      [join(dir, 'a.yaml'), 4, 'limits.memoryMb'],
      [join(dir, 'b.yml'), 3, 'extra'],
    ]);
  });
});

describe('policy sets', () => {
  it('a topic served by two files is refused, naming the second file, its line and the first policy', () => {
    const dir = folder({
      'a.yaml': `name: alpha\ntopics:\n  - shared\n`,
      'b.yaml': `name: beta\ntopics:\n  - own\n  - shared\n`,
    });
    const error = policyError(() => loadPolicyDir(dir));
    expect(error.code).toBe('POLICY_TOPIC_CONFLICT');
    expect(error.problems).toEqual([
      {
        file: join(dir, 'b.yaml'),
        line: 4,
        field: 'topics.1',
        message: "topic 'shared' is already served by policy 'alpha' (a.yaml)",
      },
    ]);
    expect(error.message).toContain(`${join(dir, 'b.yaml')}:4: topics.1: topic 'shared'`);
  });

  it('two policies with the same name are refused, naming the file and line', () => {
    const dir = folder({
      'a.yaml': `name: same\ntopics: [one]\n`,
      'b.yaml': `# second\nname: same\ntopics: [two]\n`,
    });
    const error = policyError(() => loadPolicyDir(dir));
    expect(error.problems).toEqual([
      {
        file: join(dir, 'b.yaml'),
        line: 2,
        field: 'name',
        message: "policy name 'same' is also used by a.yaml",
      },
    ]);
  });

  it('an empty folder is refused, naming the folder', () => {
    const dir = folder({ 'README.md': 'not a policy' });
    const error = policyError(() => loadPolicyDir(dir));
    expect(error.code).toBe('POLICY_INVALID');
    expect(error.message).toBe(`${dir}: (file): the folder has no policy (*.yaml) file`);
  });

  it('a folder that does not exist is refused, naming it', () => {
    const dir = join(tmpdir(), 'policy-unit-missing-folder');
    const error = policyError(() => loadPolicyDir(dir));
    expect(error.message).toContain(dir);
    expect(error.message).toContain('cannot read the policy folder');
  });

  it('policies are indexed by topic and by name', () => {
    const dir = folder({
      'a.yaml': `name: alpha\ntopics: [one, two]\n`,
      'b.yaml': `name: beta\ntopics: [three]\n`,
    });
    const set = loadPolicyDir(dir);
    expect([...set.byTopic].map(([topic, p]) => [topic, p.policy.name])).toEqual([
      ['one', 'alpha'],
      ['two', 'alpha'],
      ['three', 'beta'],
    ]);
    expect(set.byName.get('beta')?.file).toBe(join(dir, 'b.yaml'));
  });
});

describe('backoffFor', () => {
  const retries = { count: 5, backoffMs: 1000, factor: 2, maxBackoffMs: 5000 };

  it('the first retry waits backoffMs, each later one factor times longer', () => {
    expect([1, 2, 3].map((attempt) => backoffFor(retries, attempt))).toEqual([1000, 2000, 4000]);
  });

  it('the wait never exceeds maxBackoffMs', () => {
    expect(backoffFor(retries, 4)).toBe(5000);
    expect(backoffFor(retries, 60)).toBe(5000);
  });

  it('a fractional factor gives whole milliseconds', () => {
    expect(backoffFor({ count: 3, backoffMs: 1000, factor: 1.5, maxBackoffMs: 60_000 }, 3)).toBe(
      2250,
    );
    expect(backoffFor({ count: 3, backoffMs: 333, factor: 1.1, maxBackoffMs: 60_000 }, 2)).toBe(
      366,
    );
  });

  it('attempt 0 or below counts as the first', () => {
    expect(backoffFor(retries, 0)).toBe(1000);
  });

  it('factor 1 waits the same every time', () => {
    expect(backoffFor({ count: 3, backoffMs: 700, factor: 1, maxBackoffMs: 60_000 }, 3)).toBe(700);
  });
});
