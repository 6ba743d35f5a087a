// Certificate authority rotation, in phases (Teleport's manual rotation):
//
//   standby ──> init ──> update_clients ──> update_servers ──> standby
//                 └──────────┴─────────────────┴──(rollback)──> standby, with the old key
//
// - init: a new key is made and added to the CA's additional keys, so everything that trusts the CA trusts both:
//   nodes and proxies through their watch-fed caches, clients through the known_hosts lines and CA bundle `wsh
//   login` writes, outside tools through `wctl auth export`. Certificates are still signed with the old key.
// - update_clients: the new key signs; the old one stays trusted, so certificates issued before keep working.
// - update_servers: nodes and proxies move their host certificates to the signing key (host/renewal.ts). For
//   the user CA nothing changes; it is the last point to roll back with every old certificate still valid.
// - standby: the old key is dropped and no longer trusted: certificates it signed stop working.
// Rolling back from any phase before standby leaves the old key alone in the CA, as before the rotation (and
// hosts that had moved to the new key move back).
//
// The TLS CA authenticates the hosts themselves (mutual TLS to the auth server and the proxies), so a host holding a
// certificate from the new key could not renew it back once that key is no longer trusted. Its rollback from
// update_clients or update_servers therefore stops in phase `rollback`: the old key signs again and hosts move back
// to it while both stay trusted; the next step (to standby) drops the new key. The database CA does not rotate yet.
import { BadParameter } from '../api/errors.ts';
import { nextPhase, type RotationPhase } from '../api/rotation.ts';
import type { CertAuthority } from '../api/types.ts';

type CAKey = CertAuthority['spec']['active_keys'][number];

/** The CA types that rotate (the database CA does not yet: its servers are outside Ward). */
export const ROTATABLE = new Set<string>(['user', 'host', 'tls']);

/**
 * The CA after moving it to `target`, or after a rollback. `newKey` makes the key a rotation starts with (init).
 * Throws BadParameter for a move that skips a phase or goes backwards.
 */
export function rotate(
  ca: CertAuthority,
  move: { target: RotationPhase } | { rollback: true },
  newKey: () => CAKey,
): CertAuthority {
  const { phase } = ca.spec.rotation;
  const withKeys = (active: CAKey[], additional: CAKey[], to: RotationPhase): CertAuthority => ({
    ...ca,
    spec: { ...ca.spec, active_keys: active, additional_keys: additional, rotation: { phase: to } },
  });
  if ('rollback' in move) {
    if (phase === 'standby')
      throw new BadParameter(`the ${ca.spec.type} CA is not being rotated: nothing to roll back`);
    if (phase === 'rollback') {
      throw new BadParameter(`the ${ca.spec.type} CA is already rolling back: the next phase is standby`);
    }
    // Before update_clients the old key is still the active one; from it on, the old key is the additional one.
    if (phase === 'init') return withKeys(ca.spec.active_keys, [], 'standby');
    // TLS: the new key stays trusted (not signing) while hosts move back to the old one (above).
    if (ca.spec.type === 'tls') return withKeys(ca.spec.additional_keys, ca.spec.active_keys, 'rollback');
    return withKeys(ca.spec.additional_keys, [], 'standby');
  }
  const { target } = move;
  if (target !== nextPhase(phase)) {
    const orRollBack = phase === 'standby' || phase === 'rollback' ? '' : ', or roll back';
    throw new BadParameter(
      `the ${ca.spec.type} CA is in phase ${phase}: the next phase is ${nextPhase(phase)}${orRollBack}`,
    );
  }
  switch (target) {
    case 'init':
      return withKeys(ca.spec.active_keys, [newKey()], 'init');
    case 'update_clients':
      return withKeys(ca.spec.additional_keys, ca.spec.active_keys, 'update_clients');
    case 'update_servers':
      return withKeys(ca.spec.active_keys, ca.spec.additional_keys, 'update_servers');
    case 'standby':
      return withKeys(ca.spec.active_keys, [], 'standby');
    case 'rollback':
      throw new BadParameter(`the ${ca.spec.type} CA moves to phase rollback only with a rollback`);
  }
}
