// End to end: the audit trail and session recordings of real sessions. Interactive sessions through
// real OpenSSH clients are recorded at the node, uploaded to the auth server, listed and played back
// with wsh/wctl and read by asciinema; live sessions are listed and joined; a node killed with
// SIGKILL loses neither its recording nor its audit events; users without the rules read nothing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYAML } from 'yaml';
import type { RecordedSession, SessionTracker } from '../src/api/types.ts';
import { parseCast } from '../src/api/asciicast.ts';
import { Terminal, killTerminals } from './terminal.ts';
import { freePort } from './fixtures/wardproc.ts';
import { addUser as addTestUser, ok, type TestUser as User } from './users.ts';
import {
  BIN,
  cleanup,
  makeTempDir,
  poll,
  run,
  startAgent,
  startCluster,
  type Cluster,
  type NodeAgent,
} from './harness.ts';

const WSH = join(BIN, 'wsh');

let main: Cluster;
let work: string;
let crashy: NodeAgent;
const users: Record<string, User> = {};

async function addUser(name: string, roles: string): Promise<User> {
  users[name] = await addTestUser(main, work, name, roles);
  return users[name]!;
}

const wsh = (u: User, args: string[], opts: { stdin?: string } = {}) => main.wsh(u.wshHome, args, opts);

/** OpenSSH `ssh -tt` through the proxy (ProxyCommand wsh proxy ssh), typed into by the test. */
function terminal(u: User, node: string, extra: string[] = []): Terminal {
  return new Terminal('ssh', ['-F', u.cfg, '-tt', ...extra, `root@${node}`], { WSH_HOME: u.wshHome });
}

async function recordings(u: User): Promise<RecordedSession[]> {
  return JSON.parse(ok(await wsh(u, ['recordings', 'ls', '--format', 'json']))) as RecordedSession[];
}

async function waitForRecording(
  u: User,
  match: (s: RecordedSession) => boolean,
  timeoutMs = 20_000,
): Promise<RecordedSession> {
  return poll('the recording to be uploaded', async () => (await recordings(u)).find(match), timeoutMs, 200);
}

async function liveSessions(u: User): Promise<SessionTracker[]> {
  return JSON.parse(ok(await wsh(u, ['sessions', 'ls', '--format', 'json']))) as SessionTracker[];
}

async function events(args: string[]): Promise<Array<Record<string, unknown>>> {
  const out = ok(await main.wctl(['events', '--format', 'json', '--limit', '10000', ...args]));
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .reverse(); // oldest first
}

const CRASHY_CONFIG = 'ssh_service:\n  hostname: crashy\n  listen_addr: 127.0.0.1:0\n  recording: node-sync\n';
let authPort: number;
let diagPort: number;
let proxyPort: number;

before(async () => {
  work = makeTempDir('ward-e2e-rec-');
  // Fixed ports: the audit-spool test stops and restarts the cluster, and the node must find it again.
  [authPort, proxyPort, diagPort] = [await freePort(), await freePort(), await freePort()];
  main = await startCluster({
    config: [
      'version: v1',
      `ward: {log: {severity: info}, diag_addr: '127.0.0.1:${diagPort}'}`,
      `auth_service: {cluster_name: rec, listen_addr: '127.0.0.1:${authPort}'}`,
      `proxy_service: {listen_addr: '127.0.0.1:${proxyPort}'}`,
      "ssh_service: {enabled: true, listen_addr: '127.0.0.1:0'}",
      '',
    ].join('\n'),
  });
  await main.adminClient().upsertResource({
    resource: {
      json: JSON.stringify(
        parseYAML(
          'kind: role\nversion: v1\nmetadata: {name: joiner}\nspec:\n  allow:\n    rules: [{resources: ' +
            '[session_tracker], verbs: [list, read, update]}]\n',
        ),
      ),
    },
    overwrite: false,
  });
  await Promise.all([
    addUser('alice', 'access'),
    addUser('audrey', 'access,auditor'),
    addUser('bob', 'access,joiner'),
    addUser('carol', 'access'),
  ]);
  // crashy streams its recordings while they run (node-sync), and is killed mid-session below.
  crashy = await startAgent(main, 'crashy', ['--tunnel'], CRASHY_CONFIG);
  for (const node of [homeNode(), 'crashy']) {
    await poll(
      `the proxy to route to ${node}`,
      async () =>
        (
          await run('ssh', ['-F', users.alice!.cfg, `root@${node}`, 'true'], {
            env: { WSH_HOME: users.alice!.wshHome },
          })
        ).code === 0
          ? true
          : undefined,
      20_000,
      200,
    );
  }
});

