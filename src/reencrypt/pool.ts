/** A bounded pool of concurrent tasks: callers wait for a free slot before starting one. */
export class WorkerPool {
  readonly #inFlight = new Set<Promise<void>>();

  constructor(readonly size: number) {}

  /** Resolves once fewer than `size` tasks run. */
  async whenFree(): Promise<void> {
    while (this.#inFlight.size >= this.size) await Promise.race(this.#inFlight);
  }

  /** Starts a task; it must handle its own errors (a rejection is swallowed by drain only). */
  run(task: () => Promise<void>): void {
    const tracked: Promise<void> = task().finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }

  /** Waits for every task started so far. */
  async drain(): Promise<void> {
    await Promise.all(this.#inFlight);
  }
}
