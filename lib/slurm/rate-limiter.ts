/**
 * Token bucket shared by all calls of one client: slurmdbd is the bottleneck of a real site and heavy polling
 * has overloaded it, so a client never sends more than `ratePerSecond` requests per second (bursts up to
 * `burst`). Waiters are served in call order: each take() reserves the next token, possibly in the future.
 */
import { abortableSleep } from './abortable-sleep.js';

export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly burst: number;

  constructor(
    private readonly ratePerSecond: number,
    burst?: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(ratePerSecond > 0)) throw new RangeError(`maxRequestsPerSecond must be > 0, got ${ratePerSecond}`);
    this.burst = Math.max(1, burst ?? Math.min(ratePerSecond, 10));
    this.tokens = this.burst;
    this.last = this.now();
  }

  /**
   * Resolves when the caller may send one request. An aborted `signal` rejects the wait; the token
   * stays spent, so giving up never lets the rate exceed the cap.
   */
  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (this.ratePerSecond === Infinity) return Promise.resolve();
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = now;
    this.tokens -= 1;
    if (this.tokens >= 0) return Promise.resolve();
    // Negative tokens are reservations of later callers; this one's token arrives after the deficit refills.
    const waitMs = (-this.tokens / this.ratePerSecond) * 1000;
    return abortableSleep(waitMs, signal);
  }
}