after(async () => {
  killTerminals();
  await cleanup();
});

function homeNode(): string {
  return JSON.parse(readFileSync(join(main.dataDir, 'node', 'identity.json'), 'utf8')).hostname as string;
}

describe('session recording', () => {
  let sid = '';
  let printed = Buffer.alloc(0);

  it('records an interactive session and plays it back byte for byte as the terminal printed it', async () => {
    const t = terminal(users.alice!, homeNode());
    t.type('echo hello-$((6*7))\n');
    t.type("printf 'w\\303\\266rld \\342\\234\\223\\n'\n");
    t.type('stty size\n');
    await t.waitFor(/hello-42/);
    await t.waitFor(/wörld ✓/);
    assert.equal(await t.exit(), 0);
    printed = t.output;
    const rec = await waitForRecording(users.audrey!, (s) => s.spec.user === 'alice');
    sid = rec.metadata.name;
    assert.equal(rec.spec.login, 'root');
    assert.equal(rec.spec.hostname, homeNode());
    assert.equal(rec.spec.interrupted, false);
    assert.deepEqual(rec.spec.participants, ['alice']);
    const played = await wsh(users.audrey!, ['play', sid, '--format', 'text']);
    assert.equal(played.code, 0, played.stderr);
    assert.ok(printed.length > 50, 'the terminal printed the session');
    assert.equal(played.stdout, printed.toString('utf8'), 'the recording holds exactly what the terminal printed');
  });

  it('is asciicast v2 that asciinema reads, exported with wctl', async () => {
    const file = join(work, 'session.cast');
    ok(await main.wctl(['recordings', 'export', sid, '--out', file]));
    const cast = parseCast(readFileSync(file, 'utf8'));
    assert.equal(cast.header.version, 2);
    assert.ok(cast.header.width > 0 && cast.header.height > 0);
    const times = cast.events.map((e) => e[0]);
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
      'event times never go back',
    );
    // asciinema cat writes the output to its terminal: give it one with script(1).
    const cat = await run('script', ['-qec', `asciinema cat ${file}`, '/dev/null']);
    assert.equal(cat.code, 0, cat.stderr);
    assert.match(cat.stdout, /hello-42/);
    assert.match(cat.stdout, /wörld ✓/);
  });

  it('plays at the recorded pace, faster with --speed', async () => {
    const t = terminal(users.alice!, homeNode());
    t.type('sleep 2; echo paced-$((1+1))\n');
    await t.waitFor(/paced-2/);
    assert.equal(await t.exit(), 0);
    const rec = await waitForRecording(users.audrey!, (s) => s.spec.user === 'alice' && s.metadata.name !== sid);
    const timed = async (speed: string) => {
      const t0 = Date.now();
      const r = ok(await wsh(users.audrey!, ['play', rec.metadata.name, '--speed', speed]));
      assert.match(r, /paced-2/);
      return Date.now() - t0;
    };
    const normal = await timed('1');
    const fast = await timed('4');
    // Each run includes wsh's own start-up, which varies with the machine's load: hence a 2 s pause,
    // played in 2 s at speed 1 and 0.5 s at speed 4, and a margin well under the 1.5 s between them.
    assert.ok(normal >= 1_900, `playback at speed 1 kept the 2 s pause (took ${normal} ms)`);
    assert.ok(fast < normal - 700, `--speed 4 is faster (${fast} ms vs ${normal} ms)`);
  });

  it(
    'writes the session events in order: auth, session.start, ' + 'session.end (participants, bytes), session.upload',
    async () => {
      const all = await events(['--user', 'alice']);
      const mine = all.filter((e) => e.sid === sid || (e.event === 'auth' && e.user === 'alice'));
      const names = mine.filter((e) => e.sid === sid).map((e) => e.event);
      assert.deepEqual(names, ['session.start', 'session.end', 'session.upload']);
      const end = mine.find((e) => e.sid === sid && e.event === 'session.end')!;
      assert.deepEqual(end.participants, ['alice']);
      assert.equal(end.exit_code, 0);
      assert.ok((end.bytes_out as number) > 50 && (end.bytes_in as number) > 10, JSON.stringify(end));
      assert.ok((end.duration_ms as number) > 0);
      assert.ok(
        all.some((e) => e.event === 'auth' && e.success === true && e.login === 'root'),
        'the node reported the login',
      );
    },
  );

  it('audits exec and scp with the command and path', async () => {
    ok(
      await run('ssh', ['-F', users.alice!.cfg, `root@${homeNode()}`, 'echo audited'], {
        env: { WSH_HOME: users.alice!.wshHome },
      }),
    );
    const src = join(work, 'upload.txt');
    writeFileSync(src, 'scp me\n');
    ok(
      await run('scp', ['-O', '-F', users.alice!.cfg, src, `root@${homeNode()}:/tmp/ward-rec-upload.txt`], {
        env: { WSH_HOME: users.alice!.wshHome },
      }),
    );
    const batch = join(work, 'sftp.batch');
    writeFileSync(
      batch,
      `put ${src} /tmp/ward-rec-sftp.txt\nrename /tmp/ward-rec-sftp.txt /tmp/ward-rec-sftp2.txt\nrm ` +
        `/tmp/ward-rec-sftp2.txt\n`,
    );
    ok(
      await run('sftp', ['-F', users.alice!.cfg, '-b', batch, `root@${homeNode()}`], {
        env: { WSH_HOME: users.alice!.wshHome },
      }),
    );
    const found = await poll('exec, scp and sftp events', async () => {
      const all = await events(['--user', 'alice', '--type', 'exec,scp,sftp']);
      const exec = all.find((e) => e.event === 'exec' && e.command === 'echo audited');
      const scp = all.find((e) => e.event === 'scp' && e.action === 'upload' && e.path === '/tmp/ward-rec-upload.txt');
      const sftp = all.filter((e) => e.event === 'sftp').map((e) => [e.action, e.path, e.target]);
      return exec && scp && sftp.length >= 3 ? { exec, scp, sftp } : undefined;
    });
    assert.equal(found.exec.code, 'WE3000I');
    assert.equal(found.exec.exit_code, 0, 'exec is reported with how the command ended');
    assert.equal(found.scp.code, 'WF6000I');
    assert.deepEqual(
      found.sftp.filter(([, p]) => String(p).startsWith('/tmp/ward-rec-sftp')),
      [
        ['write', '/tmp/ward-rec-sftp.txt', undefined],
        ['rename', '/tmp/ward-rec-sftp.txt', '/tmp/ward-rec-sftp2.txt'],
        ['remove', '/tmp/ward-rec-sftp2.txt', undefined],
      ],
    );
  });

  it('refuses recordings and events to a user whose roles lack the session and event rules', async () => {
    const ls = await wsh(users.alice!, ['recordings', 'ls']);
    assert.equal(ls.code, 1);
    assert.match(ls.stderr, /access denied.*list on session/);
    const play = await wsh(users.alice!, ['play', sid, '--format', 'text']);
    assert.equal(play.code, 1);
    assert.match(play.stderr, /access denied.*read on session/);
    assert.doesNotMatch(play.stdout + play.stderr, /hello-42/);
    const keys = users.alice!.keys;
    const client = main.client(
      {
        keyPem: readFileSync(join(keys, 'tls.key'), 'utf8'),
        certPem: readFileSync(join(keys, 'tls.crt'), 'utf8'),
        caPems: [readFileSync(join(keys, 'cas.pem'), 'utf8')],
      },
      main.proxyAddr,
    );
    await assert.rejects(client.searchEvents({ limit: 10 }), /access denied.*list on event/);
    await assert.rejects(client.getRecording({ sid, offset: 0n, limit: 100 }), /access denied/);
    const denials = await poll('the refusals in the audit log', async () => {
      const all = (await events(['--type', 'access.denied', '--user', 'alice'])).filter(
        (e) => e.action === 'SearchEvents' || e.action === 'GetRecording',
      );
      return all.length >= 2 ? all : undefined;
    });
    assert.match(String(denials.find((e) => e.action === 'SearchEvents')?.reason), /no role allows list on event/);
  });
});

