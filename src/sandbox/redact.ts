import type { ScriptOutcome } from './outcome.ts';

/**
 * Replaces every secret value handed to a script with `[secret:NAME]` in
 * text that leaves the task (log lines, error messages and stacks sent to the
 * engine). It cannot see a secret the script has transformed (encoded,
 * reversed, split): those would need taint tracking inside the isolate.
 */
export class Redactor {
  private readonly secrets = new Map<string, string>();

  track(handedOut: ReadonlyMap<string, string>): void {
    for (const [name, value] of handedOut) if (value.length > 0) this.secrets.set(name, value);
  }

  redact(text: string): string {
    let out = text;
    for (const [name, value] of this.secrets) out = out.split(value).join(`[secret:${name}]`);
    return out;
  }

  redactOutcome(outcome: ScriptOutcome): ScriptOutcome {
    if (this.secrets.size === 0) return outcome;
    switch (outcome.kind) {
      case 'error':
        return {
          ...outcome,
          message: this.redact(outcome.message),
          ...(outcome.stack === undefined ? {} : { stack: this.redact(outcome.stack) }),
        };
      case 'bpmnError':
        return { ...outcome, message: this.redact(outcome.message) };
      default:
        return outcome;
    }
  }
}
