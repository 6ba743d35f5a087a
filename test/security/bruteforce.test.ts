// Password guessing: one client fires 100 wrong passwords at the proxy's login endpoint, many at once.
// The lockout must hold under that concurrency (at most max_attempts passwords are ever checked per lock
// period, and the right password is refused while locked), every attempt must be in the audit log
// (`wctl events`), and the real user must get in once the lock has expired.
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { generateClientKeys } from '../../src/api/keys.ts';
import { cleanup, delay, type Cluster } from '../harness.ts';
import { ok, startTarget, type Target } from './fixture.ts';
import { assertSettled, readVitals, type Vitals } from './vitals.ts';

const MAX_ATTEMPTS = 5;
const LOCK_MS = 4_000;

let target: Target;
let cluster: Cluster;
let baseline: Vitals;
let agent: https.Agent;

before(async () => {
  target = await startTarget({ lockout: { max_attempts: MAX_ATTEMPTS, duration: `${LOCK_MS / 1000}s` } });
  cluster = target.cluster;
  // One client: one keep-alive connection pool, ten connections.
  agent = new https.Agent({ keepAlive: true, maxSockets: 10, ca: cluster.adminIdentity().caPems });
  baseline = readVitals(cluster.pid);
});

after(async () => {
  agent?.destroy();
  await cleanup();
});

const keys = generateClientKeys('guesser');

function login(user: string, password: string): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  const [host, port] = cluster.proxyAddr.split(':');
  const data = JSON.stringify({ user, password, ssh_public_key: keys.sshPublicKey, tls_public_key: keys.tlsPublicKey });
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host, port: Number(port), method: 'POST', path: '/webapi/login/certs', agent, servername: 'localhost', headers: { 'content-type': 'application/json' }, timeout: 30_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('login timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

interface LoginEvent {
  event: string;
  user: string;
  success?: boolean;
  error?: string;
  time: string;
}

async function events(type: string, user: string): Promise<LoginEvent[]> {
  const out = ok(await cluster.wctl(['events', '--type', type, '--user', user, '--limit', '1000', '--format', 'json']));
  return out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as LoginEvent);
}

describe('password guessing', () => {
  it('throttles 100 concurrent wrong passwords to the lockout, audits each, and lets the user in after the lock', async () => {
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => login(target.user, `wrong-password-${i}`)));
    const attackMs = Date.now() - started;
    assert.ok(attackMs < LOCK_MS, `the attack took ${attackMs}ms, longer than one lock period: the bound below would not hold`);
    for (const a of answers) {
      assert.equal(a.status, 403, JSON.stringify(a.body));
      assert.equal(a.body.error?.code, 'ERR_ACCESS_DENIED');
    }
    assert.ok(answers.some((a) => /too many failed logins/.test(a.body.error!.message)), 'no answer said the user is locked');

    // Locked: even the right password is refused, with the same answer as a wrong one.
    const during = await login(target.user, target.password);
    assert.equal(during.status, 403);
    assert.match(during.body.error!.message, /too many failed logins, user is locked until/);

    // Audited: every attempt, the lock, and how many passwords were really checked.
    const failures = (await events('user.login', target.user)).filter((e) => e.success === false);
    assert.equal(failures.length, 101, `${failures.length} failed logins in the audit log`);
    const checked = failures.filter((e) => e.error === 'bad password').length;
    assert.ok(checked <= MAX_ATTEMPTS, `${checked} passwords were checked within one lock period (max_attempts ${MAX_ATTEMPTS})`);
    assert.ok((await events('user.locked', target.user)).length >= 1, 'no user.locked event');

    // After the lock: the real user logs in with wsh as usual.
    await delay(Math.max(0, started + attackMs + LOCK_MS + 500 - Date.now()));
    await target.assertServing();
    const success = (await events('user.login', target.user)).filter((e) => e.success === true);
    assert.ok(success.length >= 2, 'the login after the lock is audited');
  });

  it('answers a made-up user name like a real one under the same flood', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => login('nobody-here', `wrong-password-${i}`)));
    const messages = new Set(answers.map((a) => a.body.error!.message.replace(/until \S+/, 'until T')));
    assert.deepEqual([...messages].sort(), ['access denied: invalid user name or password', 'access denied: too many failed logins, user is locked until T']);
  });

  it('is still up, serves a real user, and has given back its descriptors and memory', async () => {
    agent.destroy();
    await target.assertServing();
    await assertSettled(cluster, baseline);
  });
});
