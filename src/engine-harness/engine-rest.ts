import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

import { Agent, FormData, request } from 'undici';

import { parseJsonExact } from '../variables/plain.ts';
import type { TypedVariables } from '../variables/camunda.ts';

/** A Camunda REST API client for the demo, the tests and the benchmarks (not the worker's). */
export class EngineRest {
  readonly baseUrl: string;
  private readonly headers: Record<string, string>;
  /**
   * Our own dispatcher, not undici's global one: when Node's bundled undici
   * loads first (importing node:http is enough on Node 24), the global
   * dispatcher is Node's older Agent, which cannot send this undici's FormData.
   */
  private readonly dispatcher = new Agent();

  constructor(baseUrl: string, auth?: { user: string; password: string }) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.headers = auth
      ? {
          authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`,
        }
      : {};
  }

  async call<T = unknown>(
    method: 'GET' | 'POST' | 'DELETE' | 'PUT',
    path: string,
    body?: unknown,
  ): Promise<T> {
    const isForm = body instanceof FormData;
    const response = await request(`${this.baseUrl}${path}`, {
      dispatcher: this.dispatcher,
      method,
      headers: {
        ...this.headers,
        ...(body === undefined || isForm ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : isForm ? body : JSON.stringify(body),
    });
    const text = await response.body.text();
    if (response.statusCode >= 400) {
      throw new Error(`${method} ${path} answered ${response.statusCode}: ${text.slice(0, 500)}`);
    }
    // Exact parse: a Long beyond 2^53 reads back as a bigint, not rounded.
    return (text === '' ? undefined : parseJsonExact(text)) as T;
  }

  async version(): Promise<string> {
    return (await this.call<{ version: string }>('GET', '/version')).version;
  }

  /** Deploys BPMN files (paths or {name, xml}); returns the deployed process definitions by key. */
  async deploy(
    name: string,
    files: (string | { name: string; xml: string })[],
  ): Promise<Record<string, string>> {
    const form = new FormData();
    form.append('deployment-name', name);
    form.append('deploy-changed-only', 'false');
    for (const file of files) {
      const entry =
        typeof file === 'string' ? { name: basename(file), xml: readFileSync(file, 'utf8') } : file;
      form.append(entry.name, new Blob([entry.xml], { type: 'application/xml' }), entry.name);
    }
    const deployment = await this.call<{
      deployedProcessDefinitions?: Record<string, { key: string }>;
    }>('POST', '/deployment/create', form);
    const byKey: Record<string, string> = {};
    for (const [id, definition] of Object.entries(deployment.deployedProcessDefinitions ?? {}))
      byKey[definition.key] = id;
    return byKey;
  }

  async start(key: string, variables: TypedVariables = {}, businessKey?: string): Promise<string> {
    const instance = await this.call<{ id: string }>(
      'POST',
      `/process-definition/key/${encodeURIComponent(key)}/start`,
      {
        variables,
        businessKey,
      },
    );
    return instance.id;
  }

  async historicInstance(id: string): Promise<{ state: string; endActivityId: string | null }> {
    return this.call('GET', `/history/process-instance/${id}`);
  }

  /** Final variables of an instance from the history, as name → typed value. */
  async historicVariables(id: string): Promise<Record<string, { type: string; value: unknown }>> {
    const rows = await this.call<{ name: string; type: string; value: unknown }[]>(
      'GET',
      `/history/variable-instance?processInstanceId=${id}&deserializeValues=false`,
    );
    return Object.fromEntries(rows.map((r) => [r.name, { type: r.type, value: r.value }]));
  }

  async incidents(id: string): Promise<
    {
      id: string;
      incidentType: string;
      incidentMessage: string;
      activityId: string;
      configuration: string;
    }[]
  > {
    return this.call('GET', `/incident?processInstanceId=${id}`);
  }

  async externalTasks(
    id: string,
  ): Promise<
    { id: string; retries: number | null; errorMessage: string | null; activityId: string }[]
  > {
    return this.call('GET', `/external-task?processInstanceId=${id}`);
  }

  async errorDetails(externalTaskId: string): Promise<string> {
    const response = await request(`${this.baseUrl}/external-task/${externalTaskId}/errorDetails`, {
      dispatcher: this.dispatcher,
      headers: this.headers,
    });
    return response.body.text();
  }

  async activityIds(id: string): Promise<string[]> {
    const rows = await this.call<{ activityId: string }[]>(
      'GET',
      `/history/activity-instance?processInstanceId=${id}&sortBy=startTime&sortOrder=asc`,
    );
    return rows.map((r) => r.activityId);
  }

  /**
   * Waits until the instance has ended or has an open incident (the two ways
   * a sandboxed step settles), polling the REST API.
   */
  async settle(id: string, timeoutMs = 60_000): Promise<'completed' | 'incident' | 'active'> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const instance = await this.historicInstance(id);
      if (instance.state !== 'ACTIVE') return 'completed';
      if ((await this.incidents(id)).length > 0) return 'incident';
      if (Date.now() > deadline) return 'active';
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Deletes every deployment, cascading to instances: a clean engine for a test file. */
  async deleteAllDeployments(): Promise<void> {
    const deployments = await this.call<{ id: string }[]>('GET', '/deployment');
    for (const d of deployments)
      await this.call(
        'DELETE',
        `/deployment/${d.id}?cascade=true&skipCustomListeners=true&skipIoMappings=true`,
      );
  }
}
