// Where a task's script comes from: the inline `script` property or a
// `scriptRef` into the script folder, optionally pinned by sha256.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isSandboxError } from '../../src/errors.ts';
import { policySchema, type Policy } from '../../src/policy/schema.ts';
import { resolveScript, sha256 } from '../../src/worker/script-source.ts';

const TOTAL = `const lines = execution.getVariable('lines');\nlines.reduce((a, l) => a + l.qty * l.price, 0);\n`;
const TOTAL_SHA = createHash('sha256').update(TOTAL).digest('hex');

let base: string;
let scripts: string;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'script-source-unit-'));
  scripts = join(base, 'scripts');
  mkdirSync(join(scripts, 'invoice'), { recursive: true });
  writeFileSync(join(scripts, 'invoice', 'total.js'), TOTAL);
  // Beside the script folder, where no scriptRef may reach.
  writeFileSync(join(base, 'outside.js'), 'process.env');
  symlinkSync(join(base, 'outside.js'), join(scripts, 'escape.js'));
  symlinkSync(base, join(scripts, 'parent'));
  // A link that stays inside the folder is fine.
  symlinkSync(join(scripts, 'invoice', 'total.js'), join(scripts, 'alias.js'));
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

function policy(sources: Partial<Policy['sources']> = {}): Policy {
  return policySchema.parse({ name: 'team', topics: ['team'], sources });
}

