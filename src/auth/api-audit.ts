// The Auth API's handlers for the audit trail: events hosts report, the search over the log, and session
// recordings uploaded by hosts and read back by users.
import { BadParameter, LimitExceeded } from '../api/errors.ts';
import type { EventName } from '../events/catalog.ts';
import { MAX_CHUNK_BYTES } from '../events/recordings.ts';
import type { UnaryHandlers } from './rpcauthz.ts';
import type { AuthServer } from './server.ts';
import { recordingStore, uploadRecording } from './sessions.ts';

const MAX_AGENT_EVENTS = 1000;
const MAX_AGENT_EVENT_BYTES = 16 * 1024;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** How far ahead of the auth server's clock an agent's event time may be (clock skew). */
const MAX_AGENT_CLOCK_AHEAD_MS = 5 * 60_000;

/**
 * An agent spools events and may send them long after (it was down, or auth was): keep the time it
 * saw them and the uid it gave them (a resent event keeps its uid), within reason.
 */
function agentEventStamp(uid: unknown, time: unknown, now: Date): { uid?: string; time?: Date } {
  const at: { uid?: string; time?: Date } = {};
  if (typeof uid === 'string' && UUID.test(uid)) at.uid = uid;
  if (typeof time === 'string') {
    const t = new Date(time);
    if (!Number.isNaN(t.getTime()) && t.getTime() <= now.getTime() + MAX_AGENT_CLOCK_AHEAD_MS) at.time = t;
  }
  return at;
}

type AuditRPC = 'emitAuditEvents' | 'searchEvents' | 'uploadRecording' | 'getRecording';

export function auditHandlers(auth: AuthServer): Pick<UnaryHandlers, AuditRPC> {
  return {
    // Each event names its emitter, the host id of the caller's certificate, whatever the host wrote: the rest of
    // the event (user, login, command...) is that host's own account.
    emitAuditEvents: async (req, { who: c, on: { reportable, role } }) => {
      if (req.events.length > MAX_AGENT_EVENTS) throw new LimitExceeded(`at most ${MAX_AGENT_EVENTS} events per call`);
      const events = req.events.map((text) => {
        if (text.length > MAX_AGENT_EVENT_BYTES) throw new LimitExceeded('audit event too large');
        let data: unknown;
        try {
          data = JSON.parse(text);
        } catch {
          throw new BadParameter('audit event is not valid JSON');
        }
        if (typeof data !== 'object' || data === null || Array.isArray(data)) {
          throw new BadParameter('audit event is not a JSON object');
        }
        // What the auth server sets is dropped, whatever the host wrote there.
        const {
          event,
          code: _c,
          uid,
          cluster: _cl,
          time,
          server_id: _s,
          emitter: _e,
          emitter_role: _r,
          ...fields
        } = data as Record<string, unknown>;
        if (typeof event !== 'string' || !reportable.has(event)) {
          throw new BadParameter(`a ${role} may not report "${String(event)}" events`);
        }
        return { event: event as EventName, fields, at: agentEventStamp(uid, time, auth.now()) };
      });
      const emitter = { server_id: c.name, emitter: c.name, emitter_role: role };
      for (const e of events) await auth.audit.emit(e.event, { ...e.fields, ...emitter }, e.at);
      return {};
    },

    searchEvents: async (req) => {
      const date = (s: string) => {
        if (!s) return undefined;
        const d = new Date(s);
        if (Number.isNaN(d.getTime())) throw new BadParameter(`invalid time "${s}"`);
        return d;
      };
      const events = await auth.audit.search({
        from: date(req.from),
        to: date(req.to),
        types: req.types.length ? req.types : undefined,
        user: req.user || undefined,
        sid: req.sid || undefined,
        limit: Math.min(req.limit || 1000, 10_000),
        order: req.order === 'asc' ? 'asc' : 'desc',
      });
      return { events: events.map((e) => JSON.stringify(e)) };
    },

    uploadRecording: async (req, { who: c }) => uploadRecording(auth, c.name, req),

    getRecording: async (req) => {
      const store = recordingStore(auth);
      const r = store.read(req.sid, Number(req.offset), req.limit || MAX_CHUNK_BYTES);
      return { data: r.data, size: BigInt(r.size), complete: r.complete };
    },
  };
}
