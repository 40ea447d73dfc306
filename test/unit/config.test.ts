// DESIGN.md "Configuration": environment variables, flags over them,
// defaults, and a bad value that stops the start naming it.
import { resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

import { loadConfig } from '../../src/config/config.ts';
import { isSandboxError } from '../../src/errors.ts';

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isSandboxError(err), `expected a SandboxError, got ${String(err)}`).toBe(true);
    expect((err as { code: string }).code).toBe('CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected CONFIG_INVALID, the configuration was accepted');
}

describe('defaults', () => {
  const config = loadConfig({}, {});

  it('CAMUNDA_URL defaults to the local engine REST API', () => {
    expect(config.camundaUrl).toBe('http://localhost:8080/engine-rest');
  });

  it('SANDBOX_POLICIES and SANDBOX_SCRIPTS default to ./sandbox-policies and ./scripts, made absolute', () => {
    expect(config.policiesDir).toBe(resolve('sandbox-policies'));
    expect(config.scriptsDir).toBe(resolve('scripts'));
  });

  it('METRICS_PORT defaults to 9464 and LOG_LEVEL to info', () => {
    expect(config.metricsPort).toBe(9464);
    expect(config.logLevel).toBe('info');
  });

  it('WORKER_ID defaults to a name of this host and process, MAX_PARALLEL to a positive number', () => {
    expect(config.workerId).toMatch(new RegExp(`^camunda-sandbox-.+-${process.pid}$`));
    expect(Number.isInteger(config.maxParallel) && config.maxParallel >= 1).toBe(true);
  });

  it('without credentials no authentication is configured', () => {
    expect(config.camundaUser).toBeUndefined();
    expect(config.camundaPassword).toBeUndefined();
    expect(config.camundaToken).toBeUndefined();
  });

  it('the configuration is frozen', () => {
    expect(Object.isFrozen(config)).toBe(true);
  });
});

describe('environment variables', () => {
  it('each documented variable sets its setting', () => {
    const config = loadConfig(
      {},
      {
        CAMUNDA_URL: 'https://engine.example.com/engine-rest',
        CAMUNDA_USER: 'demo',
        CAMUNDA_PASSWORD: 's3cret',
        SANDBOX_POLICIES: '/etc/sandbox/policies',
        SANDBOX_SCRIPTS: 'relative/scripts',
        WORKER_ID: 'worker-a',
        MAX_PARALLEL: '12',
        METRICS_PORT: '9100',
        LOG_LEVEL: 'debug',
      },
    );
    expect(config).toMatchObject({
      camundaUrl: 'https://engine.example.com/engine-rest',
      camundaUser: 'demo',
      camundaPassword: 's3cret',
      policiesDir: '/etc/sandbox/policies',
      scriptsDir: resolve('relative/scripts'),
      workerId: 'worker-a',
      maxParallel: 12,
      metricsPort: 9100,
      logLevel: 'debug',
    });
  });

  it('CAMUNDA_TOKEN configures a bearer token', () => {
    expect(loadConfig({}, { CAMUNDA_TOKEN: 'eyJ.token' }).camundaToken).toBe('eyJ.token');
  });

  it('an empty variable counts as unset', () => {
    const config = loadConfig({}, { METRICS_PORT: '', CAMUNDA_URL: '' });
    expect(config.metricsPort).toBe(9464);
    expect(config.camundaUrl).toBe('http://localhost:8080/engine-rest');
  });
});

describe('flags', () => {
  it('a flag overrides its environment variable', () => {
    const config = loadConfig(
      {
        camundaUrl: 'http://flag:8080/engine-rest',
        metricsPort: 9200,
        maxParallel: 3,
        logLevel: 'warn',
        policiesDir: '/from/flag',
      },
      {
        CAMUNDA_URL: 'http://env:8080/engine-rest',
        METRICS_PORT: '9100',
        MAX_PARALLEL: '12',
        LOG_LEVEL: 'debug',
        SANDBOX_POLICIES: '/from/env',
      },
    );
    expect(config).toMatchObject({
      camundaUrl: 'http://flag:8080/engine-rest',
      metricsPort: 9200,
      maxParallel: 3,
      logLevel: 'warn',
      policiesDir: '/from/flag',
    });
  });

  it('a flag left undefined leaves the environment variable in force', () => {
    expect(loadConfig({ metricsPort: undefined }, { METRICS_PORT: '9100' }).metricsPort).toBe(9100);
  });

  it('a bad flag is named as the flag', () => {
    const message = configError(() => loadConfig({ metricsPort: 70000 }, { METRICS_PORT: '9100' }));
    expect(message).toContain('flag --metrics-port');
    expect(message).not.toContain('METRICS_PORT');
  });
});

describe('a bad value stops the start with a message naming it', () => {
  it.each([
    ['METRICS_PORT', 'abc'],
    ['METRICS_PORT', '70000'],
    ['METRICS_PORT', '-1'],
    ['METRICS_PORT', '80.5'],
    ['METRICS_PORT', '   '],
    ['CAMUNDA_URL', 'notaurl'],
    ['CAMUNDA_URL', 'ftp://engine/engine-rest'],
    ['CAMUNDA_URL', 'localhost:8080/engine-rest'],
    ['MAX_PARALLEL', '0'],
    ['MAX_PARALLEL', 'many'],
    ['LOG_LEVEL', 'verbose'],
  ])('%s=%j', (name, value) => {
    const message = configError(() => loadConfig({}, { [name]: value }));
    expect(message).toContain(`environment variable ${name}`);
  });

  it('every bad value is named at once', () => {
    const message = configError(() =>
      loadConfig({}, { METRICS_PORT: 'abc', MAX_PARALLEL: '0', CAMUNDA_URL: 'notaurl' }),
    );
    for (const name of ['METRICS_PORT', 'MAX_PARALLEL', 'CAMUNDA_URL'])
      expect(message).toContain(name);
  });

  it('basic auth and a token together are refused, naming both', () => {
    const message = configError(() =>
      loadConfig({}, { CAMUNDA_USER: 'demo', CAMUNDA_PASSWORD: 'x', CAMUNDA_TOKEN: 't' }),
    );
    expect(message).toContain('CAMUNDA_USER');
    expect(message).toContain('CAMUNDA_TOKEN');
  });

  it('a value that is fine elsewhere is not blamed', () => {
    const message = configError(() =>
      loadConfig(
        {},
        { METRICS_PORT: 'abc', MAX_PARALLEL: '4', CAMUNDA_URL: 'http://e:8080/engine-rest' },
      ),
    );
    expect(message).not.toContain('MAX_PARALLEL');
    expect(message).not.toContain('CAMUNDA_URL');
  });
});
