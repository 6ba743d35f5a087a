// End to end: the web UI in a real browser (Debian's Chromium driven by playwright-core) against a real
// `ward start` with a node: sign in, servers, a terminal that runs a command on the node, joining it,
// its recording played back, the audit log, the admin pages and an invite link; then the web API's
// refusals from outside the browser (RBAC from the auth server, CSRF, a 100 MB WebSocket frame).
// Screenshots of every page go to test-output/screenshots/ for a reviewer.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { openBrowser } from './fixtures/browser.ts';
import WebSocket from 'ws';
import { REPO, cleanup, makeTempDir, poll, startCluster, type Cluster, type RunResult } from './harness.ts';

const SHOTS = join(REPO, 'test-output', 'screenshots');
const PASSWORD = 'correct horse battery';

function ok(r: RunResult): string {
  assert.equal(r.code, 0, `expected success, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

let cluster: Cluster;
let base: string;
let context: BrowserContext;
let page: Page;
let nodeName: string;

/** A plain HTTPS call to the proxy (trusting the cluster CA), as a script outside the browser would make. */
function call(
  method: string,
  path: string,
  opts: { cookie?: string; csrf?: string; body?: unknown; origin?: string } = {},
): Promise<{ status: number; body: { error?: { message: string } } & Record<string, unknown>; cookie?: string }> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    if (opts.cookie) headers.cookie = opts.cookie;
    if (opts.csrf) headers['x-csrf-token'] = opts.csrf;
    if (opts.origin) headers.origin = opts.origin;
    const req = https.request(
      url,
      { method, headers, ca: cluster.adminIdentity().caPems, servername: 'localhost' },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () => {
          const set = res.headers['set-cookie']?.[0];
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {}, cookie: set?.split(';')[0] });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body === undefined ? undefined : JSON.stringify(opts.body));
  });
}

async function signInAPI(user: string): Promise<{ cookie: string; csrf: string }> {
  const r = await call('POST', '/webapi/sessions/web', { body: { user, password: PASSWORD } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { cookie: r.cookie!, csrf: String(r.body.csrf_token) };
}

async function shot(p: Page, name: string): Promise<void> {
  await p.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** What an xterm.js terminal on the page shows (its DOM renderer's rows). */
async function screenText(p: Page, testId: string): Promise<string> {
  return p.getByTestId(testId).locator('.xterm-rows').innerText();
}

async function waitForScreen(p: Page, testId: string, pattern: RegExp): Promise<string> {
  return poll(
    `${pattern} on the ${testId}`,
    async () => {
      const text = await screenText(p, testId).catch(() => '');
      return pattern.test(text) ? text : undefined;
    },
    20_000,
    100,
  );
}

async function openTerminal(click: () => Promise<void>): Promise<Page> {
  const [term] = await Promise.all([context.waitForEvent('page'), click()]);
  await term.getByTestId('terminal-status').getByText('connected').waitFor({ timeout: 20_000 });
  return term;
}

before(async () => {
  assert.ok(existsSync(join(REPO, 'dist/web/index.html')), 'the web UI is built (npm run build)');
  mkdirSync(SHOTS, { recursive: true });
  cluster = await startCluster({ node: true });
  base = `https://${cluster.proxyAddr}`;
  nodeName = JSON.parse(readFileSync(join(cluster.dataDir, 'node', 'identity.json'), 'utf8')).hostname as string;
  const work = makeTempDir('ward-e2e-web-');
  const role = join(work, 'no-nodes.yaml');
  // Sees nodes labelled env=nowhere only (there are none), and may read nothing else.
  writeFileSync(
    role,
    'kind: role\nversion: v1\nmetadata: {name: no-nodes}\nspec:\n  allow:\n    logins: [root]\n    node_labels: ' +
      '{env: nowhere}\n    rules: [{resources: [node], verbs: [list, read]}]\n',
  );
  ok(await cluster.wctl(['create', '-f', role]));
  ok(
    await cluster.wctl(
      ['users', 'add', 'ada', '--roles', 'access,editor,auditor', '--logins', 'root', '--password-stdin'],
      { stdin: `${PASSWORD}\n` },
    ),
  );
  ok(
    await cluster.wctl(['users', 'add', 'nell', '--roles', 'no-nodes', '--logins', 'root', '--password-stdin'], {
      stdin: `${PASSWORD}\n`,
    }),
  );
  ({ context, page, consoleErrors: cspErrors } = await openBrowser({ width: 1280, height: 800 }));
});

