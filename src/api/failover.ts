// Failover across several auth servers (or proxies in front of them): proxies and agents are given a list
// of addresses and must keep working when one of them dies. One client per address; a call that cannot
// reach its server moves on to the next address, at most once around the list, so every call stays
// bounded (addresses × the per-call timeout). Server streams (Watch) fail over on their next start: their
// callers already re-subscribe with backoff.
import { Code, ConnectError } from '@connectrpc/connect';

/** True when the server was not reached or the connection died: another address may well answer. */
export function isUnreachable(err: unknown): boolean {
  if (err instanceof ConnectError) return err.code === Code.Unavailable;
  // Socket and TLS errors that surface before connect wraps them (ECONNREFUSED, ECONNRESET, EPIPE).
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E(CONNREFUSED|CONNRESET|PIPE|HOSTUNREACH|NETUNREACH|TIMEDOUT)$/.test(code);
}

/** True when the server took too long: the call may have run, so it is not retried, but the next one goes elsewhere
 * (an auth server that hangs, or a partition, looks like this rather than like a refused connection). */
function isTimeout(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.DeadlineExceeded;
}

/** Splits `a:1,b:2` into its addresses (empty entries dropped). */
export function splitAddrList(list: string): string[] {
  return list
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
}

export interface FailoverState {
  /** Index of the address calls go to first. */
  current: number;
}

/**
 * One client that behaves like `clients[current]` and moves to the next one when a server is
 * unreachable. Every method of a connect client is either unary (returns a Promise) or server-streaming
 * (returns an AsyncIterable); both are handled, anything else passes through.
 */
export function failoverClient<T extends object>(
  clients: T[],
  state: FailoverState = { current: Math.floor(Math.random() * clients.length) },
): T {
  if (clients.length === 1) return clients[0]!;
  const advanceFrom = (i: number) => {
    // Only the first caller to see address i fail moves the pointer; concurrent failures do not skip past
    // a healthy address.
    if (state.current === i) state.current = (i + 1) % clients.length;
  };
  const method =
    (prop: string | symbol) =>
    (...args: unknown[]) => {
      const first = state.current;
      const probe = Reflect.get(clients[first]!, prop) as (...a: unknown[]) => unknown;
      const result = probe.apply(clients[first], args);
      if (result instanceof Promise) {
        return (async () => {
          let i = first;
          let pending = result;
          for (let attempt = 1; ; attempt++) {
            try {
              return await pending;
            } catch (err) {
              if (isTimeout(err)) advanceFrom(i);
              if (!isUnreachable(err) || attempt >= clients.length) throw err;
              advanceFrom(i);
              i = state.current;
              const fn = Reflect.get(clients[i]!, prop) as (...a: unknown[]) => Promise<unknown>;
              pending = fn.apply(clients[i], args);
            }
          }
        })();
      }
      if (result && typeof result === 'object' && Symbol.asyncIterator in result) {
        return (async function* () {
          try {
            yield* result as AsyncIterable<unknown>;
          } catch (err) {
            if (isUnreachable(err) || isTimeout(err)) advanceFrom(first);
            throw err;
          }
        })();
      }
      return result;
    };
  return new Proxy(clients[0]!, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? method(prop) : value;
    },
  });
}
