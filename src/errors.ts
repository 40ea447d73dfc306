/**
 * Every error this project raises on purpose carries a stable code.
 *
 * Codes are grouped by who is at fault: `SCRIPT_*` errors are the script
 * author's (the script threw, ran too long, used too much memory, reached for
 * something its policy does not grant); `POLICY_*` and `CONFIG_*` are the
 * platform team's (a policy or setting is wrong); `ENGINE_*` and `EXECUTOR_*`
 * are ours or the infrastructure's. README.md lists them all and a test checks
 * that the two lists agree.
 */
export const ERROR_CODES = {
  CONFIG_INVALID: 'a configuration value (environment variable or flag) is invalid',
  POLICY_INVALID: 'a policy file does not match the policy schema',
  POLICY_TOPIC_CONFLICT: 'two policies serve the same topic',
  POLICY_NOT_FOUND: 'no loaded policy has the requested name or serves the topic',
  SCRIPT_SOURCE_MISSING: 'the task has neither a script nor a scriptRef extension property',
  SCRIPT_SOURCE_REFUSED: "the policy does not accept the task's kind of script source",
  SCRIPT_REF_INVALID: 'a scriptRef is malformed, escapes the script folder or cannot be read',
  SCRIPT_PIN_MISMATCH: "a scriptRef's sha256 pin does not match the file",
  SCRIPT_SYNTAX_ERROR: 'the script is not valid JavaScript',
  SCRIPT_INPUT_TOO_LARGE: "the task's variables exceed the policy's input limit",
  SCRIPT_VARIABLE_INVALID: 'a variable cannot be mapped between Camunda and JavaScript',
  EXECUTOR_CRASHED: 'the executor process that ran the task exited',
  EXECUTOR_UNAVAILABLE: 'no executor process is running to take the task',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error with a stable code, raised by our own code (never by a script). */
export class SandboxError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SandboxError';
    this.code = code;
  }
}

/** Realm-safe check: errors may come from another module instance or process. */
export function isSandboxError(value: unknown): value is SandboxError {
  return (
    value instanceof Error &&
    typeof (value as unknown as { code?: unknown }).code === 'string' &&
    (value as unknown as { code: string }).code in ERROR_CODES
  );
}

export function errorMessage(value: unknown): string {
  return value instanceof Error ? value.message : String(value);
}
