// Delivers committed backend changes to in-process watchers. Both backends feed it in commit order;
// each watcher owns a bounded queue, so a consumer that stops reading costs at most `limit` events
// before it is cut off with LimitExceeded (it must re-watch and re-read, as the Watch contract says).

import { LimitExceeded } from '../api/errors.ts';
import type { BackendEvent, Watcher } from './backend.ts';

export const WATCH_BUFFER_LIMIT = 10_000;

/** A committed change, as both backends describe it. */
export type Change = Exclude<BackendEvent, { type: 'init' }>;

export class BufferedWatcher implements Watcher {
  private queue: BackendEvent[] = [];
  private head = 0;
  private readers: Array<{ resolve: (r: IteratorResult<BackendEvent>) => void; reject: (err: Error) => void }> = [];
  private error: Error | undefined;
  private closed = false;

  constructor(
    private readonly prefixes: readonly string[],
    private readonly limit: number,
    private readonly onClose: (w: BufferedWatcher) => void,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  matches(key: string): boolean {
    // No prefixes means everything, as in Teleport's backend.Watch.
    return this.prefixes.length === 0 || this.prefixes.some((p) => key.startsWith(p));
  }

  push(event: BackendEvent): void {
    if (this.closed) return;
    const reader = this.readers.shift();
    if (reader) {
      reader.resolve({ value: event, done: false });
      return;
    }
    if (this.queue.length - this.head >= this.limit) {
      this.fail(new LimitExceeded(`watcher fell more than ${this.limit} events behind and was closed`));
      return;
    }
    this.queue.push(event);
  }

  /** Closes the watcher; the iterator throws `err` once (buffered events are dropped: the consumer re-reads). */
  fail(err: Error): void {
    if (this.closed) return;
    this.error = err;
    this.shutdown();
  }

  close(): void {
    if (this.closed) return;
    this.shutdown();
  }

  private shutdown(): void {
    this.closed = true;
    this.queue = [];
    this.head = 0;
    this.onClose(this);
    const readers = this.readers.splice(0);
    const first = readers[0];
    if (this.error && first) {
      first.reject(this.error);
      this.error = undefined;
      readers.shift();
    }
    for (const r of readers) r.resolve({ value: undefined, done: true });
  }

  private next(): Promise<IteratorResult<BackendEvent>> {
    if (this.head < this.queue.length) {
      const value = this.queue[this.head++]!;
      // Compact now and then instead of shift(), which is O(n) per event on a long queue.
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.error) {
      const err = this.error;
      this.error = undefined;
      return Promise.reject(err);
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }

  [Symbol.asyncIterator](): AsyncIterator<BackendEvent> {
    return {
      next: () => this.next(),
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

export class WatchFanout {
  private readonly active = new Set<BufferedWatcher>();

  constructor(private readonly limit = WATCH_BUFFER_LIMIT) {}

  /** A watcher that receives nothing until `attach`: lets a backend decide when 'init' is true. */
  create(prefixes: readonly string[]): BufferedWatcher {
    return new BufferedWatcher([...prefixes], this.limit, (w) => this.active.delete(w));
  }

  /** Sends 'init' and starts delivering every change emitted from now on. */
  attach(w: BufferedWatcher): void {
    if (w.isClosed) return;
    this.active.add(w);
    w.push({ type: 'init' });
  }

  get size(): number {
    return this.active.size;
  }

  emit(changes: readonly Change[]): void {
    if (this.active.size === 0) return;
    for (const change of changes) {
      const key = change.type === 'put' ? change.item.key : change.key;
      for (const w of this.active) if (w.matches(key)) w.push(change);
    }
  }

  /** Ends every watcher: with `err` when the backend lost its source of events, else cleanly. */
  closeAll(err?: Error): void {
    for (const w of [...this.active]) err ? w.fail(err) : w.close();
  }
}