describe('live sessions', () => {
  it('lists a live session to its owner and to a user with the session_tracker rule, not to others', async () => {
    const t = terminal(users.alice!, homeNode());
    t.type('echo live-$((3*3))\n');
    await t.waitFor(/live-9/);
    const mine = await poll('alice to see her live session', async () =>
      (await liveSessions(users.alice!)).find((s) => s.spec.user === 'alice'),
    );
    assert.equal(mine.spec.login, 'root');
    assert.deepEqual(
      mine.spec.participants.map((p) => [p.user, p.mode]),
      [['alice', 'peer']],
    );
    assert.ok(
      (await liveSessions(users.bob!)).some((s) => s.metadata.name === mine.metadata.name),
      'bob (session_tracker list) sees it',
    );
    assert.ok(
      !(await liveSessions(users.carol!)).some((s) => s.metadata.name === mine.metadata.name),
      'carol does not',
    );
    const text = ok(await wsh(users.alice!, ['sessions', 'ls']));
    assert.match(text, new RegExp(mine.metadata.name));
    assert.equal(await t.exit(), 0);
    await poll('the ended session to leave the list', async () =>
      (await liveSessions(users.alice!)).some((s) => s.metadata.name === mine.metadata.name) ? undefined : true,
    );
  });

  it('lets an observer watch and a peer type; both are in the recording and the session.join events', async () => {
    const t = terminal(users.alice!, homeNode());
    t.type('echo start-$((1+1))\n');
    await t.waitFor(/start-2/);
    const live = await poll('the live session', async () =>
      (await liveSessions(users.alice!)).find((s) => s.spec.user === 'alice'),
    );
    const sid = live.metadata.name;

    const observer = new Terminal(WSH, ['join', sid, '--mode', 'observer'], { WSH_HOME: users.bob!.wshHome });
    await poll('bob to join as observer', async () =>
      (await liveSessions(users.alice!)).find((s) => s.metadata.name === sid)?.spec.participants.length === 2
        ? true
        : undefined,
    );
    t.type('echo seen-by-observer-$((4*4))\n');
    await observer.waitFor(/seen-by-observer-16/, "the owner's output at the observer");
    observer.type('echo observer-typed-$((5*5))\n');
    await new Promise((r) => setTimeout(r, 500));
    assert.doesNotMatch(t.output.toString(), /observer-typed-25/, "an observer's keys never reach the session");

    const peer = new Terminal(WSH, ['join', sid, '--mode', 'peer'], { WSH_HOME: users.bob!.wshHome });
    await poll('bob to join as peer', async () =>
      (await liveSessions(users.alice!)).find((s) => s.metadata.name === sid)?.spec.participants.length === 3
        ? true
        : undefined,
    );
    peer.type('echo peer-typed-$((6*6))\n');
    await t.waitFor(/peer-typed-36/, "the peer's command running in alice's session");

    const hidden = await wsh(users.carol!, ['join', sid]);
    assert.equal(hidden.code, 1, 'carol cannot even find it');
    assert.match(hidden.stderr, /no live session/);
    // Asking the node itself, with the session id in hand, is refused there too.
    const refused = await run(
      'ssh',
      [
        '-F',
        users.carol!.cfg,
        '-tt',
        '-o',
        `SetEnv=WARD_JOIN_SESSION=${sid} WARD_JOIN_MODE=peer`,
        `root@${homeNode()}`,
      ],
      {
        env: { WSH_HOME: users.carol!.wshHome },
        stdin: 'echo carol-got-in\n',
      },
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stdout + refused.stderr, /no live session .* that you may join here/);
    assert.doesNotMatch(t.output.toString(), /carol-got-in/);

    assert.equal(await t.exit(), 0);
    assert.equal(await observer.exited, 0, 'the observer is told the session ended');
    assert.equal(await peer.exited, 0);

    const rec = await waitForRecording(users.audrey!, (s) => s.metadata.name === sid);
    assert.deepEqual([...rec.spec.participants].sort(), ['alice', 'bob']);
    const cast = parseCast(ok(await wsh(users.audrey!, ['play', sid, '--format', 'asciicast'])));
    const markers = cast.events.filter((e) => e[1] === 'm').map((e) => e[2]);
    assert.ok(markers.includes('bob joined as observer'), markers.join('|'));
    assert.ok(markers.includes('bob joined as peer'), markers.join('|'));
    assert.ok(markers.includes('bob typed'), markers.join('|'));
    const joins = await poll('session.join events', async () => {
      const all = (await events(['--type', 'session.join'])).filter((e) => e.sid === sid);
      return all.length === 2 ? all : undefined;
    });
    assert.deepEqual(
      joins.map((e) => [e.user, e.mode]),
      [
        ['bob', 'observer'],
        ['bob', 'peer'],
      ],
    );
    assert.ok((await events(['--type', 'access.denied', '--user', 'carol'])).some((e) => e.action === 'session.join'));
  });
});

