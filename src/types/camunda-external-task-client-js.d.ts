// The part of camunda-external-task-client-js 3.1.0 this project uses. The
// package ships no types and the community ones describe version 1.3.
declare module 'camunda-external-task-client-js' {
  import { EventEmitter } from 'node:events';

  export interface TypedValue {
    type: string;
    value: unknown;
    valueInfo?: Record<string, unknown>;
  }

  export class Variables {
    constructor(initial?: Record<string, TypedValue>);
    getAllTyped(): Record<string, TypedValue>;
    setTyped(name: string, typed: TypedValue): this;
    getDirtyVariables(): Record<string, TypedValue>;
  }

  export interface Task {
    id: string;
    topicName: string;
    workerId: string;
    activityId: string | null;
    activityInstanceId: string | null;
    executionId: string | null;
    processInstanceId: string | null;
    processDefinitionId: string | null;
    processDefinitionKey: string | null;
    processDefinitionVersionTag: string | null;
    businessKey: string | null;
    tenantId: string | null;
    retries: number | null;
    lockExpirationTime: string | null;
    extensionProperties?: Record<string, string> | null;
    variables: Variables;
  }

  export interface FailureOptions {
    errorMessage: string;
    errorDetails?: string;
    retries: number;
    retryTimeout: number;
    variables?: Record<string, TypedValue>;
    localVariables?: Record<string, TypedValue>;
  }

  export interface TaskService {
    complete(task: Task, variables?: Variables, localVariables?: Variables): Promise<void>;
    handleFailure(task: Task, options: FailureOptions): Promise<void>;
    handleBpmnError(
      task: Task,
      code: string,
      message?: string,
      variables?: Variables,
    ): Promise<void>;
    extendLock(task: Task, newDuration: number): Promise<void>;
    unlock(task: Task): Promise<void>;
  }

  export interface SubscribeOptions {
    lockDuration?: number;
    includeExtensionProperties?: boolean;
    variables?: string[];
    localVariables?: boolean;
  }

  export interface TopicSubscription {
    unsubscribe(): void;
    lockDuration: number;
  }

  export type Handler = (args: { task: Task; taskService: TaskService }) => Promise<void>;

  /** Receives got's request options and returns them changed. */
  export type Interceptor = (config: Record<string, unknown>) => Record<string, unknown>;

  export interface ClientOptions {
    baseUrl: string;
    workerId?: string;
    maxTasks?: number;
    maxParallelExecutions?: number;
    interval?: number;
    lockDuration?: number;
    autoPoll?: boolean;
    asyncResponseTimeout?: number | undefined;
    usePriority?: boolean;
    interceptors?: Interceptor | Interceptor[];
    use?: ((client: Client) => void) | ((client: Client) => void)[];
  }

  export class Client extends EventEmitter {
    constructor(options: ClientOptions);
    start(): void;
    stop(): void;
    subscribe(topic: string, options: SubscribeOptions, handler: Handler): TopicSubscription;
    topicSubscriptions: Record<string, TopicSubscription>;
    activeTasksCount: number;
  }
}
