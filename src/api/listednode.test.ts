// The listing fast path against the schema it stands in for: it must never accept a node nodeSchema refuses,
// must give what nodeSchema gives when it does accept, and must accept the nodes the auth server writes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { corruptedJSON } from '../../test/fixtures/corrupt.ts';
import { fastListedNode } from './listednode.ts';
import { nodeSchema } from './types.ts';

interface Doc {
  kind: string;
  version: string;
  metadata: { name: string; labels?: Record<string, string>; expires?: string; revision?: string } & Record<
    string,
    unknown
  >;
  spec: { hostname: string; addr: string; tunnel?: boolean; version: string } & Record<string, unknown>;
  [key: string]: unknown;
}

const written = (): Doc => ({
  kind: 'node',
  version: 'v1',
  metadata: {
    name: '9b2e3c4d-1f00-4a5b-8c7d-0e1f2a3b4c5d',
    labels: { env: 'prod', rack: 'r1' },
    expires: '2026-11-27T20:15:00.123Z',
    revision: '42',
  },
  spec: { hostname: 'db-1', addr: '10.0.0.5:3022', tunnel: false, version: '0.1.0' },
});

/** One change each: a field removed, retyped, too long, unknown, or a value at the edge of what is allowed. */
const mutations: Array<[string, (d: Doc) => void]> = [
  ['as written', () => {}],
  [
    'without labels, description, expires or revision',
    (d) => {
      const m = d.metadata as Record<string, unknown>;
      delete m.labels;
      delete m.expires;
      delete m.revision;
    },
  ],
  [
    'with a description',
    (d) => {
      (d.metadata as Record<string, unknown>).description = 'the primary';
    },
  ],
  [
    'without tunnel (defaults to false)',
    (d) => {
      delete (d.spec as Record<string, unknown>).tunnel;
    },
  ],
  [
    'tunnelled',
    (d) => {
      d.spec.tunnel = true;
    },
  ],
  [
    'another kind',
    (d) => {
      d.kind = 'user';
    },
  ],
  [
    'another version',
    (d) => {
      d.version = 'v2';
    },
  ],
  [
    'an unknown top-level key',
    (d) => {
      d.extra = 1;
    },
  ],
  [
    'an unknown metadata key',
    (d) => {
      (d.metadata as Record<string, unknown>).owner = 'x';
    },
  ],
  [
    'an unknown spec key',
    (d) => {
      (d.spec as Record<string, unknown>).os = 'linux';
    },
  ],
  [
    'a __proto__ key in metadata',
    (d) => {
      d.metadata = JSON.parse(JSON.stringify(d.metadata).replace('{', '{"__proto__":{"x":1},'));
    },
  ],
  [
    'a __proto__ label',
    (d) => {
      d.metadata.labels = JSON.parse('{"__proto__":"x"}');
    },
  ],
  [
    'no name',
    (d) => {
      delete (d.metadata as Record<string, unknown>).name;
    },
  ],
  [
    'a name with a space',
    (d) => {
      d.metadata.name = 'a b';
    },
  ],
  [
    'a name of 129 characters',
    (d) => {
      d.metadata.name = 'a'.repeat(129);
    },
  ],
  [
    'a name of 128 characters',
    (d) => {
      d.metadata.name = 'a'.repeat(128);
    },
  ],
  [
    'a name starting with a dot',
    (d) => {
      d.metadata.name = '.x';
    },
  ],
  [
    'a label key of 257 characters',
    (d) => {
      d.metadata.labels = { ['k'.repeat(257)]: 'v' };
    },
  ],
  [
    'a label value of 1,025 characters',
    (d) => {
      d.metadata.labels = { k: 'v'.repeat(1025) };
    },
  ],
  [
    'a label value of 1,024 characters',
    (d) => {
      d.metadata.labels = { k: 'v'.repeat(1024) };
    },
  ],
  [
    'a numeric label value',
    (d) => {
      (d.metadata.labels as Record<string, unknown>).n = 1;
    },
  ],
  [
    'labels as an array',
    (d) => {
      (d.metadata as Record<string, unknown>).labels = ['a'];
    },
  ],
  [
    'a description of 1,025 characters',
    (d) => {
      (d.metadata as Record<string, unknown>).description = 'd'.repeat(1025);
    },
  ],
  [
    'a numeric revision',
    (d) => {
      (d.metadata as Record<string, unknown>).revision = 42;
    },
  ],
  [
    'expires on 30 February',
    (d) => {
      d.metadata.expires = '2026-02-30T00:00:00.000Z';
    },
  ],
  [
    'expires on a leap day',
    (d) => {
      d.metadata.expires = '2028-02-29T00:00:00.000Z';
    },
  ],
  [
    'expires without milliseconds',
    (d) => {
      d.metadata.expires = '2026-11-27T20:15:00Z';
    },
  ],
  [
    'expires with an offset',
    (d) => {
      d.metadata.expires = '2026-11-27T21:15:00+01:00';
    },
  ],
  [
    'expires at hour 24',
    (d) => {
      d.metadata.expires = '2026-11-27T24:00:00.000Z';
    },
  ],
  [
    'expires as a date only',
    (d) => {
      d.metadata.expires = '2026-11-27';
    },
  ],
  [
    'expires as a number',
    (d) => {
      (d.metadata as Record<string, unknown>).expires = 1_800_000_000_000;
    },
  ],
  [
    'a hostname of 257 characters',
    (d) => {
      d.spec.hostname = 'h'.repeat(257);
    },
  ],
  [
    'a hostname of 256 characters',
    (d) => {
      d.spec.hostname = 'h'.repeat(256);
    },
  ],
  [
    'a numeric addr',
    (d) => {
      (d.spec as Record<string, unknown>).addr = 22;
    },
  ],
  [
    'a version of 65 characters',
    (d) => {
      d.spec.version = 'v'.repeat(65);
    },
  ],
  [
    'tunnel as a string',
    (d) => {
      (d.spec as Record<string, unknown>).tunnel = 'yes';
    },
  ],
  [
    'spec as null',
    (d) => {
      (d as Record<string, unknown>).spec = null;
    },
  ],
  [
    'metadata as an array',
    (d) => {
      (d as Record<string, unknown>).metadata = [];
    },
  ],
];

