// Every audit event Ward emits, with its stable code (as Teleport's lib/events/codes.go). Codes are
// never reused; the last letter is the severity: I(nfo), W(arning), E(rror). docs/audit.md lists the
// same table and a test keeps the two in step.
export const EVENT_CODES = {
  'user.login': { success: 'WU1000I', failure: 'WU1000W' },
  'user.create': 'WU1001I',
  'user.update': 'WU1002I',
  'user.delete': 'WU1003I',
  'user.password_change': 'WU1004I',
  'user.locked': 'WU1005W',
  'user.login_locked': 'WU1006W',
  'role.created': 'WR1000I',
  'role.deleted': 'WR1001I',
  'resource.created': 'WX1000I',
  'resource.deleted': 'WX1001I',
  'cert.create': 'WC1000I',
  'ca.rotated': 'WC1001I',
  'join_token.create': 'WJ1000I',
  'node.join': { success: 'WJ1001I', failure: 'WJ1001W' },
  'access.denied': 'WA1000W',
  'proxy.rate_limited': 'WA1001W',
  'auth.rate_limited': 'WA1002W',
  // Reported by nodes (EmitAuditEvents):
  auth: { success: 'WT1000I', failure: 'WT1000W' },
  'session.start': 'WS2000I',
  'session.end': 'WS2001I',
  'session.idle_timeout': 'WS2003W',
  'session.join': 'WS2005I',
  'session.leave': 'WS2006I',
  'session.upload': 'WS2004I',
  'session.recording_failed': 'WS2007E',
  'session.terminated': 'WS2008W',
  'lock.created': 'WL1000I',
  'lock.deleted': 'WL1001I',
  'mfa.add': 'WM1000I',
  'mfa.delete': 'WM1001I',
  'mfa.recovery_code_used': 'WM1002W',
  scp: 'WF6000I',
  sftp: 'WF6001I',
  exec: 'WE3000I',
  subsystem: 'WS2002I',
  port: { success: 'WP4000I', failure: 'WP4000W' },
  agent: { success: 'WG5000I', failure: 'WG5000W' },
} as const;

export type EventName = keyof typeof EVENT_CODES;

export function eventCode(event: EventName, success = true): string {
  const code = EVENT_CODES[event];
  return typeof code === 'string' ? code : success ? code.success : code.failure;
}

/**
 * What each kind of host may report (EmitAuditEvents): the events a host of that system role witnesses itself.
 * Everything else is refused, above all what only the auth server knows and writes (logins, certificates, joins,
 * locks, users, roles, tokens, rotations, second factors, uploads): a host cannot add those to the log at all.
 */
export const EVENTS_BY_SYSTEM_ROLE: Readonly<Record<string, ReadonlySet<string>>> = {
  node: new Set([
    'auth',
    'access.denied',
    'session.start',
    'session.end',
    'session.idle_timeout',
    'session.join',
    'session.leave',
    'session.recording_failed',
    'session.terminated',
    'exec',
    'scp',
    'sftp',
    'subsystem',
    'port',
    'agent',
  ]),
  proxy: new Set(['proxy.rate_limited']),
};

/** The events a host with these system roles may report (none for roles that report nothing). */
export function reportableEvents(systemRoles: readonly string[]): ReadonlySet<string> {
  return new Set(systemRoles.flatMap((role) => [...(EVENTS_BY_SYSTEM_ROLE[role] ?? [])]));
}