function refusal(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (isSandboxError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected the script source to be refused');
}

describe('inline scripts', () => {
  it('the script property is the source, named after the activity, hashed', () => {
    expect(resolveScript({ script: '1 + 1' }, policy(), scripts, 'computeTotal')).toEqual({
      source: '1 + 1',
      filename: 'computeTotal.js',
      hash: createHash('sha256').update('1 + 1').digest('hex'),
    });
  });

  it('without an activity id the filename is script.js', () => {
    expect(resolveScript({ script: '1' }, policy(), scripts, null).filename).toBe('script.js');
  });

  it('a policy that does not accept inline scripts refuses one', () => {
    const refused = refusal(() =>
      resolveScript({ script: '1' }, policy({ inline: false }), scripts, 'a'),
    );
    expect(refused.code).toBe('SCRIPT_SOURCE_REFUSED');
    expect(refused.message).toContain("policy 'team' does not accept inline scripts");
  });

  it('an empty script is a missing source', () => {
    expect(refusal(() => resolveScript({ script: '  \n ' }, policy(), scripts, 'a')).code).toBe(
      'SCRIPT_SOURCE_MISSING',
    );
  });
});

describe('scriptRef', () => {
  it('a path in the script folder is read, named by its path and hashed', () => {
    expect(resolveScript({ scriptRef: 'invoice/total.js' }, policy(), scripts, 'a')).toEqual({
      source: TOTAL,
      filename: 'invoice/total.js',
      hash: TOTAL_SHA,
    });
  });

  it('a matching sha256 pin is accepted, in either case of hex', () => {
    expect(
      resolveScript({ scriptRef: `invoice/total.js@sha256:${TOTAL_SHA}` }, policy(), scripts, 'a')
        .source,
    ).toBe(TOTAL);
    expect(
      resolveScript(
        { scriptRef: `invoice/total.js@sha256:${TOTAL_SHA.toUpperCase()}` },
        policy(),
        scripts,
        'a',
      ).hash,
    ).toBe(TOTAL_SHA);
  });

  it('a pin that does not match is refused, showing both hashes', () => {
    const wrong = sha256('something else');
    const refused = refusal(() =>
      resolveScript({ scriptRef: `invoice/total.js@sha256:${wrong}` }, policy(), scripts, 'a'),
    );
    expect(refused.code).toBe('SCRIPT_PIN_MISMATCH');
    expect(refused.message).toContain(wrong);
    expect(refused.message).toContain(TOTAL_SHA);
  });

  it('a policy that requires pins refuses an unpinned scriptRef', () => {
    const refused = refusal(() =>
      resolveScript({ scriptRef: 'invoice/total.js' }, policy({ requirePin: true }), scripts, 'a'),
    );
    expect(refused.code).toBe('SCRIPT_PIN_MISMATCH');
    expect(refused.message).toContain('requires a pinned scriptRef');
  });

  it('a policy that requires pins accepts a pinned scriptRef', () => {
    const resolved = resolveScript(
      { scriptRef: `invoice/total.js@sha256:${TOTAL_SHA}` },
      policy({ requirePin: true }),
      scripts,
      'a',
    );
    expect(resolved.hash).toBe(TOTAL_SHA);
  });

  it('a policy that does not accept the script folder refuses a scriptRef', () => {
    const refused = refusal(() =>
      resolveScript({ scriptRef: 'invoice/total.js' }, policy({ registry: false }), scripts, 'a'),
    );
    expect(refused.code).toBe('SCRIPT_SOURCE_REFUSED');
  });

  it('a symlink that stays inside the folder is followed', () => {
    expect(resolveScript({ scriptRef: 'alias.js' }, policy(), scripts, 'a').source).toBe(TOTAL);
  });

  it('a missing file is refused', () => {
    const refused = refusal(() =>
      resolveScript({ scriptRef: 'invoice/missing.js' }, policy(), scripts, 'a'),
    );
    expect(refused.code).toBe('SCRIPT_REF_INVALID');
    expect(refused.message).toContain('invoice/missing.js');
  });

  it('a folder is refused', () => {
    expect(
      refusal(() => resolveScript({ scriptRef: 'invoice' }, policy(), scripts, 'a')).code,
    ).toBe('SCRIPT_REF_INVALID');
  });
});

describe('scriptRef cannot leave the script folder', () => {
  it.each([
    ['../outside.js', 'leaves the script folder'],
    ['invoice/../../outside.js', 'leaves the script folder'],
    ['escape.js', 'leaves the script folder'],
    ['parent/outside.js', 'leaves the script folder'],
    ['.', 'leaves the script folder'],
  ])('%s is refused', (ref, message) => {
    const refused = refusal(() => resolveScript({ scriptRef: ref }, policy(), scripts, 'a'));
    expect(refused.code).toBe('SCRIPT_REF_INVALID');
    expect(refused.message).toContain(message);
  });

  it('an absolute path is refused, even to a file inside the folder', () => {
    const refused = refusal(() =>
      resolveScript({ scriptRef: join(scripts, 'invoice', 'total.js') }, policy(), scripts, 'a'),
    );
    expect(refused.code).toBe('SCRIPT_REF_INVALID');
    expect(refused.message).toContain('must be a relative path');
  });

  it('a pin does not make a path outside the folder acceptable', () => {
    const refused = refusal(() =>
      resolveScript(
        { scriptRef: `../outside.js@sha256:${sha256('process.env')}` },
        policy(),
        scripts,
        'a',
      ),
    );
    expect(refused.code).toBe('SCRIPT_REF_INVALID');
  });

  it('a NUL byte in the path is refused', () => {
    expect(
      refusal(() => resolveScript({ scriptRef: 'invoice/total.js\0.txt' }, policy(), scripts, 'a'))
        .code,
    ).toBe('SCRIPT_REF_INVALID');
  });
});

describe('script and scriptRef', () => {
  it('both set is refused', () => {
    const refused = refusal(() =>
      resolveScript({ script: '1', scriptRef: 'invoice/total.js' }, policy(), scripts, 'a'),
    );
    expect(refused.code).toBe('SCRIPT_REF_INVALID');
    expect(refused.message).toContain('both script and scriptRef');
  });

  it('neither set is a missing source that says how to add one', () => {
    const refused = refusal(() =>
      resolveScript({ resultVariable: 'total' }, policy(), scripts, 'a'),
    );
    expect(refused.code).toBe('SCRIPT_SOURCE_MISSING');
    expect(refused.message).toContain('script or scriptRef');
  });
});
