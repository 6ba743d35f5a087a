// Resource shapes shared by the auth server, agents and clients: {kind, version, metadata, spec}, as
// stored in the backend, sent over the Auth API and read/printed as YAML by wctl. Every resource that
// crosses a trust boundary is parsed with these zod schemas; inside, code works on the typed values.
import { z } from 'zod';
import { parseDuration } from '../time/duration.ts';
import { BadParameter } from './errors.ts';
import { NAME } from './names.ts';

export { NAME };
export const nameSchema = z.string().regex(NAME, 'must be 1-128 letters, digits, ".", "_", "@" or "-"');

const labelsSchema = z.record(z.string().max(256), z.string().max(1024));

export const metadataSchema = z.strictObject({
  name: nameSchema,
  description: z.string().max(1024).optional(),
  labels: labelsSchema.optional(),
  /** ISO time; the backend deletes the resource then. */
  expires: z.iso.datetime({ offset: true }).optional(),
  revision: z.string().optional(),
});

const durationSchema = z.string().refine((s) => {
  try {
    parseDuration(s);
    return true;
  } catch {
    return false;
  }
}, 'must be a duration such as 30m, 8h, 1h30m');

/** label name → one value or a list; values may be '*' or '^regex$'. */
const labelSelectorSchema = z.record(
  z.string().max(256),
  z.union([z.string().max(1024), z.array(z.string().max(1024)).max(64)]),
);

export const VERBS = ['list', 'read', 'create', 'update', 'delete'] as const;
export type Verb = (typeof VERBS)[number];
const ruleSchema = z.strictObject({
  resources: z.array(z.string().max(64)).min(1).max(32),
  verbs: z.array(z.union([z.enum(VERBS), z.literal('*')])).min(1),
});

const conditionsSchema = z.strictObject({
  logins: z.array(z.string().max(256)).max(256).optional(),
  node_labels: labelSelectorSchema.optional(),
  rules: z.array(ruleSchema).max(64).optional(),
  db_labels: labelSelectorSchema.optional(),
  db_names: z.array(z.string().max(256)).max(256).optional(),
  db_users: z.array(z.string().max(256)).max(256).optional(),
  kubernetes_groups: z.array(z.string().max(256)).max(256).optional(),
  kubernetes_users: z.array(z.string().max(256)).max(256).optional(),
  app_labels: labelSelectorSchema.optional(),
});

export const roleSpecSchema = z.strictObject({
  options: z
    .strictObject({
      max_session_ttl: durationSchema.optional(),
      port_forwarding: z.boolean().optional(),
      /**
       * `ssh -R` listens where the client asks (sshd's GatewayPorts clientspecified) rather than on loopback only
       * (GatewayPorts no, the default). Needs port_forwarding too.
       */
      port_forwarding_gateway: z.boolean().optional(),
      forward_agent: z.boolean().optional(),
    })
    .optional(),
  allow: conditionsSchema.optional(),
  deny: conditionsSchema.optional(),
});

export const roleSchema = z.strictObject({
  kind: z.literal('role'),
  version: z.literal('v1'),
  metadata: metadataSchema,
  spec: roleSpecSchema,
});
export type Role = z.infer<typeof roleSchema>;
export type RoleConditions = z.infer<typeof conditionsSchema>;

export const userSchema = z.strictObject({
  kind: z.literal('user'),
  version: z.literal('v1'),
  metadata: metadataSchema,
  spec: z.strictObject({
    roles: z.array(nameSchema).max(64),
    /** Values for role templates: {{internal.logins}} expands from traits.logins. */
    traits: z.record(z.string().max(64), z.array(z.string().max(256)).max(256)).default({}),
    created_by: z.string().max(256).optional(),
    created: z.iso.datetime({ offset: true }).optional(),
    /** Set after too many failed logins; refused until then. */
    locked_until: z.iso.datetime({ offset: true }).optional(),
  }),
});
export type User = z.infer<typeof userSchema>;