let cspErrors: string[] = [];

after(async () => {
  await context?.close();
  await cleanup();
});

describe('web UI in Chromium', { concurrency: 1 }, () => {
  it('signs in and lists the servers the user may reach', async () => {
    await page.goto(`${base}/`);
    await page.getByLabel('User name').waitFor();
    await shot(page, '01-sign-in');
    await page.getByLabel('User name').fill('ada');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator(`tr[data-node="${nodeName}"]`).waitFor();
    assert.equal(new URL(page.url()).pathname, '/web/servers');
    const cookie = (await context.cookies(base)).find((c) => c.name === '__Host-ward_session');
    assert.ok(
      cookie && cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict',
      'the session cookie is HttpOnly, Secure, SameSite=Strict',
    );
    await shot(page, '02-servers');
  });

  let sidOfTerminal = '';
  it('opens a terminal on the node, runs a command and sees its output', async () => {
    const term = await openTerminal(() =>
      page.locator(`tr[data-node="${nodeName}"]`).getByRole('link', { name: 'Connect' }).click(),
    );
    await term.getByTestId('terminal').click();
    await term.keyboard.type('echo $((6*7))\n');
    const text = await waitForScreen(term, 'terminal', /^42\s*$/m);
    assert.match(text, /echo \$\(\(6\*7\)\)/, 'the command is echoed as typed');
    await term.keyboard.type("printf 'w\\303\\266rld \\342\\234\\223\\n'\n");
    await waitForScreen(term, 'terminal', /wörld ✓/);
    await shot(term, '03-terminal');

    // While it runs, it is an active session; another tab joins it as an observer and sees its output.
    await page.getByRole('link', { name: 'Active sessions' }).click();
    const row = page.locator('tr', { hasText: `root@${nodeName}` }).first();
    await row.waitFor();
    sidOfTerminal = (await row.locator('td').first().innerText()).trim();
    await shot(page, '04-active-sessions');
    const observer = await openTerminal(() => row.getByRole('link', { name: 'Observe' }).click());
    await term.keyboard.type('echo joined-$((1+1))\n');
    await waitForScreen(observer, 'terminal', /joined-2/);
    await shot(observer, '05-terminal-observer');
    await observer.close();

    await term.keyboard.type('exit\n');
    await term
      .getByTestId('terminal-status')
      .getByText(/session ended \(exit status 0\)/)
      .waitFor({ timeout: 15_000 });
    await term.close();
  });

  it('plays the recording of that session', async () => {
    await page.getByRole('link', { name: 'Recordings' }).click();
    const play = page
      .locator('tr', { hasText: `root@${nodeName}` })
      .getByRole('link', { name: 'Play' })
      .first();
    // The node uploads the recording when the session ends.
    await poll(
      'the recording in the list',
      async () => {
        if (await play.isVisible()) return true;
        await page.reload();
        await page.locator('h1', { hasText: 'Session recordings' }).waitFor();
        return undefined;
      },
      20_000,
      500,
    );
    await shot(page, '06-recordings');
    await play.click();
    assert.ok(page.url().endsWith(sidOfTerminal), 'the recording is the terminal session');
    await page.getByLabel('Speed').selectOption('8');
    await waitForScreen(page, 'player', /^42\s*$/m);
    await waitForScreen(page, 'player', /joined-2/);
    await shot(page, '07-player');
    // Seek back to the start: the screen is replayed from nothing.
    await page.getByRole('button', { name: /Pause|Play/ }).click();
    await page.getByLabel('Timeline').fill('0');
    const atStart = await screenText(page, 'player');
    assert.doesNotMatch(atStart, /joined-2/, 'seeking to the start clears what came later');
  });

  it('searches the audit log and shows the JSON of an event', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('Types').fill('session.start, session.end');
    await page.getByRole('button', { name: 'Search' }).click();
    const row = page.locator('tbody tr', { hasText: 'session.start' }).first();
    await row.waitFor();
    // The unfiltered list (shown first) is replaced by the filtered one.
    await poll('the type filter to apply', async () =>
      (await page.locator('tbody tr', { hasText: 'user.login' }).count()) === 0 ? true : undefined,
    );
    await row.click();
    const json = JSON.parse(await page.getByTestId('event-json').innerText()) as Record<string, unknown>;
    assert.equal(json.event, 'session.start');
    assert.equal(json.user, 'ada');
    await shot(page, '08-audit-log');
  });

  let invite = '';
  it('adds a user with an invite link, and edits roles with validation errors shown inline', async () => {
    await page.getByRole('link', { name: 'Users' }).click();
    await page.getByLabel('Name').fill('cleo');
    await page.getByLabel('Roles').fill('access');
    await page.getByLabel('Logins').fill('root');
    await page.getByRole('button', { name: 'Add user' }).click();
    invite = await page.getByTestId('invite-link').locator('input').inputValue();
    assert.match(invite, /^https:\/\/.+\/web\/invite\/[0-9a-f]{64}$/);
    await page.locator('tr', { hasText: 'cleo' }).waitFor();
    await shot(page, '09-users');

    await page.getByRole('link', { name: 'Roles' }).click();
    await page.getByRole('button', { name: 'New role' }).click();
    const editor = page.getByLabel('Role YAML');
    await editor.fill(
      'kind: role\nversion: v1\nmetadata: {name: web-made}\nspec:\n  allow:\n    logins: [root]\n    rulez: []\n',
    );
    await page.getByRole('button', { name: 'Save' }).click();
    assert.match(await page.getByTestId('role-error').innerText(), /spec\.allow\.rulez: unknown key/);
    await shot(page, '10-roles-error');
    await editor.fill('kind: role\nversion: v1\nmetadata: {name: web-made}\nspec:\n  allow:\n    logins: [root]\n');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved role web-made.').waitFor();
    assert.match(ok(await cluster.wctl(['get', 'roles', 'web-made', '--format', 'yaml'])), /name: web-made/);
    await shot(page, '11-roles');

    await page.getByRole('link', { name: 'Join tokens' }).click();
    await page.getByLabel('Labels').fill('env=lab');
    await page.getByRole('button', { name: 'Add token' }).click();
    const command = await page.locator('.notice input').inputValue();
    assert.match(
      command,
      /^ward start --roles node --token [0-9a-f]{32} --auth-server \S+ --ca-pin sha256:[0-9a-f]{64} --labels env=lab$/,
    );
    await shot(page, '12-join-tokens');
  });

  it('looks right in the dark theme and on a narrow window', async () => {
    await page.getByRole('link', { name: 'Servers' }).click();
    await page.getByRole('button', { name: 'Toggle theme' }).click();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
    await page.setViewportSize({ width: 420, height: 800 });
    await page.locator(`tr[data-node="${nodeName}"]`).waitFor();
    await shot(page, '13-servers-dark-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.getByRole('button', { name: 'Toggle theme' }).click();
  });

  it('signs out, and the session is gone on the server too', async () => {
    const cookie = (await context.cookies(base)).find((c) => c.name === '__Host-ward_session')!;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('User name').waitFor();
    const r = await call('GET', '/webapi/nodes', { cookie: `${cookie.name}=${cookie.value}` });
    assert.equal(r.status, 401, 'the old cookie no longer works');
  });

  it('lets an invited user set a password and sign in with the link, once', async () => {
    await context.clearCookies();
    await page.goto(invite);
    await page.getByText('Choose a password for').waitFor();
    await page.getByLabel('New password').fill(PASSWORD);
    await page.getByLabel('Confirm password').fill(PASSWORD);
    await shot(page, '14-invite');
    await page.getByRole('button', { name: 'Set password and sign in' }).click();
    await page.locator(`tr[data-node="${nodeName}"]`).waitFor();
    assert.equal(await page.locator('.who').innerText(), 'cleo');
    const again = await call('GET', `/webapi/invites/${invite.split('/').at(-1)}`);
    assert.equal(again.status, 404, 'the link works once');
  });

  it('ran every page under the CSP without a violation', () => {
    assert.deepEqual(
      cspErrors.filter((e) => /Content Security Policy/i.test(e)),
      [],
    );
  });
});

