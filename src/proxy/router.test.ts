// The Router decides whether a lock or a user's lockout is in force by the proxy's clock, not the machine's: a
// stand-in cache holds the node, its role, the user and the lock, and a stand-in tunnel takes the dial.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { AccessDenied } from '../api/errors.ts';
import type { Kind, Lock, Node, Resource, User } from '../api/types.ts';
import type { ResourceCache } from '../cache/resources.ts';
import { BUILTIN_ROLES } from '../rbac/builtin.ts';
import { FakeClock } from '../time/clock.ts';
import { Router, type TunnelDialer } from './router.ts';

const HOST = '0b5e1c4e-8f1a-4c2b-9d3e-7a6b5c4d3e2f';
// A day the machine's clock is long past, so only the Router's own clock can put it in force.
const JANUARY = new Date('2020-01-01T00:00:00Z');
const UNTIL = '2020-01-02T00:00:00.000Z';

const node: Node = {
  kind: 'node',
  version: 'v1',
  metadata: { name: HOST, labels: {} },
  spec: { hostname: 'web-1', addr: '127.0.0.1:3022', tunnel: true, version: '1.0.0' },
};
const user = (lockedUntil?: string): User => ({
  kind: 'user',
  version: 'v1',
  metadata: { name: 'alice' },
  spec: { roles: ['access'], traits: {}, ...(lockedUntil ? { locked_until: lockedUntil } : {}) },
});
const lockOnAlice: Lock = {
  kind: 'lock',
  version: 'v1',
  metadata: { name: 'incident', expires: UNTIL },
  spec: { target: { user: 'alice' }, message: 'incident 42' },
};

function cacheOf(resources: Resource[]): ResourceCache {
  const of = (kind: Kind) => resources.filter((r) => r.kind === kind);
  return {
    get: (kind: Kind, name: string) => of(kind).find((r) => r.metadata.name === name),
    list: of,
  } as unknown as ResourceCache;
}

function routerAt(clock: FakeClock, resources: Resource[]): { router: Router; dialled: string[] } {
  const dialled: string[] = [];
  const tunnels: TunnelDialer = {
    dial: async (hostId) => {
      dialled.push(hostId);
      return new PassThrough();
    },
  };
  const all = [node, ...BUILTIN_ROLES, ...resources];
  return { router: new Router(cacheOf(all), 'unit', { tunnels, clock }), dialled };
}

const grants = { user: 'alice', roles: ['access'], traits: {} };

describe('Router lock checks', () => {
  it("refuses a lock until its expiry by the proxy's clock, and routes once that clock passes it", async () => {
    const clock = new FakeClock(JANUARY);
    const { router, dialled } = routerAt(clock, [user(), lockOnAlice]);
    await assert.rejects(router.dial(grants, 'web-1', 22, '127.0.0.1:5000'), (err: unknown) => {
      assert.ok(err instanceof AccessDenied);
      assert.equal(err.message, 'user "alice" is locked: incident 42');
      return true;
    });
    assert.deepEqual(dialled, []);
    clock.advance(2 * 86_400_000);
    (await router.dial(grants, 'web-1', 22, '127.0.0.1:5000')).destroy();
    assert.deepEqual(dialled, [HOST]);
  });

  it("refuses a user locked out until a time the proxy's clock has not reached", async () => {
    const clock = new FakeClock(JANUARY);
    const { router, dialled } = routerAt(clock, [user(UNTIL)]);
    await assert.rejects(router.dial(grants, 'web-1', 22, '127.0.0.1:5000'), /user "alice" is locked/);
    clock.advance(2 * 86_400_000);
    (await router.dial(grants, 'web-1', 22, '127.0.0.1:5000')).destroy();
    assert.deepEqual(dialled, [HOST]);
  });

  it('routes a user no lock names', async () => {
    const { router, dialled } = routerAt(new FakeClock(JANUARY), [user()]);
    (await router.dial(grants, 'web-1', 22, '127.0.0.1:5000')).destroy();
    assert.deepEqual(dialled, [HOST]);
  });
});
