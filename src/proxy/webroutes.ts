// The web UI's API (/webapi/…): thin translations to Auth API calls made AS THE USER, with the web
// session's own certificate. The auth server authorises every one of them; this file decides nothing
// about access, it only shapes requests and answers for the browser.
import { parse as parseYAML, stringify as stringifyYAML, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { BadParameter, LimitExceeded } from '../api/errors.ts';
import { listAllResources } from '../api/list.ts';
import { describeZodError, parseResource, type AuditEvent, type Kind, type Resource } from '../api/types.ts';
import type { AuthClient } from '../api/client.ts';
import type { WebNode, WebRole } from '../api/webapi.ts';
import { mfaRoutes } from './webmfa.ts';
import type { Route } from './webroute.ts';

/** A recording the browser plays is fetched whole; past this it is refused (the CLI streams big ones). */
const MAX_RECORDING_BYTES = 64 * 1024 * 1024;
const PAGE = 1024 * 1024;

function parseBody<T extends z.ZodType>(schema: T, data: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(data);
  if (!parsed.success) throw new BadParameter(`invalid ${what}: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

/** What a page may show at most of one kind. */
const listAll = (client: AuthClient, kind: Kind) => listAllResources(client, kind, 10_000);

const NAME = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/, 'must be 1-128 letters, digits, ".", "_", "@" or "-"');
const newUserSchema = z.strictObject({
  name: NAME,
  roles: z.array(NAME).min(1).max(64),
  logins: z.array(z.string().min(1).max(256)).max(256),
});
const roleBodySchema = z.strictObject({ yaml: z.string().max(256 * 1024) });
const newTokenSchema = z.strictObject({
  type: z.enum(['node', 'proxy', 'db', 'app', 'kube']),
  ttl_minutes: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 60)
    .default(30),
  labels: z.record(z.string().max(256), z.string().max(1024)).default({}),
});

/** A role from the editor: YAML errors name their line, schema errors their path (both shown inline). */
export function roleFromYAML(text: string): Resource {
  let data: unknown;
  try {
    data = parseYAML(text);
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const line = err.linePos?.[0]?.line;
      throw new BadParameter(`YAML${line ? ` line ${line}` : ''}: ${err.message.split('\n')[0]}`);
    }
    throw new BadParameter('the text is not YAML');
  }
  const resource = parseResource(data);
  if (resource.kind !== 'role') throw new BadParameter(`expected kind: role, got kind: ${resource.kind}`);
  // The stored revision is the server's business; an edited copy would only make the write fail.
  delete resource.metadata.revision;
  return resource;
}

function inviteURL(publicAddr: string, kind: 'invite' | 'reset', token: string): string {
  return `https://${publicAddr}/web/${kind}/${token}`;
}

export const routes: Route[] = [
  {
    method: 'GET',
    path: /^\/webapi\/nodes$/,
    handle: async ({ session }) => {
      const nodes = await listAll(session.client, 'node');
      return {
        logins: session.identity.logins,
        nodes: nodes.flatMap((n): WebNode[] =>
          n.kind === 'node'
            ? [
                {
                  id: n.metadata.name,
                  hostname: n.spec.hostname,
                  addr: n.spec.tunnel ? '⟷ tunnel' : n.spec.addr,
                  labels: n.metadata.labels ?? {},
                },
              ]
            : [],
        ),
      };
    },
  },
  {
    method: 'GET',
    path: /^\/webapi\/sessions\/live$/,
    handle: async ({ session }) => ({ sessions: await listAll(session.client, 'session_tracker') }),
  },
  {
    method: 'GET',
    path: /^\/webapi\/events$/,
    handle: async ({ session, query }) => {
      const limit = Math.min(Number(query.get('limit') ?? 500) || 500, 5000);
      const res = await session.client.searchEvents({
        from: query.get('from') ?? '',
        to: query.get('to') ?? '',
        types: (query.get('types') ?? '')
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean),
        user: query.get('user') ?? '',
        sid: query.get('sid') ?? '',
        limit,
        order: 'desc',
      });
      return { events: res.events.map((e) => JSON.parse(e) as AuditEvent) };
    },
  },
  {
    method: 'GET',
    path: /^\/webapi\/recordings$/,
    handle: async ({ session }) => {
      const all = await listAll(session.client, 'session');
      return {
        recordings: all.sort((a, b) =>
          a.kind === 'session' && b.kind === 'session' ? b.spec.started.localeCompare(a.spec.started) : 0,
        ),
      };
    },
  },
  {
    method: 'GET',
    path: /^\/webapi\/recordings\/([0-9a-f-]{36})$/,
    handle: async ({ session, params }) => {
      const sid = params[0]!;
      const parts: Buffer[] = [];
      let offset = 0;
      let complete = false;
      for (;;) {
        const page = await session.client.getRecording({ sid, offset: BigInt(offset), limit: PAGE });
        parts.push(Buffer.from(page.data));
        offset += page.data.length;
        complete = page.complete;
        if (offset > MAX_RECORDING_BYTES)
          throw new LimitExceeded('this recording is too large to play in the browser: use wsh play');
        if (page.data.length === 0 || offset >= Number(page.size)) break;
      }
      return { sid, complete, cast: Buffer.concat(parts).toString('utf8') };
    },
  },
  // ---- admin: users, roles, join tokens (the auth server refuses whoever lacks the rules) ----
  {
    method: 'GET',
    path: /^\/webapi\/users$/,
    handle: async ({ session }) => ({ users: await listAll(session.client, 'user') }),
  },
  {
    method: 'POST',
    path: /^\/webapi\/users$/,
    handle: async ({ session, body, publicAddr }) => {
      const req = parseBody(newUserSchema, await body(), 'user');
      const res = await session.client.createUser({
        name: req.name,
        roles: req.roles,
        logins: req.logins,
        invite: true,
      });
      return { invite_url: inviteURL(publicAddr, 'invite', res.inviteToken), expires: res.inviteExpires };
    },
  },
  {
    method: 'POST',
    path: /^\/webapi\/users\/([^/]+)\/reset$/,
    handle: async ({ session, params, publicAddr }) => {
      const res = await session.client.resetPassword({ name: decodeURIComponent(params[0]!), asLink: true });
      return { reset_url: inviteURL(publicAddr, 'reset', res.resetToken), expires: res.resetExpires };
    },
  },
  {
    method: 'DELETE',
    path: /^\/webapi\/users\/([^/]+)$/,
    handle: async ({ session, params }) => {
      await session.client.deleteResource({ kind: 'user', name: decodeURIComponent(params[0]!) });
      return {};
    },
  },
  {
    method: 'GET',
    path: /^\/webapi\/roles$/,
    handle: async ({ session }) => {
      const roles = await listAll(session.client, 'role');
      return {
        roles: roles.map(
          (r): WebRole => ({
            name: r.metadata.name,
            description: r.metadata.description ?? '',
            yaml: stringifyYAML(r),
          }),
        ),
      };
    },
  },
  {
    // PUT: create or replace; the auth server checks create and update rights and validates the role.
    method: 'PUT',
    path: /^\/webapi\/roles$/,
    handle: async ({ session, body }) => {
      const role = roleFromYAML(parseBody(roleBodySchema, await body(), 'role').yaml);
      const saved = await session.client.upsertResource({ resource: { json: JSON.stringify(role) }, overwrite: true });
      return { name: role.metadata.name, yaml: stringifyYAML(JSON.parse(saved.json)) };
    },
  },
  {
    method: 'DELETE',
    path: /^\/webapi\/roles\/([^/]+)$/,
    handle: async ({ session, params }) => {
      await session.client.deleteResource({ kind: 'role', name: decodeURIComponent(params[0]!) });
      return {};
    },
  },
  {
    method: 'GET',
    path: /^\/webapi\/tokens$/,
    handle: async ({ session }) => ({ tokens: await listAll(session.client, 'token') }),
  },
  {
    method: 'POST',
    path: /^\/webapi\/tokens$/,
    handle: async ({ session, body, publicAddr }) => {
      const req = parseBody(newTokenSchema, await body(), 'token');
      const res = await session.client.createToken({
        roles: [req.type],
        ttlSeconds: req.ttl_minutes * 60,
        labels: req.labels,
      });
      const token = parseResource(JSON.parse(res.json));
      const labels = Object.entries(req.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      const pin = (await session.client.ping({})).caPins[0] ?? '';
      return {
        token,
        command:
          `ward start --roles ${req.type} --token ${token.metadata.name} --auth-server ${publicAddr} ` +
          `--ca-pin ${pin}${labels ? ` --labels ${labels}` : ''}`,
      };
    },
  },
  {
    method: 'DELETE',
    path: /^\/webapi\/tokens\/([0-9a-f]+)$/,
    handle: async ({ session, params }) => {
      await session.client.deleteResource({ kind: 'token', name: params[0]! });
      return {};
    },
  },
  ...mfaRoutes,
];