export const SYSTEM_ROLES = ['node', 'proxy', 'db', 'app', 'kube'] as const;
export const tokenSchema = z.strictObject({
  kind: z.literal('token'),
  version: z.literal('v1'),
  metadata: metadataSchema,
  spec: z.strictObject({
    roles: z.array(z.enum(SYSTEM_ROLES)).min(1),
    /** Labels given to agents that join with it. */
    labels: labelsSchema.optional(),
  }),
});
export type Token = z.infer<typeof tokenSchema>;

export const nodeSchema = z.strictObject({
  kind: z.literal('node'),
  version: z.literal('v1'),
  metadata: metadataSchema,
  spec: z.strictObject({
    hostname: z.string().max(256),
    addr: z.string().max(256),
    /** Reached through its reverse tunnel rather than by address. */
    tunnel: z.boolean().default(false),
    version: z.string().max(64),
  }),
});
export type Node = z.infer<typeof nodeSchema>;

/** A proxy's presence: agents keep a reverse tunnel to every proxy listed. */
export const proxySchema = z.strictObject({
  kind: z.literal('proxy'),
  version: z.literal('v1'),
  metadata: metadataSchema,
  spec: z.strictObject({
    /** host:port agents and users reach it by. */
    addr: z.string().max(256),
    version: z.string().max(64),
  }),
});
export type Proxy = z.infer<typeof proxySchema>;

const participantSchema = z.strictObject({
  user: z.string().max(256),
  /** peer types into the session; observer only watches. The session's owner is a peer. */
  mode: z.enum(['peer', 'observer']),
  joined: z.iso.datetime({ offset: true }),
});

/** What live and recorded sessions both say: where (the node's host id and name), who, as whom, since when. */
const sessionFields = {
  server_id: z.string().max(128),
  hostname: z.string().max(256),
  user: z.string().max(256),
  login: z.string().max(256),
  started: z.iso.datetime({ offset: true }),
};

/** A live SSH session, reported by the node running it while it runs (so users can list and join it). */
export const sessionTrackerSchema = z.strictObject({
  kind: z.literal('session_tracker'),
  version: z.literal('v1'),
  metadata: metadataSchema,
  spec: z.strictObject({
    ...sessionFields,
    participants: z.array(participantSchema).max(64),
  }),
});
export type SessionTracker = z.infer<typeof sessionTrackerSchema>;

/** A recorded session: the index entry of a recording in the auth server's recording store. */
export const sessionSchema = z.strictObject({
  kind: z.literal('session'),
  version: z.literal('v1'),
  metadata: metadataSchema,
  spec: z.strictObject({
    ...sessionFields,
    ended: z.iso.datetime({ offset: true }),
    participants: z.array(z.string().max(256)).max(256),
    /** Size of the recording (asciicast v2) in bytes. */
    size: z.number().int().nonnegative(),
    /** True when the node stopped before the session ended (the recording stops where the node did). */
    interrupted: z.boolean().default(false),
  }),
});
export type RecordedSession = z.infer<typeof sessionSchema>;

/**
 * A lock: while it exists (until metadata.expires), its one target gets no certificates or access. `target.node` is
 * a host id (of a node, proxy or other agent): the auth server resolves a host name to it when the lock is made.
 */
export const lockSchema = z.strictObject({
  kind: z.literal('lock'),
  version: z.literal('v1'),
  metadata: metadataSchema,
  spec: z.strictObject({
    target: z
      .strictObject({
        user: z.string().max(256).optional(),
        role: z.string().max(256).optional(),
        node: z.string().max(256).optional(),
      })
      .refine(
        (t) => [t.user, t.role, t.node].filter((v) => v !== undefined).length === 1,
        'a lock names exactly one of user, role, node',
      ),
    /** Shown to the users it stops. */
    message: z.string().max(1024).optional(),
    /** A host lock's `target.node` is a host id; this is the host's name when it was locked, for messages only. */
    node_name: z.string().max(256).optional(),
    created_by: z.string().max(256).optional(),
    created: z.iso.datetime({ offset: true }).optional(),
  }),
});
export type Lock = z.infer<typeof lockSchema>;

