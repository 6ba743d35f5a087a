// The identity check against the zod schema it replaced (kept here as the reference): the two must accept the
// same identities and give the same result, on hand-picked edge cases and on random corruptions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { corruptedJSON } from '../../test/fixtures/corrupt.ts';
import { parseIdentity } from './certinfo.ts';

const name = z.string().min(1).max(255);
const reference = z
  .strictObject({
    username: name,
    roles: z.array(name).max(1000),
    logins: z.array(name).max(1000),
    traits: z.record(name, z.array(z.string().max(4096)).max(1000)).optional(),
    cluster: name,
    expires: z.iso.datetime(),
    kind: z.enum(['user', 'host']),
    hostId: name.optional(),
    systemRoles: z.array(name).max(100).optional(),
    routeToCluster: name.optional(),
  })
  .refine((id) => id.kind !== 'host' || id.hostId !== undefined, 'a host identity needs a hostId');

type Doc = Record<string, unknown>;

const user = (): Doc => ({
  username: 'alice',
  roles: ['access', 'editor'],
  logins: ['alice', 'root'],
  traits: { logins: ['alice'], teams: ['db', 'web'] },
  cluster: 'lab',
  expires: '2026-11-27T21:00:00.000Z',
  kind: 'user',
  routeToCluster: 'lab',
});

const host = (): Doc => ({
  username: 'node-1',
  roles: [],
  logins: [],
  cluster: 'lab',
  expires: '2027-11-27T21:00:00.000Z',
  kind: 'host',
  hostId: '9b2e3c4d-1f00-4a5b-8c7d-0e1f2a3b4c5d',
  systemRoles: ['node'],
});

const mutations: Array<[string, () => Doc, (d: Doc) => void]> = [
  ['a user as issued', user, () => {}],
  ['a host as issued', host, () => {}],
  ['a host without hostId', host, (d) => delete d.hostId],
  [
    'a user without traits or routeToCluster',
    user,
    (d) => {
      delete d.traits;
      delete d.routeToCluster;
    },
  ],
  [
    'an unknown field',
    user,
    (d) => {
      d.admin = true;
    },
  ],
  [
    'roles as a string',
    user,
    (d) => {
      d.roles = 'dev';
    },
  ],
  ['no roles', user, (d) => delete d.roles],
  ['no logins', user, (d) => delete d.logins],
  [
    'an empty username',
    user,
    (d) => {
      d.username = '';
    },
  ],
  [
    'a username of 255 characters',
    user,
    (d) => {
      d.username = 'u'.repeat(255);
    },
  ],
  [
    'a username of 256 characters',
    user,
    (d) => {
      d.username = 'u'.repeat(256);
    },
  ],
  [
    '1,000 roles',
    user,
    (d) => {
      d.roles = Array.from({ length: 1000 }, (_, i) => `r${i}`);
    },
  ],
  [
    '1,001 roles',
    user,
    (d) => {
      d.roles = Array.from({ length: 1001 }, (_, i) => `r${i}`);
    },
  ],
  [
    'an empty role',
    user,
    (d) => {
      d.roles = [''];
    },
  ],
  [
    'a numeric login',
    user,
    (d) => {
      d.logins = [0];
    },
  ],
  [
    '100 system roles',
    host,
    (d) => {
      d.systemRoles = Array.from({ length: 100 }, () => 'node');
    },
  ],
  [
    '101 system roles',
    host,
    (d) => {
      d.systemRoles = Array.from({ length: 101 }, () => 'node');
    },
  ],
  [
    'traits as an array',
    user,
    (d) => {
      d.traits = ['a'];
    },
  ],
  [
    'traits as null',
    user,
    (d) => {
      d.traits = null;
    },
  ],
  [
    'a trait value of 4,096 characters',
    user,
    (d) => {
      d.traits = { t: ['v'.repeat(4096)] };
    },
  ],
  [
    'a trait value of 4,097 characters',
    user,
    (d) => {
      d.traits = { t: ['v'.repeat(4097)] };
    },
  ],
  [
    '1,001 trait values',
    user,
    (d) => {
      d.traits = { t: Array.from({ length: 1001 }, () => 'v') };
    },
  ],
  [
    'a trait name of 256 characters',
    user,
    (d) => {
      d.traits = { ['t'.repeat(256)]: [] };
    },
  ],
  [
    'an empty trait name',
    user,
    (d) => {
      d.traits = { '': ['v'] };
    },
  ],
  [
    'a trait as a string',
    user,
    (d) => {
      d.traits = { t: 'v' };
    },
  ],
  [
    'kind "admin"',
    user,
    (d) => {
      d.kind = 'admin';
    },
  ],
  ['no kind', user, (d) => delete d.kind],
  [
    'an empty cluster',
    user,
    (d) => {
      d.cluster = '';
    },
  ],
  [
    'an empty routeToCluster',
    user,
    (d) => {
      d.routeToCluster = '';
    },
  ],
  [
    'an empty hostId',
    host,
    (d) => {
      d.hostId = '';
    },
  ],
  [
    'expires without a fraction',
    user,
    (d) => {
      d.expires = '2026-11-27T21:00:00Z';
    },
  ],
  [
    'expires with microseconds',
    user,
    (d) => {
      d.expires = '2026-11-27T21:00:00.123456Z';
    },
  ],
  [
    'expires without seconds',
    user,
    (d) => {
      d.expires = '2026-11-27T21:00Z';
    },
  ],
  [
    'expires with an offset',
    user,
    (d) => {
      d.expires = '2026-11-27T22:00:00+01:00';
    },
  ],
  [
    'expires without a zone',
    user,
    (d) => {
      d.expires = '2026-11-27T21:00:00';
    },
  ],
  [
    'expires on 30 February',
    user,
    (d) => {
      d.expires = '2026-02-30T00:00:00Z';
    },
  ],
  [
    'expires on 29 February 2028',
    user,
    (d) => {
      d.expires = '2028-02-29T00:00:00Z';
    },
  ],
  [
    'expires on 29 February 2100',
    user,
    (d) => {
      d.expires = '2100-02-29T00:00:00Z';
    },
  ],
  [
    'expires on 29 February 2000',
    user,
    (d) => {
      d.expires = '2000-02-29T00:00:00Z';
    },
  ],
  [
    'expires on 31 April',
    user,
    (d) => {
      d.expires = '2026-04-31T00:00:00Z';
    },
  ],
  [
    'expires in month 13',
    user,
    (d) => {
      d.expires = '2026-13-01T00:00:00Z';
    },
  ],
  [
    'expires on day 0',
    user,
    (d) => {
      d.expires = '2026-01-00T00:00:00Z';
    },
  ],
  [
    'expires at hour 24',
    user,
    (d) => {
      d.expires = '2026-11-27T24:00:00Z';
    },
  ],
  [
    'expires at second 60',
    user,
    (d) => {
      d.expires = '2026-11-27T23:59:60Z';
    },
  ],
  [
    'expires in year 0000',
    user,
    (d) => {
      d.expires = '0000-02-29T00:00:00Z';
    },
  ],
  [
    'expires as a number',
    user,
    (d) => {
      d.expires = 1_800_000_000_000;
    },
  ],
  [
    'expires with a lowercase z',
    user,
    (d) => {
      d.expires = '2026-11-27T21:00:00z';
    },
  ],
  [
    'expires with a trailing newline',
    user,
    (d) => {
      d.expires = '2026-11-27T21:00:00Z\n';
    },
  ],
  ['the identity as an array', user, () => {}],
];

