// The phases of a CA rotation, in order, as the API names them (auth/rotation.ts moves a CA through them; wctl
// says which comes next), and what a TLS CA in each phase means for the certificates a host or client holds.
// Shared here because clients may not import server code.
import { X509Certificate } from 'node:crypto';
import type { CertAuthority } from './types.ts';

export type RotationPhase = CertAuthority['spec']['rotation']['phase'];

/** The phases a rotation steps through, in order. `rollback` is outside the cycle: it only ever leads to standby. */
export const PHASES: readonly RotationPhase[] = ['standby', 'init', 'update_clients', 'update_servers'];

/** The phase that follows `phase` in a rotation. */
export function nextPhase(phase: RotationPhase): RotationPhase {
  if (phase === 'rollback') return 'standby';
  return PHASES[(PHASES.indexOf(phase) + 1) % PHASES.length]!;
}

/**
 * The TLS CA certificates (PEM) to trust now: the signing one first, then, during a rotation, the other. Every TLS
 * server and client of the cluster takes its trust from here (through its watch-fed cache), so a rotation step
 * reaches them within seconds, without a restart.
 */
export function trustedTLSCAs(ca: CertAuthority): string[] {
  return [...ca.spec.active_keys, ...ca.spec.additional_keys].map((k) => k.public);
}

/** The CA certificate among `caPems` that signed `certPem` (name and signature), if any. */
export function issuerOf(certPem: string, caPems: readonly string[]): string | undefined {
  const cert = new X509Certificate(certPem);
  return caPems.find((pem) => {
    try {
      const ca = new X509Certificate(pem);
      return cert.checkIssued(ca) && cert.verify(ca.publicKey);
    } catch {
      return false;
    }
  });
}

/**
 * The CA certificate servers present a chain to in this phase: the old key's until update_servers (clients may not
 * trust the new one before), then the signing key's.
 */
export function presentedTLSCA(ca: CertAuthority): string | undefined {
  const key = ca.spec.rotation.phase === 'update_clients' ? ca.spec.additional_keys[0] : ca.spec.active_keys[0];
  return key?.public;
}

/**
 * Whether a TLS certificate (`certPem`) should be issued again from the CA's signing key now. A certificate a server
 * presents moves in update_servers (and back at a rollback), when every client trusts the new key; one only a client
 * presents (the local admin's) as soon as the new key signs. Never needed in init: the old key still signs.
 */
export function tlsCertOutdated(ca: CertAuthority, certPem: string, holder: 'server' | 'client'): boolean {
  const { phase } = ca.spec.rotation;
  if (holder === 'server' && phase === 'update_clients') return false;
  const signing = ca.spec.active_keys[0]?.public;
  return !!signing && issuerOf(certPem, [signing]) === undefined;
}
