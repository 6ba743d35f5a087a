// Every store of the Auth Service, built from its backend in this one place. A store owns the backend keys and the
// schema of one kind of state; nothing above src/services calls the backend itself (test/architecture.test.ts).
// Resource kinds (users, roles, join tokens, CAs, presence, locks, sessions) are ResourceService instances.
import type { Backend, Watcher } from '../backend/backend.ts';
import type { Kind } from '../api/types.ts';
import { LoginFailureStore } from './loginfailures.ts';
import { MFADeviceStore } from './mfadevices.ts';
import { PasswordHashStore } from './passwordhashes.ts';
import { ResourceService } from './resources.ts';
import { SignInSecretStore } from './signinsecret.ts';
import { UserTokenStore } from './usertokens.ts';
import { WebAuthnChallengeStore } from './webauthnchallenges.ts';
import { WebSessionStore } from './websessions.ts';

export class Stores {
  readonly users: ResourceService<'user'>;
  readonly roles: ResourceService<'role'>;
  /** Join tokens. */
  readonly tokens: ResourceService<'token'>;
  readonly nodes: ResourceService<'node'>;
  readonly proxies: ResourceService<'proxy'>;
  readonly cas: ResourceService<'cert_authority'>;
  readonly locks: ResourceService<'lock'>;
  /** The index of session recordings (the recordings themselves are files: src/events/recordings.ts). */
  readonly sessions: ResourceService<'session'>;
  readonly sessionTrackers: ResourceService<'session_tracker'>;
  readonly passwords: PasswordHashStore;
  readonly loginFailures: LoginFailureStore;
  readonly mfa: MFADeviceStore;
  readonly webauthnChallenges: WebAuthnChallengeStore;
  readonly webSessions: WebSessionStore;
  readonly userTokens: UserTokenStore;
  readonly signInSecret: SignInSecretStore;

  constructor(private readonly backend: Backend) {
    this.users = new ResourceService(backend, 'user');
    this.roles = new ResourceService(backend, 'role');
    this.tokens = new ResourceService(backend, 'token');
    this.nodes = new ResourceService(backend, 'node');
    this.proxies = new ResourceService(backend, 'proxy');
    this.cas = new ResourceService(backend, 'cert_authority');
    this.locks = new ResourceService(backend, 'lock');
    this.sessions = new ResourceService(backend, 'session');
    this.sessionTrackers = new ResourceService(backend, 'session_tracker');
    this.passwords = new PasswordHashStore(backend);
    this.loginFailures = new LoginFailureStore(backend);
    this.mfa = new MFADeviceStore(backend);
    this.webauthnChallenges = new WebAuthnChallengeStore(backend);
    this.webSessions = new WebSessionStore(backend);
    this.userTokens = new UserTokenStore(backend);
    this.signInSecret = new SignInSecretStore(backend);
  }

  /** A store for any resource kind (the generic API's get, list, create and delete). */
  resources<K extends Kind>(kind: K): ResourceService<K> {
    return new ResourceService(this.backend, kind);
  }

  /**
   * Writes and deletes of resources of these kinds, in commit order, starting with 'init' (Backend.watch): a watcher
   * that falls behind is closed. Keys are ResourceService.prefix(kind) + name.
   */
  watch(kinds: readonly Kind[]): Watcher {
    return this.backend.watch(kinds.map((k) => ResourceService.prefix(k)));
  }
}