function agree(data: unknown, what: string): boolean {
  const expected = reference.safeParse(data);
  let got: unknown;
  try {
    got = parseIdentity(data);
  } catch (err) {
    assert.match((err as Error).message, /^invalid identity: /);
    assert.ok(!expected.success, `refused an identity the zod schema accepts (${what}): ${(err as Error).message}`);
    return false;
  }
  assert.ok(expected.success, `accepted an identity the zod schema refuses (${what}): ${JSON.stringify(data)}`);
  assert.deepEqual(got, expected.data);
  return true;
}

describe('the certificate identity check', () => {
  for (const [what, make, change] of mutations) {
    it(`agrees with the zod schema on ${what}`, () => {
      const doc = make();
      change(doc);
      agree(JSON.parse(JSON.stringify(what === 'the identity as an array' ? [doc] : doc)), what);
    });
  }

  it('accepts identities as issued, with absent optional fields left out of the copy', () => {
    assert.deepEqual(parseIdentity(user()), user());
    const withUndefined = { ...host(), traits: undefined, routeToCluster: undefined };
    assert.deepEqual(parseIdentity(withUndefined), host());
  });

  it('says which field is wrong', () => {
    assert.throws(() => parseIdentity({ ...user(), roles: 'dev' }), /^BadParameter|invalid identity: roles/);
    assert.throws(() => parseIdentity({ ...user(), expires: 'soon' }), /invalid identity: expires/);
    assert.throws(() => parseIdentity({ ...host(), hostId: undefined }), /a host identity needs a hostId/);
  });

  it('refuses the holes of a sparse array, which JSON never makes but a caller in process could', () => {
    // biome-ignore lint/suspicious/noSparseArray: the hole is the input under test
    const sparse = { ...user(), roles: [, 'access'] };
    assert.equal(reference.safeParse(sparse).success, false);
    assert.throws(() => parseIdentity(sparse), /invalid identity: roles\.0/);
  });

  it('agrees with the zod schema on random corruptions', () => {
    let accepted = 0;
    let refused = 0;
    for (const base of [JSON.stringify(user()), JSON.stringify(host())]) {
      for (const { wire, data } of corruptedJSON(base, 4000)) {
        if (agree(data, wire)) accepted++;
        else refused++;
      }
    }
    assert.ok(
      accepted > 100 && refused > 100,
      `the corpus exercised both outcomes (${accepted} accepted, ${refused} refused)`,
    );
  });
});
