// `wsh`: the user's client. Log in once, then reach servers with short-lived certificates.
import { Command, Option } from 'commander';
import { formatDuration, parseDuration } from '../../time/duration.ts';
import { resolve } from 'node:path';
import { runCLI } from '../run.ts';
import { VERSION } from '../../api/version.ts';
import { IDENTITY_ENV, PROXY_ENV, loadProfile, removeLogin, wshHome } from './profile.ts';

// Commands load their modules when they run: `wsh proxy ssh` starts on every ssh connection.
const sshCommands = () => import('./ssh.ts');

interface GlobalOptions {
  proxy?: string;
  user?: string;
  identity?: string;
  insecure?: boolean;
}

const program = new Command('wsh')
  .description('Ward client: log in, then reach servers with short-lived certificates')
  .option('--proxy <host:port>', "the cluster's proxy")
  .option('--user <name>', 'your Ward user name', process.env.WARD_USER)
  .option('-i, --identity <file>', 'identity file to use instead of a login (wctl auth sign --format file)')
  .option('--insecure', "do not check the proxy's certificate (home labs only)")
  .version(VERSION)
  .enablePositionalOptions()
  .showHelpAfterError();

const globals = () => program.opts<GlobalOptions>();

// -i: every command below reads the identity file instead of a login, and so does the `wsh proxy ssh` that OpenSSH
// starts (it inherits the environment).
program.hook('preAction', () => {
  const g = globals();
  if (!g.identity) return;
  process.env[IDENTITY_ENV] = resolve(g.identity);
  if (g.proxy) process.env[PROXY_ENV] = g.proxy;
});

program
  .command('login')
  .description('log in with a password and store fresh certificates under WSH_HOME (~/.wsh)')
  .option('--proxy <host:port>', "the cluster's proxy")
  .option('--user <name>', 'your Ward user name')
  .option('--ttl <duration>', 'how long the certificates live (capped by your roles)', '12h')
  .option('--password-stdin', 'read the password from standard input')
  .option(
    '--otp-stdin',
    'read the second-factor code from standard input (after the password line with --password-stdin)',
  )
  .option('--ca-pin <sha256:...>', 'the cluster CA pin to expect (from wctl status)')
  .option('--insecure', "do not check the proxy's certificate (home labs only)")
  .action(
    async (opts: {
      proxy?: string;
      user?: string;
      ttl: string;
      passwordStdin?: boolean;
      otpStdin?: boolean;
      caPin?: string;
      insecure?: boolean;
    }) => {
      const g = globals();
      const proxy = opts.proxy ?? g.proxy;
      if (!proxy) throw new Error('--proxy HOST:PORT is required');
      const user = opts.user ?? g.user ?? '';
      const { login } = await import('./login.ts');
      const { certs, dir } = await login(
        {
          proxy,
          user,
          ttlMs: parseDuration(opts.ttl),
          passwordStdin: !!opts.passwordStdin,
          otpStdin: !!opts.otpStdin,
          insecure: !!(opts.insecure ?? g.insecure),
          caPin: opts.caPin,
        },
        (s) => process.stderr.write(s),
      );
      process.stdout.write(
        `Logged in as ${user} to cluster "${certs.cluster_name}" via ${proxy}; certificates valid for ` +
          `${formatDuration(certs.ttl_seconds * 1000)}.\nKeys: ${dir}\n`,
      );
    },
  );