export const CA_TYPES = ['user', 'host', 'tls', 'db', 'jwt'] as const;
export type CAType = (typeof CA_TYPES)[number];
const caKeySchema = z.strictObject({
  /** SSH CAs: authorized_keys line. TLS/DB CAs: certificate PEM. JWT: SPKI PEM. */
  public: z.string().max(16384),
  /** Held by the auth server only; stripped before a CA leaves it. */
  private: z.string().max(16384).optional(),
});
export const certAuthoritySchema = z.strictObject({
  kind: z.literal('cert_authority'),
  version: z.literal('v1'),
  metadata: metadataSchema,
  spec: z.strictObject({
    type: z.enum(CA_TYPES),
    cluster: z.string().max(256),
    active_keys: z.array(caKeySchema).min(1).max(8),
    additional_keys: z.array(caKeySchema).max(8).default([]),
    rotation: z
      .strictObject({ phase: z.enum(['standby', 'init', 'update_clients', 'update_servers', 'rollback']) })
      .default({ phase: 'standby' }),
  }),
});
export type CertAuthority = z.infer<typeof certAuthoritySchema>;

export const resourceSchemas = {
  role: roleSchema,
  user: userSchema,
  token: tokenSchema,
  node: nodeSchema,
  proxy: proxySchema,
  cert_authority: certAuthoritySchema,
  session_tracker: sessionTrackerSchema,
  session: sessionSchema,
  lock: lockSchema,
} as const;
export type Kind = keyof typeof resourceSchemas;
export type Resource = Role | User | Token | Node | Proxy | CertAuthority | SessionTracker | RecordedSession | Lock;
export const KINDS = Object.keys(resourceSchemas) as Kind[];

/** The plural and short names wctl accepts ("roles", "cas") → kind. */
export function kindFromName(name: string): Kind {
  const aliases: Record<string, Kind> = {
    role: 'role',
    roles: 'role',
    user: 'user',
    users: 'user',
    token: 'token',
    tokens: 'token',
    node: 'node',
    nodes: 'node',
    proxy: 'proxy',
    proxies: 'proxy',
    cert_authority: 'cert_authority',
    ca: 'cert_authority',
    cas: 'cert_authority',
    session_tracker: 'session_tracker',
    session_trackers: 'session_tracker',
    session: 'session',
    sessions: 'session',
    recording: 'session',
    recordings: 'session',
    lock: 'lock',
    locks: 'lock',
  };
  const kind = aliases[name];
  if (!kind)
    throw new BadParameter(
      `unknown resource kind "${name}" (expected one of: roles, users, tokens, nodes, proxies, cas, sessions, ` +
        `session_trackers, locks)`,
    );
  return kind;
}

/** Parses untrusted JSON/YAML-derived data into a resource, with the failing path in the message. */
export function parseResource(data: unknown): Resource {
  const kind = (data as { kind?: unknown } | null)?.kind;
  if (typeof kind !== 'string' || !(kind in resourceSchemas)) {
    throw new BadParameter(`unknown or missing "kind" ${JSON.stringify(kind)} (expected one of: ${KINDS.join(', ')})`);
  }
  return parseAs(kind as Kind, data);
}

export function parseAs<K extends Kind>(kind: K, data: unknown): z.infer<(typeof resourceSchemas)[K]> {
  const result = resourceSchemas[kind].safeParse(data);
  if (!result.success) throw new BadParameter(`invalid ${kind}: ${describeZodError(result.error)}`);
  return result.data as z.infer<(typeof resourceSchemas)[K]>;
}

export function describeZodError(error: z.ZodError): string {
  return (
    error.issues
      // zod reports an unknown key at its parent's path; name the key itself (auth_service.listen_adr).
      .flatMap((i) =>
        i.code === 'unrecognized_keys' ? i.keys.map((k) => ({ path: [...i.path, k], message: 'unknown key' })) : [i],
      )
      .slice(0, 5)
      .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
      .join('; ')
  );
}

/**
 * An audit event as the auth server stores it and `SearchEvents` returns it (as JSON): the catalogue's name and
 * code, when, and the fields of that event. The backend stores it; the web UI's audit page reads it.
 */
export interface AuditEvent {
  event: string;
  code: string;
  time: string;
  uid: string;
  cluster?: string;
  user?: string;
  sid?: string;
  [field: string]: unknown;
}
