// The phases of a CA rotation, in order, as the API names them (auth/rotation.ts moves a CA through them; wctl
// says which comes next). Shared here because clients may not import server code.
import type { CertAuthority } from './types.ts';

export type RotationPhase = CertAuthority['spec']['rotation']['phase'];

export const PHASES: readonly RotationPhase[] = ['standby', 'init', 'update_clients', 'update_servers'];

/** The phase that follows `phase` in a rotation. */
export function nextPhase(phase: RotationPhase): RotationPhase {
  return PHASES[(PHASES.indexOf(phase) + 1) % PHASES.length]!;
}