program
  .command('status')
  .description('show the current login: user, roles, logins, cluster, expiry')
  .action(async () => {
    const { parseCertificate } = await import('../../crypto/sshcert.ts');
    const { parseAuthorizedKey } = await import('../../crypto/sshkeys.ts');
    const { readIdentity } = await import('../../crypto/x509.ts');
    const identity = process.env[IDENTITY_ENV];
    const { creds, profile } = loadProfile();
    const ssh = parseCertificate(parseAuthorizedKey(creds.sshCert).blob);
    const id = readIdentity(creds.tlsCert);
    const left = ssh.validBefore.getTime() - Date.now();
    const lines = [
      identity
        ? `> Identity file: ${identity}${process.env[PROXY_ENV] ? ` via ${process.env[PROXY_ENV]}` : ''}`
        : `> Profile: ${profile.proxy}`,
      `  Cluster:     ${id.cluster}`,
      `  User:        ${id.username}`,
      `  Roles:       ${id.roles.join(', ')}`,
      `  Logins:      ${ssh.principals.filter((p) => !p.startsWith('-ward-nologin-')).join(', ') || '(none)'}`,
      `  Valid until: ${ssh.validBefore.toISOString()} ` +
        `${left > 0 ? `[valid for ${formatDuration(left)}]` : '[EXPIRED]'}`,
      `  Extensions:  ${Object.keys(ssh.extensions)
        .filter((e) => e.startsWith('permit-'))
        .join(', ')}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  });

program
  .command('logout')
  .description("remove the current login's keys and certificates")
  .action(() => {
    const removed = removeLogin();
    process.stdout.write(
      removed ? `Logged out ${removed.user} from ${removed.proxy}.\n` : `Not logged in (nothing under ${wshHome()}).\n`,
    );
  });

program
  .command('ls')
  .description('list the nodes you may reach')
  .option('--format <f>', 'text or json', 'text')
  .argument('[labels...]', 'label filters, key=value')
  .action(async (labels: string[], opts: { format: string }) => {
    process.stdout.write(await (await sshCommands()).ls(opts.format, labels));
  });

program
  .command('ssh')
  .description('run a shell or a command on a node (OpenSSH ssh with your Ward certificate, through the proxy)')
  .argument('<login@node>', 'login and node name, id, or label=value')
  .argument('[command...]', 'command to run (default: a login shell)')
  .option(
    '-L, --forward <spec>',
    'local port forwarding, as ssh -L',
    (v: string, prev: string[]) => [...prev, v],
    [] as string[],
  )
  .option('-A, --forward-agent', 'forward your SSH agent')
  .option('-t, --tty', 'force a PTY')
  .passThroughOptions()
  .action(
    async (target: string, command: string[], opts: { forward: string[]; forwardAgent?: boolean; tty?: boolean }) => {
      process.exitCode = await (await sshCommands()).ssh(target, command, {
        forward: opts.forward,
        agent: !!opts.forwardAgent,
        tty: !!opts.tty,
      });
    },
  );

program
  .command('bench')
  .description('open sessions to a node at a fixed rate through the proxy; print latency percentiles and errors')
  .argument('<login@node>', 'login and node name or id')
  .argument('[command...]', 'command each session runs (default: true); with --interactive, typed into the shell')
  .option('--rate <n>', 'sessions started per second', '20')
  .option('--duration <d>', 'how long to keep starting sessions (e.g. 30s, 2m)', '30s')
  .option('--interactive', 'open a shell on a PTY instead of running an exec command')
  .addHelpText(
    'after',
    '\nEach session goes the way `wsh ssh` goes (mutual TLS to the proxy, then SSH with your certificate to the\n' +
      'node), driven by an SSH client inside wsh rather than one OpenSSH process per session, so the figures are\n' +
      "the cluster's latency, not process start-up. Latency runs from the TLS dial to the end of the session;\n" +
      'sessions start on schedule whether or not earlier ones have ended. Exit status 1 if any session failed.\n',
  )
  .passThroughOptions()
  .action(
    async (target: string, command: string[], opts: { rate: string; duration: string; interactive?: boolean }) => {
      process.exitCode = await (await import('./bench.ts')).bench(target, command, {
        rate: opts.rate,
        duration: opts.duration,
        interactive: !!opts.interactive,
      });
    },
  );

const mfa = program.command('mfa').description('your second factors (when the cluster asks for one at login)');
mfa
  .command('add')
  .description('register an authenticator app (TOTP): scan the QR code, then type a code from the app')
  .addOption(new Option('--type <t>', 'device type').default('totp').choices(['totp']))
  .option('--name <name>', 'a name for the device', 'authenticator')
  .option('--otp-stdin', 'read the code(s) from standard input, one per line (existing device first, if any)')
  .action(async (opts: { type: string; name: string; otpStdin?: boolean }) => {
    await (await import('./mfa.ts')).addDevice({ type: opts.type, name: opts.name, otpStdin: !!opts.otpStdin }, (s) =>
      process.stdout.write(s),
    );
  });
mfa
  .command('ls')
  .description('list your second-factor devices')
  .addOption(new Option('--format <f>', 'text or json').default('text').choices(['text', 'json']))
  .action(async (opts: { format: string }) => {
    process.stdout.write(await (await import('./mfa.ts')).listDevices(opts.format));
  });
mfa
  .command('rm')
  .description('remove one of your second-factor devices')
  .argument('<device>', 'its name or id')
  .action(async (device: string) => {
    process.stdout.write(await (await import('./mfa.ts')).removeDevice(device));
  });

const recordings = program
  .command('recordings')
  .description('recorded sessions (needs a role with the `session` rule)');
recordings
  .command('ls')
  .description('list recorded sessions, newest first')
  .addOption(new Option('--format <f>', 'text or json').default('text').choices(['text', 'json']))
  .action(async (opts: { format: string }) => {
    const { listRecordings } = await import('../recordings.ts');
    process.stdout.write(await listRecordings(await (await sshCommands()).authClient(), opts.format));
  });

program
  .command('play')
  .description('play a recorded session in this terminal at its recorded pace')
  .argument('<session-id>', 'from wsh recordings ls')
  .option('--speed <x>', 'playback speed, e.g. 2 or 0.5', '1')
  .option('--max-idle <seconds>', 'cap pauses at this many seconds', '2')
  .addOption(
    new Option('--format <f>', 'play in the terminal, or dump it: asciicast (asciinema play reads it), json, text')
      .default('play')
      .choices(['play', 'asciicast', 'json', 'text']),
  )
  .action(async (sid: string, opts: { speed: string; maxIdle: string; format: string }) => {
    const rec = await import('../recordings.ts');
    const data = await rec.fetchRecording(await (await sshCommands()).authClient(), sid);
    if (opts.format !== 'play') {
      process.stdout.write(rec.dumpRecording(data, opts.format));
      return;
    }
    await rec.play(rec.readCast(data), process.stdout, Number(opts.speed), Number(opts.maxIdle));
  });

const sessions = program.command('sessions').description('live sessions');
sessions
  .command('ls')
  .description('list live sessions you may see (yours, or all with the session_tracker rule)')
  .addOption(new Option('--format <f>', 'text or json').default('text').choices(['text', 'json']))
  .action(async (opts: { format: string }) => {
    const { listLiveSessions } = await import('../recordings.ts');
    process.stdout.write(await listLiveSessions(await (await sshCommands()).authClient(), opts.format));
  });

program
  .command('join')
  .description('join a live session: observers watch, peers can type too')
  .argument('<session-id>', 'from wsh sessions ls')
  .addOption(new Option('--mode <m>', 'observer or peer').default('observer').choices(['observer', 'peer']))
  .option('--login <login>', "the login to reach the node with (default: the session's)")
  .action(async (sid: string, opts: { mode: string; login?: string }) => {
    process.exitCode = await (await sshCommands()).joinSession(sid, opts.mode as 'observer' | 'peer', opts.login);
  });

program
  .command('scp')
  .description('copy files to and from nodes (remote paths: login@node:path)')
  .option('-r, --recursive', 'copy directories')
  .argument('<paths...>', 'sources, then the destination')
  .action(async (paths: string[], opts: { recursive?: boolean }) => {
    process.exitCode = await (await sshCommands()).scp(paths, !!opts.recursive);
  });

program
  .command('config')
  .description('print an ssh_config block so plain ssh reaches NODE.CLUSTER through Ward')
  .action(async () => {
    process.stdout.write((await sshCommands()).config());
  });

program
  .command('proxy')
  .description('proxy helpers')
  .command('ssh')
  .description('ProxyCommand: carry stdin/stdout to the node through the proxy')
  .argument('<[login@]node[:port]>')
  .action(async (target: string) => {
    await (await import('./proxycmd.ts')).proxySSH(target);
  });

await runCLI(program);
// A failed command exits now, whatever it had begun: a connection to a server that never answered would
// otherwise hold the process open after its error was printed.
if (process.exitCode) process.exit();
