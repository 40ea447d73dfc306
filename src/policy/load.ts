import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type { z } from 'zod';

import { SandboxError } from '../errors.ts';
import { policySchema, type Policy } from './schema.ts';

/** A validated policy and where it came from. */
export interface LoadedPolicy {
  readonly policy: Policy;
  readonly file: string;
}

/** Every policy of a folder, and the topic each serves. */
export interface PolicySet {
  readonly policies: readonly LoadedPolicy[];
  readonly byTopic: ReadonlyMap<string, LoadedPolicy>;
  readonly byName: ReadonlyMap<string, LoadedPolicy>;
}

/** One problem in one policy file, located as precisely as the YAML allows. */
export interface PolicyProblem {
  readonly file: string;
  readonly line: number | undefined;
  readonly field: string;
  readonly message: string;
}

export class PolicyError extends SandboxError {
  readonly problems: readonly PolicyProblem[];

  constructor(
    problems: PolicyProblem[],
    code: 'POLICY_INVALID' | 'POLICY_TOPIC_CONFLICT' = 'POLICY_INVALID',
  ) {
    super(code, problems.map(formatProblem).join('\n'));
    this.name = 'PolicyError';
    this.problems = problems;
  }
}

export function formatProblem(problem: PolicyProblem): string {
  const where = problem.line === undefined ? problem.file : `${problem.file}:${problem.line}`;
  return `${where}: ${problem.field || '(file)'}: ${problem.message}`;
}

/** Reads and validates one policy file. */
export function loadPolicyFile(file: string): LoadedPolicy {
  const text = readFileSync(file, 'utf8');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });

  if (doc.errors.length > 0) {
    throw new PolicyError(
      doc.errors.map((e) => ({
        file,
        line: lines.linePos(e.pos[0]).line,
        field: '',
        message: `not valid YAML: ${e.message.split('\n')[0]}`,
      })),
    );
  }

  const parsed = policySchema.safeParse(doc.toJS());
  if (!parsed.success) {
    throw new PolicyError(
      parsed.error.issues.map((issue) => locateIssue(file, doc.contents, lines, issue)),
    );
  }
  return { policy: parsed.data, file };
}

function locateIssue(
  file: string,
  root: unknown,
  lines: LineCounter,
  issue: z.core.$ZodIssue,
): PolicyProblem {
  const path = issue.path.map(String);
  // An unknown key is reported on its parent; point at the key itself.
  const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
  const field = [...path, ...keys.slice(0, 1)].join('.');
  const node = keys.length > 0 ? findKey(root, path, keys[0]!) : findNode(root, path);
  const offset = node?.range?.[0];
  return {
    file,
    line: offset === undefined ? undefined : lines.linePos(offset).line,
    field,
    message: issue.message,
  };
}

/** The key node of `key` in the map at `path` (its value may start on a later line). */
function findKey(root: unknown, path: string[], key: string): Node | undefined {
  const parent = findNode(root, path);
  const pair = isMap(parent)
    ? parent.items.find((p) => isScalar(p.key) && String(p.key.value) === key)
    : undefined;
  return (pair?.key as Node | undefined) ?? parent;
}

/** The deepest YAML node along a path (the closest thing to point at). */
function findNode(root: unknown, path: string[]): Node | undefined {
  let node = root as Node | undefined;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === segment);
      if (!pair) return node;
      node = (pair.value ?? pair.key) as Node;
      if (pair.value == null) return pair.key as Node;
    } else if (isSeq(node)) {
      const item = node.items[Number(segment)] as Node | undefined;
      if (!item) return node;
      node = item;
    } else {
      return node;
    }
  }
  return node;
}

/** Reads every `*.yaml` / `*.yml` in a folder; all problems are reported at once. */
export function loadPolicyDir(dir: string): PolicySet {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => /\.ya?ml$/.test(n))
      .sort();
  } catch (err) {
    throw new PolicyError([
      {
        file: dir,
        line: undefined,
        field: '',
        message: `cannot read the policy folder: ${(err as Error).message}`,
      },
    ]);
  }
  if (names.length === 0) {
    throw new PolicyError([
      { file: dir, line: undefined, field: '', message: 'the folder has no policy (*.yaml) file' },
    ]);
  }

  const problems: PolicyProblem[] = [];
  const loaded: LoadedPolicy[] = [];
  for (const name of names) {
    try {
      loaded.push(loadPolicyFile(join(dir, name)));
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      problems.push(...err.problems);
    }
  }
  if (problems.length > 0) throw new PolicyError(problems);

  return indexPolicies(loaded);
}

/** Indexes policies by topic and name; a topic or name used twice is an error. */
export function indexPolicies(loaded: LoadedPolicy[]): PolicySet {
  const byTopic = new Map<string, LoadedPolicy>();
  const byName = new Map<string, LoadedPolicy>();
  const problems: PolicyProblem[] = [];

  for (const entry of loaded) {
    const other = byName.get(entry.policy.name);
    if (other) {
      problems.push(
        conflict(
          entry,
          'name',
          `policy name '${entry.policy.name}' is also used by ${basename(other.file)}`,
        ),
      );
    }
    byName.set(entry.policy.name, entry);
    entry.policy.topics.forEach((topic, index) => {
      const owner = byTopic.get(topic);
      if (owner) {
        problems.push(
          conflict(
            entry,
            `topics.${index}`,
            `topic '${topic}' is already served by policy '${owner.policy.name}' (${basename(owner.file)})`,
          ),
        );
      }
      byTopic.set(topic, entry);
    });
  }
  if (problems.length > 0) throw new PolicyError(problems, 'POLICY_TOPIC_CONFLICT');

  return { policies: loaded, byTopic, byName };
}

function conflict(entry: LoadedPolicy, field: string, message: string): PolicyProblem {
  const lines = new LineCounter();
  const doc = parseDocument(readFileSync(entry.file, 'utf8'), { lineCounter: lines });
  const node = findNode(doc.contents, field.split('.'));
  const offset = node?.range?.[0];
  return {
    file: entry.file,
    line: offset === undefined ? undefined : lines.linePos(offset).line,
    field,
    message,
  };
}
