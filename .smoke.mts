import crypto from 'node:crypto';
import fs from 'node:fs';
import pino from 'pino';
import { createNodeSSHServer } from '/work/main/src/node/server.ts';
import { parseCertificate, signCertificate, softwareSigner, verifyCertificate } from '/work/main/src/crypto/sshcert.ts';
import { formatAuthorizedKey, formatOpenSSHPrivateKey, sshPublicKeyBlob } from '/work/main/src/crypto/sshkeys.ts';
const ca = softwareSigner(crypto.generateKeyPairSync('ed25519').privateKey);
const uk = crypto.generateKeyPairSync('ed25519');
const hk = crypto.generateKeyPairSync('ed25519');
fs.writeFileSync('/tmp/wsmoke/key', formatOpenSSHPrivateKey(uk.privateKey), { mode: 0o600 });
const cert = await signCertificate({ publicKey: sshPublicKeyBlob(uk.publicKey), serial: 1n, certType: 'user', keyId: 'alice', principals: ['root'], validAfter: new Date(Date.now() - 60000), validBefore: new Date(Date.now() + 3600000) }, ca);
fs.writeFileSync('/tmp/wsmoke/key-cert.pub', formatAuthorizedKey(cert) + '\n');
const srv = createNodeSSHServer({
  hostKeys: [formatOpenSSHPrivateKey(hk.privateKey)],
  log: pino({ level: 'debug' }),
  onEvent: (e, f) => console.error('EVENT', e, JSON.stringify(f)),
  authorize: async ({ certBlob, login }) => {
    const c = parseCertificate(certBlob);
    try { verifyCertificate(c, { trustedCAs: [ca.publicKeyBlob], now: new Date(), certType: 'user', principal: login }); } catch (e) { return { allowed: false, reason: (e as Error).message }; }
    return { allowed: true, user: 'alice', cert: c, permitPortForwarding: true, permitAgentForwarding: true, permitPty: true };
  },
});
const a = await srv.listen('127.0.0.1:0');
fs.writeFileSync('/tmp/wsmoke/port', String(a.port));
console.error('listening', a.port);
