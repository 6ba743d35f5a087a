// The watch-fed cache against real Auth API listeners (two listeners on one AuthServer stand for two auth
// servers on one database): it fails over between them, keeps serving while none answers, and refuses
// reads once its copy is older than the staleness bound.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { systemClock } from '../time/clock.ts';
import { createAuthClient } from '../api/client.ts';
import { ConnectionProblem } from '../api/errors.ts';
import { SqliteBackend } from '../backend/sqlite.ts';
import { serviceIdentity, authServerParts } from '../../test/fixtures/authapi.ts';
import { startAuthListener, type AuthListener } from '../auth/listener.ts';
import { AuthServer } from '../auth/server.ts';
import { ResourceCache } from './resources.ts';

const log = pino({ level: 'silent' });
const MAX_STALE_MS = 1_500;
let auth: AuthServer;
let authTLS: { keyPem: string; certPem: string; caPems: string[] };
const listeners: AuthListener[] = [];
let cache: ResourceCache;

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const hasUser = (name: string) => () => {
  try {
    return cache.get('user', name) !== undefined;
  } catch {
    return false;
  }
};

before(async () => {
  auth = await AuthServer.create(
    authServerParts({
      clusterName: 'unit',
      backend: SqliteBackend.open({ path: ':memory:' }),
      clock: systemClock,
      log,
      lockout: { maxAttempts: 5, durationMs: 60_000 },
    }),
  );
  authTLS = await serviceIdentity(auth, 'auth.unit', ['auth']);
  listeners.push(
    await startAuthListener(auth, authTLS, '127.0.0.1:0', log),
    await startAuthListener(auth, authTLS, '127.0.0.1:0', log),
  );
  const addrs = listeners.map((l) => `127.0.0.1:${l.address.port}`).join(',');
  const client = createAuthClient({
    addr: addrs,
    identity: await serviceIdentity(auth, 'proxy-unit', ['proxy']),
    timeoutMs: 2_000,
  });
  cache = new ResourceCache(client, {
    kinds: ['user', 'role', 'lock'],
    log,
    backoff: { minMs: 20, maxMs: 200 },
    maxStaleMs: MAX_STALE_MS,
  }).start();
  await cache.ready();
});

after(async () => {
  cache?.close();
  for (const l of listeners) await l.close();
  await auth.backend.close();
});

describe('ResourceCache', () => {
  it('fails over to another auth server and re-syncs when the one it watched stops', async () => {
    await auth.createUser({
      name: 'before',
      roles: ['access'],
      logins: [],
      password: 'correct horse',
      createdBy: 'test',
    });
    await waitFor('the first user', hasUser('before'));
    // Each auth server stops in turn while a user is created: whichever the watch was on, it moves once.
    for (const [i, name] of [
      [0, 'while-0-down'],
      [1, 'while-1-down'],
    ] as const) {
      const port = listeners[i]!.address.port;
      await listeners[i]!.close();
      await auth.createUser({ name, roles: ['access'], logins: [], password: 'correct horse', createdBy: 'test' });
      await waitFor(`the user created while auth server ${i} was down`, hasUser(name));
      listeners[i] = await startAuthListener(auth, authTLS, `127.0.0.1:${port}`, log);
    }
    assert.equal(cache.staleSince(), undefined);
  });

  it('serves the last copy while no auth server answers, and refuses it past the staleness bound', async () => {
    for (const l of listeners) await l.close();
    await waitFor('the watch to notice', () => cache.staleSince() !== undefined);
    assert.ok(cache.get('user', 'before'), 'reads go on from the cache right after auth went away');
    await new Promise((r) => setTimeout(r, MAX_STALE_MS + 200));
    assert.throws(() => cache.get('user', 'before'), ConnectionProblem);
    assert.throws(() => cache.list('role'), /too old to use/);
    assert.ok(cache.listAnyAge('user').length >= 3, 'listAnyAge still answers, for decisions that grant nothing');

    listeners[1] = await startAuthListener(auth, authTLS, `127.0.0.1:${listeners[1]!.address.port}`, log);
    await waitFor('the re-sync', () => cache.staleSince() === undefined);
    assert.ok(cache.get('user', 'while-1-down'));
  });
});
