// Roles every cluster starts with, as Teleport ships them: access (reach servers as your own logins),
// editor (manage the cluster's resources) and auditor (read the audit log and recordings).
import type { Role } from '../api/types.ts';

const role = (name: string, description: string, spec: Role['spec']): Role => ({
  kind: 'role',
  version: 'v1',
  metadata: { name, description },
  spec,
});

export const BUILTIN_ROLES: readonly Role[] = [
  role('access', 'Reach servers with the logins in your user traits', {
    options: { max_session_ttl: '30h', port_forwarding: true, forward_agent: true },
    allow: {
      logins: ['{{internal.logins}}'],
      node_labels: { '*': '*' },
      rules: [{ resources: ['node'], verbs: ['list', 'read'] }],
    },
  }),
  role('editor', 'Manage users, roles, join tokens and certificate authorities', {
    options: { max_session_ttl: '8h' },
    allow: {
      rules: [
        { resources: ['user', 'role', 'token', 'node', 'lock'], verbs: ['*'] },
        { resources: ['cert_authority'], verbs: ['list', 'read'] },
      ],
    },
  }),
  role('auditor', 'Read the audit log and session recordings, list and watch live sessions', {
    options: { max_session_ttl: '8h' },
    allow: { rules: [{ resources: ['event', 'session', 'session_tracker'], verbs: ['list', 'read'] }] },
  }),
];
