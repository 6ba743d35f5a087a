// `ward`: runs cluster services. `ward start` with no config is the one-process home lab.
import { Command } from 'commander';
import { configSchema, loadConfig, SAMPLE_CONFIG, defaultDataDir, type WardConfig } from '../../config/schema.ts';
import { BadParameter } from '../../api/errors.ts';
import { describeZodError } from '../../api/types.ts';
import { runCLI, failLine } from '../run.ts';
import { VERSION } from '../../api/version.ts';

const program = new Command('ward')
  .description('Ward: identity-aware access to servers, with short-lived certificates')
  .version(VERSION);

program
  .command('start')
  .description('start the services named in the config (no config: auth + proxy, a home lab)')
  .option('-c, --config <path>', 'ward.yaml to read')
  .option('-d, --data-dir <dir>', `where state lives (default ${defaultDataDir()})`)
  .option('--roles <list>', 'services to run: auth,proxy,node (default: what the config enables)')
  .option('--token <token>', 'join token, for a node or proxy joining a cluster (wctl tokens add --type node|proxy)')
  .option(
    '--auth-server <host:port,...>',
    "the cluster's proxies (or auth servers) a joining node dials; a proxy lists auth servers; several fail over",
  )
  .option('--ca-pin <sha256:...>', 'the cluster CA pin to expect when joining (wctl status)')
  .option('--labels <k=v,...>', 'labels of this node, e.g. env=prod,team=db')
  .option('--tunnel', 'node: no inbound port, reach the proxy through a reverse tunnel')
  .option('--diag-addr <host:port>', 'serve Prometheus /metrics and /healthz here (keep it private)')
  .action(async (opts: StartFlags) => {
    const cfg = applyFlags(loadConfig(opts.config), opts);
    const { startProcess } = await import('./start.ts');
    const proc = await startProcess(cfg, { dataDir: opts.dataDir });
    const dataDir = opts.dataDir ?? cfg.ward.data_dir ?? defaultDataDir();
    const dd = opts.dataDir ? ` --data-dir ${dataDir}` : '';
    const next = proc.authAddr
      ? [
          `Ward is running: cluster "${proc.clusterName}"`,
          `  auth API:  ${proc.authAddr}`,
          proc.proxyAddr ? `  proxy:     https://${proc.proxyAddr}` : '',
          proc.nodeAddr ? `  node:      ${proc.nodeAddr}` : '',
          `  CA pin:    ${proc.caPin}`,
          '',
          'Next:',
          `  wctl${dd} users add alice --roles access,editor --logins ` +
            `${[...new Set(['root', process.env.USER ?? 'root'])].join(',')}`,
          proc.proxyAddr ? `  wsh login --proxy ${proc.proxyAddr} --user alice --ca-pin ${proc.caPin}` : '',
          `  wctl${dd} status`,
        ]
      : [
          proc.proxyAddr ? `Ward proxy is running in cluster "${proc.clusterName}": https://${proc.proxyAddr}` : '',
          !cfg.ssh_service.enabled
            ? ''
            : `Ward node is running in cluster "${proc.clusterName}": ` +
              `${proc.nodeAddr ? `listening on ${proc.nodeAddr}` : 'reached through a reverse tunnel'}`,
        ].filter(Boolean);
    process.stdout.write(next.filter((l, i, all) => l !== '' || all[i - 1] !== '').join('\n') + '\n\n');
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`received ${signal}, stopping\n`);
      proc.close().then(
        () => process.exit(0),
        (err) => {
          console.error(failLine(err));
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });

program
  .command('configure')
  .description('print a commented sample ward.yaml')
  .action(() => {
    process.stdout.write(SAMPLE_CONFIG);
  });

interface StartFlags {
  config?: string;
  dataDir?: string;
  roles?: string;
  token?: string;
  authServer?: string;
  caPin?: string;
  labels?: string;
  tunnel?: boolean;
  diagAddr?: string;
}

/** Command-line flags override the config file; the result is validated by the same schema. */
function applyFlags(cfg: WardConfig, f: StartFlags): WardConfig {
  // biome-ignore lint/suspicious/noExplicitAny: an untyped copy to edit, re-validated by the schema below
  const next = structuredClone(cfg) as Record<string, any>;
  if (f.roles) {
    const roles = f.roles.split(',').map((r) => r.trim());
    const unknown = roles.filter((r) => !['auth', 'proxy', 'node'].includes(r));
    if (unknown.length) throw new BadParameter(`unknown role "${unknown[0]}" in --roles (expected auth, proxy, node)`);
    next.auth_service.enabled = roles.includes('auth');
    next.proxy_service.enabled = roles.includes('proxy');
    next.ssh_service.enabled = roles.includes('node');
  }
  if (f.token) next.ward.join_token = f.token;
  if (f.authServer) next.ward.auth_server = f.authServer;
  if (f.caPin) next.ward.ca_pin = f.caPin;
  if (f.tunnel) next.ssh_service.tunnel = true;
  if (f.diagAddr) next.ward.diag_addr = f.diagAddr;
  if (f.labels) {
    next.ssh_service.labels = Object.fromEntries(
      f.labels
        .split(',')
        .filter(Boolean)
        .map((kv) => {
          const [k, v] = kv.split('=');
          if (!k || v === undefined) throw new BadParameter(`invalid label "${kv}" in --labels (expected key=value)`);
          return [k.trim(), v.trim()];
        }),
    );
  }
  const parsed = configSchema.safeParse(next);
  if (!parsed.success) throw new BadParameter(`command line: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

await runCLI(program);
// A server that failed to start exits now, whatever it had begun (a watch retrying, a timer).
if (process.exitCode) process.exit();
