/**
 * Batches concurrent lookups: every get(key) arriving within `windowMs` of the first pending one (up to
 * `maxBatchSize` keys) is answered by ONE fetchMany call. One Slurm request costs about the same for one job
 * as for a hundred, and slurmdbd is shared, so usage lookups of one worker become one accounting request.
 */

export interface CoalescerOptions<K, V> {
  /** Answers a batch; keys absent from the map resolve to undefined. A rejection rejects every waiter of the batch. */
  fetchMany: (keys: K[]) => Promise<Map<K, V | undefined>>;
  /** How long the first key of a batch waits for company. */
  windowMs: number;
  /** A batch this full is sent at once. */
  maxBatchSize: number;
  /**
   * Batches allowed in flight at once (default 1). While they are busy, new keys keep gathering, so a
   * slow or rate-limited Slurm gets fewer, bigger requests instead of a queue of small ones.
   */
  maxInFlight?: number;
  /**
   * Identity of a key, for de-duplication (default: the key itself). Needed for object keys such as
   * DistributorId; fetchMany receives the first key object seen for each identity and must key its map by it.
   */
  keyOf?: (key: K) => unknown;
}

interface Pending<K, V> {
  key: K;
  waiters: { resolve: (v: V | undefined) => void; reject: (e: unknown) => void }[];
}

export class Coalescer<K, V> {
  private batch = new Map<unknown, Pending<K, V>>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  /** The window (or a full batch) asked for a flush while every slot was busy. */
  private flushWanted = false;

  constructor(private readonly opts: CoalescerOptions<K, V>) {
    if (!(opts.maxBatchSize >= 1)) throw new RangeError(`maxBatchSize must be >= 1, got ${opts.maxBatchSize}`);
    if (!(opts.windowMs >= 0)) throw new RangeError(`windowMs must be >= 0, got ${opts.windowMs}`);
  }

  get(key: K): Promise<V | undefined> {
    const answer = this.enqueue(key);
    if (this.batch.size >= this.opts.maxBatchSize) this.send();
    else this.timer ??= setTimeout(() => this.send(), this.opts.windowMs);
    return answer;
  }

  /**
   * Many keys that are wanted together (a caller that already holds its whole batch): they join the
   * pending batch and it is sent at once, without waiting out the window, as soon as a slot is free.
   * Keys that fit one batch (with whatever was pending) cost one fetchMany.
   */
  getAll(keys: readonly K[]): Promise<V | undefined>[] {
    const answers = keys.map((k) => {
      const answer = this.enqueue(k);
      if (this.batch.size >= this.opts.maxBatchSize) this.send();
      return answer;
    });
    if (this.batch.size > 0) this.send();
    return answers;
  }

  private enqueue(key: K): Promise<V | undefined> {
    return new Promise<V | undefined>((resolve, reject) => {
      const id = this.opts.keyOf ? this.opts.keyOf(key) : key;
      let pending = this.batch.get(id);
      if (!pending) {
        pending = { key, waiters: [] };
        this.batch.set(id, pending);
      }
      pending.waiters.push({ resolve, reject });
    });
  }

  /** Sends the pending batch now, whatever is in flight (e.g. at shutdown). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.flushWanted = false;
    const entries = [...this.batch.values()].slice(0, this.opts.maxBatchSize);
    for (const e of entries) this.batch.delete(this.opts.keyOf ? this.opts.keyOf(e.key) : e.key);
    if (entries.length === 0) return;
    this.inFlight++;
    void this.run(entries).finally(() => {
      this.inFlight--;
      // Keys that gathered meanwhile go out now if their window passed or the batch filled up.
      if (this.batch.size > 0 && (this.flushWanted || this.batch.size >= this.opts.maxBatchSize)) this.send();
      else if (this.batch.size > 0) this.timer ??= setTimeout(() => this.send(), this.opts.windowMs);
    });
  }

  /** Sends when a slot is free; otherwise the batch keeps growing until one is. */
  private send(): void {
    if (this.inFlight >= (this.opts.maxInFlight ?? 1)) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.flushWanted = true;
      return;
    }
    this.flush();
  }

  private async run(entries: Pending<K, V>[]): Promise<void> {
    let results: Map<K, V | undefined>;
    try {
      results = await this.opts.fetchMany(entries.map((e) => e.key));
      if (!(results instanceof Map)) throw new TypeError('Coalescer: fetchMany must resolve to a Map');
    } catch (error) {
      for (const e of entries) for (const w of e.waiters) w.reject(error);
      return;
    }
    for (const e of entries) for (const w of e.waiters) w.resolve(results.get(e.key));
  }

  /** Keys waiting for the next batch. */
  get pendingCount(): number {
    return this.batch.size;
  }
}
