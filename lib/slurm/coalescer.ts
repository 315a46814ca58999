/**
 * Batches concurrent lookups: every get(key) arriving within `windowMs` of the first pending one (up to
 * `maxBatchSize` keys) is answered by ONE fetchMany call. One Slurm request costs about the same for one job
 * as for a hundred, and slurmdbd is shared, so usage lookups of one worker become one accounting request.
 */

export interface CoalescerOptions<K, V> {
  /**
   * Answers a batch; keys absent from the map resolve to undefined. A rejection rejects every waiter of the batch.
   * `signal` aborts once every waiter of the batch has gone (their activities were cancelled): nobody wants the answer.
   */
  fetchMany: (keys: K[], signal: AbortSignal) => Promise<Map<K, V | undefined>>;
  /** How long the first key of a batch waits for company. */
  windowMs: number;
  /** A batch this full is sent at once. */
  maxBatchSize: number;
  /**
   * A batch this big is sent without waiting out the window when a request slot is free (default:
   * maxBatchSize). In a burst the batch reaches it long before the window ends, and its callers
   * (workflow tasks holding slots, for the local first attempt) are answered sooner; while every slot
   * is busy, batches still grow up to maxBatchSize.
   */
  flushAt?: number;
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

interface Waiter<V> {
  resolve: (v: V | undefined) => void;
  reject: (e: unknown) => void;
}

interface Pending<K, V> {
  key: K;
  waiters: Set<Waiter<V>>;
  /** Set once the key's batch is sent. */
  sent?: { entries: Pending<K, V>[]; controller: AbortController };
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
    if (opts.flushAt !== undefined && !(opts.flushAt >= 1))
      throw new RangeError(`flushAt must be >= 1, got ${opts.flushAt}`);
  }

  /**
   * The value for `key`, from the batch it joins. An aborted `signal` rejects this caller at once with
   * the signal's reason; the batch goes on for its other callers, or is dropped when none remain.
   */
  get(key: K, signal?: AbortSignal): Promise<V | undefined> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    const answer = this.enqueue(key, signal);
    if (this.batch.size >= this.opts.maxBatchSize) this.send();
    // A batch big enough to be worth a request goes out at once when a slot is free.
    else if (this.batch.size >= this.flushAt && this.inFlight < this.maxInFlight) this.send();
    else this.timer ??= setTimeout(() => this.send(), this.opts.windowMs);
    return answer;
  }

  /**
   * Many keys that are wanted together (a caller that already holds its whole batch): they join the
   * pending batch and it is sent at once, without waiting out the window, as soon as a slot is free.
   * Keys that fit one batch (with whatever was pending) cost one fetchMany. An aborted `signal`
   * rejects every one of them, as for get().
   */
  getAll(keys: readonly K[], signal?: AbortSignal): Promise<V | undefined>[] {
    if (signal?.aborted) return keys.map(() => Promise.reject(signal.reason as Error));
    const answers = keys.map((k) => {
      const answer = this.enqueue(k, signal);
      if (this.batch.size >= this.opts.maxBatchSize) this.send();
      return answer;
    });
    if (this.batch.size > 0) this.send();
    return answers;
  }

  /** Adds a waiter for `key` to the pending batch; the caller decides when the batch goes out. */
  private enqueue(key: K, signal?: AbortSignal): Promise<V | undefined> {
    return new Promise<V | undefined>((resolve, reject) => {
      const id = this.opts.keyOf ? this.opts.keyOf(key) : key;
      let pending = this.batch.get(id);
      if (!pending) {
        pending = { key, waiters: new Set() };
        this.batch.set(id, pending);
      }
      const waiter: Waiter<V> = { resolve, reject };
      if (signal) {
        const entry = pending;
        const onAbort = () => this.leave(id, entry, waiter, signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        waiter.resolve = (v) => {
          signal.removeEventListener('abort', onAbort);
          resolve(v);
        };
        waiter.reject = (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e as Error);
        };
      }
      pending.waiters.add(waiter);
    });
  }

  /** A caller gave up: unsent keys nobody waits for leave the batch; a sent batch nobody waits for is aborted. */
  private leave(id: unknown, pending: Pending<K, V>, waiter: Waiter<V>, reason: unknown): void {
    if (!pending.waiters.delete(waiter)) return;
    waiter.reject(reason);
    if (pending.waiters.size > 0) return;
    if (!pending.sent) {
      if (this.batch.get(id) === pending) this.batch.delete(id);
      if (this.batch.size === 0 && this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    } else if (pending.sent.entries.every((e) => e.waiters.size === 0)) {
      pending.sent.controller.abort(reason);
    }
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
      // Keys that gathered meanwhile go out now if their window passed or the batch is big enough.
      if (this.batch.size > 0 && (this.flushWanted || this.batch.size >= this.flushAt)) this.send();
      else if (this.batch.size > 0) this.timer ??= setTimeout(() => this.send(), this.opts.windowMs);
    });
  }

  private get maxInFlight(): number {
    return this.opts.maxInFlight ?? 1;
  }

  private get flushAt(): number {
    return Math.min(this.opts.flushAt ?? this.opts.maxBatchSize, this.opts.maxBatchSize);
  }

  /** Sends when a slot is free; otherwise the batch keeps growing until one is. */
  private send(): void {
    if (this.inFlight >= this.maxInFlight) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.flushWanted = true;
      return;
    }
    this.flush();
  }

  private async run(entries: Pending<K, V>[]): Promise<void> {
    const sent = { entries, controller: new AbortController() };
    for (const e of entries) e.sent = sent;
    let results: Map<K, V | undefined>;
    try {
      results = await this.opts.fetchMany(
        entries.map((e) => e.key),
        sent.controller.signal,
      );
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
