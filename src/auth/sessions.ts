// Sessions at the auth server: live sessions that nodes report (session_tracker resources, so users
// can list and join them) and recordings that nodes upload when a session ends (the recording store
// plus a `session` resource that indexes it). A node only ever speaks for its own sessions: the
// server id comes from its certificate, never from what it sends.
import { z } from 'zod';
import { AccessDenied, BadParameter, NotFound } from '../api/errors.ts';
import { describeZodError, type RecordedSession, type SessionTracker } from '../api/types.ts';
import type { RecordingStore } from '../events/recordings.ts';
import { NODE_TTL_MS } from './join.ts';
import type { AuthServer } from './server.ts';

/** A live session stays listed this long after the node last reported it (a node that died). */
export const SESSION_TRACKER_TTL_MS = NODE_TTL_MS;

export async function heartbeatSession(
  auth: AuthServer,
  serverId: string,
  tracker: SessionTracker,
  remove: boolean,
): Promise<SessionTracker> {
  if (tracker.spec.server_id !== serverId) throw new AccessDenied('a node may only report its own sessions');
  const existing = await auth.sessionTrackers.tryGet(tracker.metadata.name);
  if (existing && existing.spec.server_id !== serverId)
    throw new AccessDenied('a node may only report its own sessions');
  if (remove) {
    if (existing)
      await auth.sessionTrackers.delete(tracker.metadata.name).catch((err) => {
        if (!(err instanceof NotFound)) throw err;
      });
    return tracker;
  }
  const expires = new Date(auth.now().getTime() + SESSION_TRACKER_TTL_MS).toISOString();
  return auth.sessionTrackers.upsert({ ...tracker, metadata: { ...tracker.metadata, expires } });
}

const uploadMetaSchema = z.object({
  user: z.string().max(256),
  login: z.string().max(256),
  hostname: z.string().max(256),
  started: z.iso.datetime({ offset: true }),
  ended: z.iso.datetime({ offset: true }).optional(),
  participants: z.array(z.string().max(256)).max(256),
});

export function recordingStore(auth: AuthServer): RecordingStore {
  if (!auth.recordings) throw new BadParameter('this auth server keeps no session recordings');
  return auth.recordings;
}

export async function uploadRecording(
  auth: AuthServer,
  serverId: string,
  req: { sid: string; offset: bigint; data: Uint8Array; final: boolean; meta: string },
): Promise<{ size: bigint }> {
  const store = recordingStore(auth);
  let state = store.append(req.sid, serverId, Number(req.offset), req.data);
  if (!req.final || state.complete) return { size: BigInt(state.size) };
  if (Number(req.offset) + req.data.length !== state.size) return { size: BigInt(state.size) }; // not all there yet
  let meta: z.infer<typeof uploadMetaSchema>;
  try {
    meta = uploadMetaSchema.parse(JSON.parse(req.meta));
  } catch (err) {
    throw new BadParameter(
      `invalid recording metadata: ${err instanceof z.ZodError ? describeZodError(err) : 'not JSON'}`,
    );
  }
  state = store.complete(req.sid, serverId);
  const session: RecordedSession = {
    kind: 'session',
    version: 'v1',
    metadata: { name: req.sid },
    spec: {
      server_id: serverId,
      hostname: meta.hostname,
      user: meta.user,
      login: meta.login,
      started: meta.started,
      // A recording cut short by a crash ends when the node stopped; the upload is the best bound we have.
      ended: meta.ended ?? auth.now().toISOString(),
      participants: meta.participants,
      size: state.size,
      interrupted: meta.ended === undefined,
    },
  };
  await auth.sessions.upsert(session);
  await auth.audit.emit('session.upload', {
    user: meta.user,
    sid: req.sid,
    server_id: serverId,
    size: state.size,
    interrupted: session.spec.interrupted,
  });
  return { size: BigInt(state.size) };
}
