// How wctl reaches the auth API: with an identity file (-i) and --auth-server (an auth server or any
// proxy), or, on the auth host, with the local admin identity `ward start` keeps in the data dir.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { createAuthClient, type AuthClient } from '../../api/client.ts';
import { BadParameter } from '../../api/errors.ts';
import { readIdentityFile } from '../identity-file.ts';

export interface GlobalOptions {
  authServer?: string;
  identity?: string;
  dataDir?: string;
  insecure?: boolean;
}

function readLocal(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BadParameter(
      code === 'ENOENT'
        ? `no local admin identity at ${path}: run wctl on the auth host (after ward start), or pass -i IDENTITY ` +
            `--auth-server HOST:PORT`
        : `cannot read ${what} ${path}: ${code}`,
    );
  }
}

export function connectAuth(opts: GlobalOptions): AuthClient {
  if (opts.identity) {
    if (!opts.authServer) throw new BadParameter('-i needs --auth-server HOST:PORT (an auth server or a proxy)');
    const id = readIdentityFile(opts.identity);
    return createAuthClient({
      addr: opts.authServer,
      identity: { keyPem: id.tlsKey, certPem: id.tlsCert, caPems: id.tlsCAs },
    });
  }
  const dir = join(opts.dataDir ?? process.env.WARD_DATA_DIR ?? join(homedir(), '.ward'), 'admin');
  const identity = {
    keyPem: readLocal(join(dir, 'tls.key'), 'admin key'),
    certPem: readLocal(join(dir, 'tls.crt'), 'admin certificate'),
    caPems: [readLocal(join(dir, 'cas.pem'), 'cluster CA')],
  };
  const addr = opts.authServer ?? readLocal(join(dir, 'auth_addr'), 'auth address').trim();
  return createAuthClient({ addr, identity });
}
