// The SFTP subsystem: like sshd's "Subsystem sftp", the node runs the OS's own sftp-server as the
// login (session.ts pipes it to the channel). Re-implementing SFTP would only add attack surface.
// OpenSSH 9's scp speaks SFTP by default, so this also serves `scp`; `scp -O` goes through exec.
import fs from 'node:fs';

// Where Debian/Ubuntu, Fedora/RHEL and Arch/Alpine install it.
const CANDIDATES = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/ssh/sftp-server'];

let cached: string | null | undefined;

/** Path of the sftp-server binary, or null when the node has none (the subsystem is then refused). */
export function sftpServerPath(): string | null {
  if (cached === undefined) {
    cached =
      CANDIDATES.find((p) => {
        try {
          fs.accessSync(p, fs.constants.X_OK);
          return true;
        } catch {
          return false;
        }
      }) ?? null;
  }
  return cached;
}
