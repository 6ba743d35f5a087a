// WebAuthn challenges the auth server handed out and has not seen answered yet, per user and purpose. Each is good
// once: the delete is the claim, so of two answers to one challenge (a replay, or a race) only the first goes on.
// Kept under the SHA-256 of the challenge, outside the resource API.
import { createHash } from 'node:crypto';
import type { Backend } from '../backend/backend.ts';

export type ChallengePurpose = 'login' | 'register';

const challengeKey = (user: string, purpose: ChallengePurpose, challenge: string) =>
  `/mfa/webauthn_challenges/${user}/${purpose}/${createHash('sha256').update(challenge).digest('hex')}`;

export class WebAuthnChallengeStore {
  constructor(private readonly backend: Backend) {}

  async store(user: string, purpose: ChallengePurpose, challenge: string, expires: Date): Promise<void> {
    await this.backend.put({ key: challengeKey(user, purpose, challenge), value: purpose, expires });
  }

  /** Whether this call claimed the challenge; the backend deletes only live items, so an expired one is not found. */
  async claim(user: string, purpose: ChallengePurpose, challenge: string): Promise<boolean> {
    return this.backend.delete(challengeKey(user, purpose, challenge)).then(
      () => true,
      () => false,
    );
  }
}
