import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Code } from '@connectrpc/connect';
import * as errors from './errors.ts';
import { ERROR_CATALOGUE, ERROR_CLASSES, WardError, errorFromCode, type ErrorCode } from './errors.ts';

const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];
/** Every error class this module exports, found by what it is rather than by a list kept by hand. */
const exported = (Object.values(errors) as unknown[]).filter(
  (v): v is new (message?: string) => WardError => typeof v === 'function' && v.prototype instanceof WardError,
);
/** Connect's name for a code on the wire (Code.PermissionDenied is "permission_denied"). */
const rpcName = (code: Code) => Code[code].replace(/[A-Z]/g, (c, i: number) => (i ? '_' : '') + c.toLowerCase());

describe('error catalogue', () => {
  it('gives every error class its own code, an HTTP error status and an RPC code', () => {
    assert.ok(exported.length >= codes.length, 'the walk found the classes');
    const seen = new Map<string, string>();
    for (const cls of exported) {
      const err = new cls('x');
      assert.ok(codes.includes(err.code), `${cls.name} has code ${err.code}, which is not in the catalogue`);
      assert.ok(!seen.has(err.code), `${cls.name} reuses ${err.code} of ${seen.get(err.code)}`);
      seen.set(err.code, cls.name);
      assert.equal(err.name, cls.name);
      assert.ok(err.httpStatus >= 400 && err.httpStatus <= 599, `${cls.name}: HTTP ${err.httpStatus}`);
      assert.ok(err.rpcCode in Code && err.rpcCode !== Code.Canceled, `${cls.name}: RPC ${err.rpcCode}`);
    }
    assert.deepEqual([...seen.keys()].sort(), [...codes].sort(), 'a catalogue code without an exported class');
  });

  it('rebuilds each error from its code and message, as a client does from the wire', () => {
    for (const code of codes) {
      const err = errorFromCode(code, 'one line');
      assert.ok(err instanceof ERROR_CLASSES[code], code);
      assert.equal(err.code, code);
      assert.equal(err.message, 'one line');
    }
  });

  it('takes a code it does not know, or an inherited property name, for a connection problem', () => {
    for (const code of ['ERR_FROM_THE_FUTURE', '', 'toString', '__proto__', 'constructor']) {
      const err = errorFromCode(code, 'm');
      assert.ok(err instanceof errors.ConnectionProblem && err.code === 'ERR_CONNECTION_PROBLEM', code);
    }
  });

  it('keeps the statuses clients have always seen', () => {
    const status = (cls: new (m?: string) => WardError) => [new cls('x').httpStatus, new cls('x').rpcCode];
    assert.deepEqual(status(errors.AccessDenied), [403, Code.PermissionDenied]);
    assert.deepEqual(status(errors.NotSignedIn), [401, Code.Unauthenticated]);
    assert.deepEqual(status(errors.NotFound), [404, Code.NotFound]);
    assert.deepEqual(status(errors.BadParameter), [400, Code.InvalidArgument]);
    assert.deepEqual(status(errors.LimitExceeded), [429, Code.ResourceExhausted]);
    assert.deepEqual(status(errors.BodyTooLarge), [413, Code.ResourceExhausted]);
    assert.deepEqual(status(errors.ConnectionProblem), [503, Code.Unavailable]);
    assert.deepEqual(status(errors.Internal), [500, Code.Internal]);
  });

  it('makes the storage errors connection problems, so callers fail over on them as before', () => {
    assert.ok(new errors.StorageUnavailable('x') instanceof errors.ConnectionProblem);
    assert.ok(new errors.StorageLocked('x') instanceof errors.ConnectionProblem);
  });

  it('is documented row for row in docs/auth-api.md', () => {
    const doc = readFileSync(new URL('../../docs/auth-api.md', import.meta.url), 'utf8');
    const rows = doc.split('\n').filter((l) => /^\| `ERR_[A-Z_]+` \|/.test(l));
    assert.equal(rows.length, codes.length, 'one row per code, no more');
    for (const code of codes) {
      const err = new ERROR_CLASSES[code]('x');
      const row = `| \`${code}\` | \`${err.name}\` | ${err.httpStatus} | \`${rpcName(err.rpcCode)}\` |`;
      assert.ok(
        rows.some((r) => r.startsWith(row)),
        `docs/auth-api.md lacks ${row}`,
      );
    }
  });
});
