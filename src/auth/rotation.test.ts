// The rotation state machine: which key signs and which keys are trusted in each phase, rollback from each
// phase, and the moves it refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadParameter } from '../api/errors.ts';
import type { CertAuthority } from '../api/types.ts';
import { nextPhase, type RotationPhase } from '../api/rotation.ts';
import { rotate } from './rotation.ts';

const key = (name: string) => ({ public: `ssh-ed25519 ${name}`, private: `private ${name}` });
const ca: CertAuthority = {
  kind: 'cert_authority',
  version: 'v1',
  metadata: { name: 'user' },
  spec: { type: 'user', cluster: 'c', active_keys: [key('old')], additional_keys: [], rotation: { phase: 'standby' } },
};
const names = (c: CertAuthority) => ({
  phase: c.spec.rotation.phase,
  signs: c.spec.active_keys.map((k) => k.public.split(' ')[1]),
  alsoTrusted: c.spec.additional_keys.map((k) => k.public.split(' ')[1]),
});

/** The CA after stepping from standby to `phase`. */
function stepTo(phase: RotationPhase): CertAuthority {
  let c = ca;
  for (let p = nextPhase('standby'); ; p = nextPhase(p)) {
    c = rotate(c, { target: p }, () => key('new'));
    if (p === phase) return c;
  }
}

describe('CA rotation phases', () => {
  it(
    'trusts both keys from init to update_servers, ' + 'signs with the new one from update_clients, ends with it alone',
    () => {
      assert.deepEqual(names(stepTo('init')), { phase: 'init', signs: ['old'], alsoTrusted: ['new'] });
      assert.deepEqual(names(stepTo('update_clients')), {
        phase: 'update_clients',
        signs: ['new'],
        alsoTrusted: ['old'],
      });
      assert.deepEqual(names(stepTo('update_servers')), {
        phase: 'update_servers',
        signs: ['new'],
        alsoTrusted: ['old'],
      });
      assert.deepEqual(names(rotate(stepTo('update_servers'), { target: 'standby' }, () => key('unused'))), {
        phase: 'standby',
        signs: ['new'],
        alsoTrusted: [],
      });
    },
  );

  it('rolls back from every phase before standby to the old key alone', () => {
    for (const phase of ['init', 'update_clients', 'update_servers'] as const) {
      assert.deepEqual(
        names(rotate(stepTo(phase), { rollback: true }, () => key('unused'))),
        { phase: 'standby', signs: ['old'], alsoTrusted: [] },
        phase,
      );
    }
  });

  it('refuses a skipped phase, a repeated step and a rollback with nothing to undo', () => {
    assert.throws(() => rotate(ca, { target: 'update_clients' }, () => key('new')), BadParameter);
    assert.throws(
      () => rotate(stepTo('init'), { target: 'init' }, () => key('new')),
      /in phase init: the next phase is update_clients, or roll back/,
    );
    assert.throws(() => rotate(ca, { target: 'standby' }, () => key('new')), BadParameter);
    assert.throws(() => rotate(ca, { rollback: true }, () => key('new')), /not being rotated/);
  });

  it('rolls a TLS CA back through phase rollback, trusting the new key until hosts have moved back', () => {
    const tls: CertAuthority = { ...ca, metadata: { name: 'tls' }, spec: { ...ca.spec, type: 'tls' } };
    const stepped = (phase: RotationPhase) => {
      let c = tls;
      for (let p = nextPhase('standby'); ; p = nextPhase(p)) {
        c = rotate(c, { target: p }, () => key('new'));
        if (p === phase) return c;
      }
    };
    for (const phase of ['update_clients', 'update_servers'] as const) {
      const back = rotate(stepped(phase), { rollback: true }, () => key('unused'));
      assert.deepEqual(names(back), { phase: 'rollback', signs: ['old'], alsoTrusted: ['new'] }, phase);
      const unused = () => key('unused');
      assert.throws(() => rotate(back, { rollback: true }, unused), /already rolling back: the next phase is standby/);
      assert.throws(() => rotate(back, { target: 'init' }, unused), /in phase rollback: the next phase is standby$/);
      const done = rotate(back, { target: 'standby' }, unused);
      assert.deepEqual(names(done), { phase: 'standby', signs: ['old'], alsoTrusted: [] });
    }
    // Nothing was signed with the new key in init: straight back to standby.
    const fromInit = rotate(stepped('init'), { rollback: true }, () => key('unused'));
    assert.deepEqual(names(fromInit), { phase: 'standby', signs: ['old'], alsoTrusted: [] });
  });

  it('makes a new key only when a rotation starts', () => {
    let made = 0;
    const make = () => (made++, key('new'));
    let c = rotate(ca, { target: 'init' }, make);
    for (const p of ['update_clients', 'update_servers', 'standby'] as const) c = rotate(c, { target: p }, make);
    assert.equal(made, 1);
  });
});
