/**
 * Who watches which job (a rollout, a host update) live, in memory only: the listeners of each job's
 * updates, for the Server-Sent Events views of `status --watch`.
 */
export class JobFeed<U> {
  private readonly listeners = new Map<string, Set<(u: U) => void>>();

  subscribe(jobId: string, listener: (u: U) => void): () => void {
    const set = this.listeners.get(jobId) ?? new Set();
    set.add(listener);
    this.listeners.set(jobId, set);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(jobId);
    };
  }

  emit(jobId: string, update: U): void {
    for (const listener of this.listeners.get(jobId) ?? []) listener(update);
  }
}
