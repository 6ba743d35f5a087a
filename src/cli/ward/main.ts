// `ward`: runs cluster services. `ward start` with no config is the one-process home lab.
import { Command } from 'commander';
import { loadConfig, SAMPLE_CONFIG, defaultDataDir } from '../../config/schema.ts';
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
  .action(async (opts: { config?: string; dataDir?: string }) => {
    const cfg = loadConfig(opts.config);
    const { startProcess } = await import('./start.ts');
    const proc = await startProcess(cfg, { dataDir: opts.dataDir });
    const dataDir = opts.dataDir ?? cfg.ward.data_dir ?? defaultDataDir();
    const dd = opts.dataDir ? ` --data-dir ${dataDir}` : '';
    process.stdout.write(
      [
        `Ward is running: cluster "${proc.clusterName}"`,
        `  auth API:  ${proc.authAddr}`,
        proc.proxyAddr ? `  proxy:     https://${proc.proxyAddr}` : '',
        `  CA pin:    ${proc.caPin}`,
        '',
        'Next:',
        `  wctl${dd} users add alice --roles access,editor --logins ${[...new Set(['root', process.env.USER ?? 'root'])].join(',')}`,
        proc.proxyAddr ? `  wsh login --proxy ${proc.proxyAddr} --user alice --ca-pin ${proc.caPin}` : '',
        `  wctl${dd} status`,
        '',
      ]
        .filter((l, i, all) => l !== '' || all[i - 1] !== '')
        .join('\n') + '\n',
    );
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

await runCLI(program);
