import { watch, type FSWatcher } from 'node:fs';
import { EventEmitter } from 'node:events';

import { loadPolicyDir, type PolicySet } from './load.ts';

/** Changes on disk come in bursts (editors write, rename, chmod): wait for quiet. */
const DEBOUNCE_MS = 200;

export interface PolicyStoreEvents {
  applied: [PolicySet];
  rejected: [Error];
}

/**
 * The current policy set of a folder, re-read when the folder changes. A
 * change that does not validate is rejected and the last good set stays.
 */
export class PolicyStore extends EventEmitter<PolicyStoreEvents> {
  readonly dir: string;
  private currentSet: PolicySet;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** Loads the folder once; throws PolicyError if it is invalid. */
  constructor(dir: string) {
    super();
    this.dir = dir;
    this.currentSet = loadPolicyDir(dir);
  }

  get current(): PolicySet {
    return this.currentSet;
  }

  watch(): void {
    if (this.watcher) return;
    this.watcher = watch(this.dir, () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.reload(), DEBOUNCE_MS);
    });
  }

  /** Re-reads the folder now; returns whether the new set was applied. */
  reload(): boolean {
    try {
      this.currentSet = loadPolicyDir(this.dir);
    } catch (err) {
      this.emit('rejected', err as Error);
      return false;
    }
    this.emit('applied', this.currentSet);
    return true;
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