describe('a node killed with SIGKILL', () => {
  it('uploads the interrupted recording when it starts again', async () => {
    const t = terminal(users.alice!, 'crashy');
    t.type('echo before-kill-$((20+22))\n');
    await t.waitFor(/before-kill-42/);
    const live = await poll('the live session on crashy', async () =>
      (await liveSessions(users.alice!)).find((s) => s.spec.hostname === 'crashy'),
    );
    // node-sync: the recording reaches the store while the session runs.
    await poll('the live recording in the store', async () => {
      const r = await wsh(users.audrey!, ['play', live.metadata.name, '--format', 'text']);
      return r.code === 0 && /before-kill-42/.test(r.stdout) ? true : undefined;
    });
    t.type('echo after-sync-$((50+50))\n');
    await t.waitFor(/after-sync-100/);
    await crashy.kill();
    await t.exited;
    await crashy.start(['--roles', 'node', '--auth-server', main.proxyAddr, '--tunnel'], CRASHY_CONFIG);
    const rec = await waitForRecording(users.audrey!, (s) => s.metadata.name === live.metadata.name, 30_000);
    assert.equal(rec.spec.interrupted, true);
    const text = ok(await wsh(users.audrey!, ['play', rec.metadata.name, '--format', 'text']));
    assert.match(text, /before-kill-42/);
    assert.match(text, /after-sync-100/, 'what was not streamed before the kill was uploaded after the restart');
    // Streamed while it ran, then resumed after the restart: exactly what the terminal got, no byte twice.
    assert.ok(
      text.startsWith(t.output.toString('utf8')),
      `recording:\n${JSON.stringify(text)}\nterminal:\n${JSON.stringify(t.output.toString('utf8'))}`,
    );
    assert.ok(text.length - t.output.length < 200, 'at most what was in flight when the node died is extra');
    const started = await events(['--type', 'session.start']);
    assert.ok(
      started.some((e) => e.sid === rec.metadata.name),
      'its session.start is in the log',
    );
  });

  it('loses no audit event or recording when the auth server and then the node are killed mid-session', async () => {
    // Reach crashy directly (no proxy): the node checks certificates from its cache, so sessions go on
    // while the auth server is down, and it must keep their events and recordings until it is back.
    await crashy.stop();
    const listening = ['--roles', 'node', '--auth-server', main.proxyAddr]; // and listening, no longer tunnelled
    await crashy.start(listening);
    const port = crashy.addr?.split(':').at(-1);
    assert.ok(port, crashy.stdout);
    const direct = ['-o', 'ProxyCommand=none', '-o', 'HostKeyAlias=crashy', '-p', port];
    const t = new Terminal('ssh', ['-F', users.alice!.cfg, '-tt', ...direct, 'root@127.0.0.1'], {
      WSH_HOME: users.alice!.wshHome,
    });
    t.type('echo before-outage\n');
    await t.waitFor(/before-outage/);
    await main.kill(); // auth, proxy and home node, mid-session
    const marker = `spooled-${randomBytes(4).toString('hex')}`;
    const r = await run('ssh', ['-F', users.alice!.cfg, ...direct, 'root@127.0.0.1', `echo ${marker}`], {
      env: { WSH_HOME: users.alice!.wshHome },
    });
    assert.equal(r.stdout.trim(), marker, r.stderr);
    t.type('echo during-outage-$((7*6))\n');
    await t.waitFor(/during-outage-42/);
    await crashy.kill();
    await t.exited;
    await main.start();
    await crashy.start(listening);
    const exec = await poll(
      'the spooled exec event',
      async () => (await events(['--type', 'exec'])).find((e) => e.command === `echo ${marker}`),
      20_000,
      200,
    );
    assert.equal(exec.server_id, crashy.hostId);
    const all = await events(['--user', 'alice']);
    assert.ok(
      all.find((e) => e.event === 'session.end' && e.sid === exec.sid),
      'session.end of that exec was spooled too',
    );
    // The interactive session was cut by the node's death: its recording arrives, marked interrupted.
    await poll(
      'the recording of the session the outage cut short',
      async () => {
        for (const rec of (await recordings(users.audrey!)).filter(
          (s) => s.spec.hostname === 'crashy' && s.spec.interrupted,
        )) {
          const text = ok(await wsh(users.audrey!, ['play', rec.metadata.name, '--format', 'text']));
          if (/during-outage-42/.test(text)) return true;
        }
        return undefined;
      },
      30_000,
      500,
    );
  });
});