describe('web API refusals', () => {
  it('lets RBAC at the auth server decide: a user without access sees no node and gets 403', async () => {
    const nell = await signInAPI('nell');
    const nodes = await call('GET', '/webapi/nodes', { cookie: nell.cookie });
    assert.equal(nodes.status, 200);
    assert.deepEqual(nodes.body.nodes, [], 'the node is not listed');
    const events = await call('GET', '/webapi/events', { cookie: nell.cookie });
    assert.equal(events.status, 403);
    assert.match(events.body.error!.message, /no role allows list on event/);
    const add = await call('POST', '/webapi/users', {
      cookie: nell.cookie,
      csrf: nell.csrf,
      body: { name: 'x', roles: ['access'], logins: [] },
    });
    assert.equal(add.status, 403);
  });

  it('refuses a state-changing call without the CSRF token, with a wrong one, or from another origin', async () => {
    const ada = await signInAPI('ada');
    const body = { name: 'mallory', roles: ['editor'], logins: [] };
    const none = await call('POST', '/webapi/users', { cookie: ada.cookie, body });
    assert.equal(none.status, 403);
    assert.match(none.body.error!.message, /CSRF/);
    assert.equal((await call('POST', '/webapi/users', { cookie: ada.cookie, csrf: 'x'.repeat(43), body })).status, 403);
    assert.equal(
      (
        await call('POST', '/webapi/users', {
          cookie: ada.cookie,
          csrf: ada.csrf,
          body,
          origin: 'https://evil.example',
        })
      ).status,
      403,
    );
    assert.equal(
      (await call('DELETE', '/webapi/sessions/web/current', { cookie: ada.cookie })).status,
      403,
      'sign-out needs it too',
    );
    assert.match(ok(await cluster.wctl(['users', 'ls'])), /^ada /m);
    assert.doesNotMatch(ok(await cluster.wctl(['users', 'ls'])), /mallory/);
  });

  it('refuses a terminal WebSocket from another origin, and closes one that sends a 100 MB frame', async () => {
    const ada = await signInAPI('ada');
    const node = (await call('GET', '/webapi/nodes', { cookie: ada.cookie })).body.nodes as Array<{ id: string }>;
    const url =
      `wss://${cluster.proxyAddr}/webapi/terminal?node=${node[0]!.id}` + `&login=root&cols=80&rows=24&csrf=${ada.csrf}`;
    const open = (origin: string) =>
      new WebSocket(url, {
        headers: { cookie: ada.cookie, origin },
        ca: cluster.adminIdentity().caPems,
        servername: 'localhost',
      } as WebSocket.ClientOptions);
    const refused = await new Promise<number>((resolve) => {
      const ws = open('https://evil.example');
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    assert.equal(refused, 403);
    const code = await new Promise<number>((resolve, reject) => {
      const ws = open(`https://${cluster.proxyAddr}`);
      ws.on('error', () => undefined);
      ws.on('open', () => ws.send(Buffer.alloc(100 * 1024 * 1024), { binary: true }));
      ws.on('close', (c) => resolve(c));
      setTimeout(() => reject(new Error('the proxy kept the socket open')), 20_000).unref();
    });
    assert.equal(code, 1009, 'closed as "message too big"');
  });
});
