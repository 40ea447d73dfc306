import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { ENV_NAMES } from '../../src/config/config.ts';
import { ERROR_CODES } from '../../src/errors.ts';
import { METRIC_NAMES } from '../../src/telemetry/metrics.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

function tableRows(heading: string): string[] {
  const section = readme.slice(readme.indexOf(heading));
  return section.split('\n').filter((line) => line.startsWith('| `'));
}

describe('the README', () => {
  it('documents every error code, with the same meaning as the code', () => {
    const rows = tableRows('## Error codes');
    const documented = new Map(
      rows.map((row) => {
        const [code, meaning] = row
          .split('|')
          .slice(1, 3)
          .map((cell) => cell.trim());
        return [code!.replace(/`/g, ''), meaning!];
      }),
    );
    expect([...documented.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, meaning] of Object.entries(ERROR_CODES))
      expect(documented.get(code)).toBe(meaning);
  });

  it('documents every environment variable the worker reads', () => {
    for (const name of Object.values(ENV_NAMES)) expect(readme).toContain(`\`${name}\``);
  });

  it('names every metric the worker exports', () => {
    for (const name of METRIC_NAMES) expect(readme).toContain(name.replace('camunda_sandbox_', ''));
  });
});