describe('the node listing fast path', () => {
  for (const [what, change] of mutations) {
    it(`agrees with nodeSchema on a node ${what}`, () => {
      const doc = written();
      change(doc);
      const wire = JSON.stringify(doc);
      const expected = nodeSchema.safeParse(JSON.parse(wire));
      const fast = fastListedNode(JSON.parse(wire));
      if (fast === undefined) return; // handed to nodeSchema: always safe
      assert.ok(expected.success, `the fast path accepted a node nodeSchema refuses: ${wire}`);
      assert.deepEqual(fast, expected.data);
    });
  }

  it('accepts the nodes the auth server writes, so the fast path is taken', () => {
    for (const [what, change] of mutations.slice(0, 5)) {
      const doc = written();
      change(doc);
      assert.ok(fastListedNode(JSON.parse(JSON.stringify(doc))), what);
    }
  });

  it('agrees with nodeSchema on random corruptions of a written node', () => {
    let accepted = 0;
    for (const { wire, data } of corruptedJSON(JSON.stringify(written()), 5000)) {
      const fast = fastListedNode(structuredClone(data));
      if (fast === undefined) continue;
      accepted++;
      const expected = nodeSchema.safeParse(data);
      assert.ok(expected.success, `the fast path accepted a node nodeSchema refuses: ${wire}`);
      assert.deepEqual(fast, expected.data);
    }
    assert.ok(accepted > 100, `the corpus exercised the fast path ${accepted} times`);
  });
});