async function metrics(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${diagPort}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

describe('fail closed', () => {
  it('serves metrics for the audit log, the spool and live sessions on the diagnostics address', async () => {
    ok(
      await run('ssh', ['-F', users.alice!.cfg, `root@${homeNode()}`, 'true'], {
        env: { WSH_HOME: users.alice!.wshHome },
      }),
    );
    const text = await poll('the node to send its events', async () => {
      const t = await metrics();
      return Number(/^ward_audit_events_sent_total (\d+)/m.exec(t)?.[1]) > 0 ? t : undefined;
    });
    for (const name of [
      'ward_audit_events_written_total',
      'ward_audit_write_failures_total',
      'ward_audit_spool_bytes',
      'ward_audit_events_sent_total',
      'ward_sessions_live',
      'ward_recordings_spooled',
    ]) {
      assert.match(text, new RegExp(`^${name} \\d+`, 'm'), name);
    }
    assert.equal((await fetch(`http://127.0.0.1:${diagPort}/healthz`)).status, 200);
  });

  it('publishes when each certificate of the process expires, for alerts on renewals that keep failing', async () => {
    const text = await metrics();
    const now = Date.now() / 1000;
    for (const [role, cert] of [
      ['node', 'tls'],
      ['node', 'ssh'],
      ['proxy', 'tls'],
      ['proxy', 'ssh'],
      ['auth', 'tls'],
      ['admin', 'tls'],
    ]) {
      const m = new RegExp(
        `^ward_host_cert_expiry_timestamp_seconds\\{role="${role}",cert="${cert}"\\} (\\d+)$`,
        'm',
      ).exec(text);
      assert.ok(m, `no expiry for the ${role}'s ${cert} certificate`);
      // The default host certificate TTL: a year from issue (the node's may be from an earlier start of this data dir).
      const expires = Number(m[1]);
      assert.ok(expires > now + 300 * 86_400 && expires <= now + 366 * 86_400, `${role} ${cert} expires at ${expires}`);
    }
  });

  it('refuses new sessions while the node cannot write its audit spool, and says so in its log', async () => {
    const spool = join(main.dataDir, 'node', 'audit-spool');
    const aside = `${spool}.aside`;
    renameSync(spool, aside);
    writeFileSync(spool, ''); // a file where the directory was: every new spool segment fails
    try {
      // The segment open before the break still takes writes until the next flush seals it (1 s).
      await new Promise((r) => setTimeout(r, 1500));
      const r = await run('ssh', ['-F', users.alice!.cfg, `root@${homeNode()}`, 'echo should-not-run'], {
        env: { WSH_HOME: users.alice!.wshHome },
      });
      assert.notEqual(r.code, 0);
      assert.doesNotMatch(r.stdout, /should-not-run/);
      assert.match(main.log, /cannot write the audit event: refusing what needed it/);
      const failures = /^ward_audit_spool_write_failures_total (\d+)$/m.exec(await metrics())?.[1];
      assert.ok(Number(failures) >= 1, `the failure is counted in /metrics (got ${failures})`);
    } finally {
      rmSync(spool);
      renameSync(aside, spool);
    }
    const again = await poll('sessions to work again once the spool is back', async () => {
      const r = await run('ssh', ['-F', users.alice!.cfg, `root@${homeNode()}`, 'echo back'], {
        env: { WSH_HOME: users.alice!.wshHome },
      });
      return r.code === 0 ? r.stdout : undefined;
    });
    assert.equal(again.trim(), 'back');
  });
});
