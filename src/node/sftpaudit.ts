// What an SFTP client asks the OS sftp-server to do, for the audit log: the node reads the client's
// requests as they pass (draft-ietf-secsh-filexfer-02, SFTP v3, the version OpenSSH speaks) and reports
// opens, removals, renames, directory changes and listings with their paths. It never changes the
// stream and never holds more than one small request: file data (WRITE) is skipped, not buffered.

// Request types (filexfer-02 section 3).
const FXP = {
  OPEN: 3,
  SETSTAT: 9,
  OPENDIR: 11,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  RENAME: 18,
  SYMLINK: 20,
  EXTENDED: 200,
} as const;
// SSH_FXF_* open flags (section 6.3).
const FXF_READ = 0x1;
const FXF_WRITE = 0x2;

/** Requests carrying paths are small; a larger one is skipped (sftp-server refuses it anyway). */
const MAX_AUDITED_PACKET = 64 * 1024;

export interface SftpAction {
  action:
    | 'read'
    | 'write'
    | 'read-write'
    | 'setstat'
    | 'list'
    | 'remove'
    | 'mkdir'
    | 'rmdir'
    | 'rename'
    | 'symlink'
    | 'hardlink';
  path: string;
  /** rename: the new name; symlink: the link's target. */
  target?: string;
}

const INTERESTING: ReadonlySet<number> = new Set(Object.values(FXP));

function readString(buf: Buffer, at: number): { value: string; next: number } | undefined {
  if (at + 4 > buf.length) return undefined;
  const len = buf.readUInt32BE(at);
  if (at + 4 + len > buf.length) return undefined;
  return { value: buf.toString('utf8', at + 4, at + 4 + len), next: at + 4 + len };
}

/** One request's payload (after type and request id) → what it does, or undefined. */
export function describeRequest(type: number, payload: Buffer): SftpAction | undefined {
  const first = readString(payload, 0);
  if (!first) return undefined;
  const path = first.value;
  switch (type) {
    case FXP.OPEN: {
      if (first.next + 4 > payload.length) return undefined;
      const flags = payload.readUInt32BE(first.next);
      const r = (flags & FXF_READ) !== 0;
      const w = (flags & FXF_WRITE) !== 0;
      return { action: r && w ? 'read-write' : w ? 'write' : 'read', path };
    }
    case FXP.SETSTAT:
      return { action: 'setstat', path };
    case FXP.OPENDIR:
      return { action: 'list', path };
    case FXP.REMOVE:
      return { action: 'remove', path };
    case FXP.MKDIR:
      return { action: 'mkdir', path };
    case FXP.RMDIR:
      return { action: 'rmdir', path };
    case FXP.RENAME:
    case FXP.SYMLINK: {
      const second = readString(payload, first.next);
      if (!second) return undefined;
      // OpenSSH's sftp-server takes SYMLINK's arguments in the opposite order to the draft (PROTOCOL 4.1):
      // what we report is what it will do, so report them its way.
      return type === FXP.RENAME
        ? { action: 'rename', path, target: second.value }
        : { action: 'symlink', path: second.value, target: path };
    }
    case FXP.EXTENDED: {
      // OpenSSH's extensions that change the tree (PROTOCOL 4.3, 4.5): `rename` in its sftp uses posix-rename.
      const a = readString(payload, first.next);
      const b = a && readString(payload, a.next);
      if (!a || !b) return undefined;
      if (path === 'posix-rename@openssh.com') return { action: 'rename', path: a.value, target: b.value };
      if (path === 'hardlink@openssh.com') return { action: 'hardlink', path: b.value, target: a.value };
      return undefined;
    }
    default:
      return undefined;
  }
}

/** Feeds client→server bytes in; calls `onAction` for each audited request. */
export class SftpRequestReader {
  private header = Buffer.alloc(0);
  private packet: Buffer[] = [];
  private need = 0;
  private skip = 0;
  private capture = false;

  constructor(private readonly onAction: (a: SftpAction) => void) {}

  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        this.skip -= n;
        at += n;
        continue;
      }
      if (this.need > 0) {
        const n = Math.min(this.need, chunk.length - at);
        this.packet.push(chunk.subarray(at, at + n));
        this.need -= n;
        at += n;
        if (this.need === 0) this.finish();
        continue;
      }
      // The packet header: uint32 length, byte type.
      const n = Math.min(5 - this.header.length, chunk.length - at);
      this.header = Buffer.concat([this.header, chunk.subarray(at, at + n)]);
      at += n;
      if (this.header.length < 5) continue;
      const length = this.header.readUInt32BE(0);
      const type = this.header[4]!;
      this.header = Buffer.alloc(0);
      const rest = Math.max(0, length - 1);
      this.capture = INTERESTING.has(type) && length <= MAX_AUDITED_PACKET;
      if (this.capture) {
        this.packet = [Buffer.from([type])];
        this.need = rest;
        if (rest === 0) this.finish();
      } else this.skip = rest;
    }
  }

  private finish(): void {
    const packet = Buffer.concat(this.packet);
    this.packet = [];
    if (!this.capture || packet.length < 5) return;
    const action = describeRequest(packet[0]!, packet.subarray(5)); // type, uint32 request id
    if (action) this.onAction(action);
  }
}
