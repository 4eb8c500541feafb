// Command line: parses and checks flags, then hands over to src/app.
import yargs, { Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EXIT_CONFIG, EXIT_RUNTIME, binariesFor, planFor, startRun, StartupError } from '../app/run';
import { resolveRunOptions, RUN_DEFAULTS, RunFlags, RunOptions } from '../config/run-options';
import { describeRemoval, install, iptablesAvailable, remove, renderPlanText } from '../iptables/apply';
import { runDemo } from '../demo/demo';

function die(message: string, code: number): never {
  process.stderr.write(`nfips: ${message.replace(/\n/g, '\nnfips: ')}\n`);
  process.exit(code);
}

function resolveOrDie(flags: RunFlags): RunOptions {
  try {
    return resolveRunOptions(flags);
  } catch (e) {
    die((e as Error).message, EXIT_CONFIG);
  }
}

/** Flags that shape what is installed in iptables (run and iptables share them). */
function chainFlags<T>(y: Argv<T>) {
  return y
    .option('queues', { type: 'string', default: RUN_DEFAULTS.queues, describe: 'NFQUEUE queue number N or range A-B; one thread per queue, flows spread with --queue-balance' })
    .option('hook', { type: 'string', default: RUN_DEFAULTS.hook, choices: ['forward', 'input', 'both'], describe: 'which packets: forwarded ones, ones addressed to this host (INPUT, lo excluded), or both' })
    .option('mark', { type: 'string', default: RUN_DEFAULTS.mark, describe: 'repeat mark VALUE/MASK set on accepted packets; marked packets skip the queue on re-entry' })
    .option('fail-closed', { type: 'boolean', default: false, describe: 'drop packets when nfips is not running or the queue is full (default: let them pass)' })
    .option('exclude', { type: 'string', array: true, default: [] as string[], describe: 'CIDR whose traffic never goes to the queue (repeatable)' })
    .option('ipv6', { type: 'boolean', default: RUN_DEFAULTS.ipv6, describe: 'also inspect IPv6 (ip6tables); --no-ipv6 for IPv4 only' })
    .option('iptables', { type: 'string', default: RUN_DEFAULTS.iptables, describe: 'iptables binary (e.g. iptables-legacy)' })
    .option('ip6tables', { type: 'string', default: RUN_DEFAULTS.ip6tables, describe: 'ip6tables binary' });
}

async function cmdRun(flags: RunFlags): Promise<void> {
  const o = resolveOrDie(flags);
  try {
    const h = await startRun(o, { console: true, handleSignals: true });
    process.exitCode = await h.done;
  } catch (e) {
    die((e as Error).message, e instanceof StartupError ? e.exitCode : EXIT_RUNTIME);
  }
}

async function cmdIptables(action: string, flags: RunFlags): Promise<void> {
  const o = resolveOrDie(flags);
  const plan = planFor(o);
  const bins = binariesFor(o);
  if (action === 'print') {
    process.stdout.write(renderPlanText(plan, bins));
    return;
  }
  const reason = await iptablesAvailable(bins, plan.families.map((f) => f.family));
  if (reason) die(`cannot manage iptables: ${reason}`, EXIT_RUNTIME);
  try {
    if (action === 'install') {
      const s = await install(plan, bins);
      process.stdout.write(`installed chain ${s.chain}: ${s.families.map((f) => `${f.family} ${f.rules} rules, jumps from ${f.jumps.join('+')}`).join('; ')}\n`);
      process.stdout.write('nothing answers the queue until "nfips run" starts; without --fail-closed packets bypass it meanwhile\n');
    } else {
      process.stdout.write(`${describeRemoval(await remove({ chain: plan.chain, families: plan.families.map((f) => f.family) }, bins))}\n`);
    }
  } catch (e) {
    die((e as Error).message, EXIT_RUNTIME);
  }
}

void yargs(hideBin(process.argv))
  .scriptName('nfips')
  .usage('$0 <command> [options]\n\nInline intrusion prevention over NFQUEUE repeat mode.')
  .command(
    'run',
    'inspect every forwarded (and/or input) packet until stopped with SIGINT/SIGTERM',
    (y) =>
      chainFlags(y)
        .option('rules', { type: 'string', describe: 'JSON rule file (default: rules/default.json shipped with nfips)' })
        .option('verdict-mode', { type: 'string', default: RUN_DEFAULTS.verdictMode, choices: ['repeat', 'accept'], describe: 'repeat: NF_REPEAT + mark, so the host ruleset still decides; accept: plain NF_ACCEPT' })
        .option('log-file', { type: 'string', default: RUN_DEFAULTS.logFile, describe: 'JSON-lines event log' })
        .option('log-level', { type: 'string', default: RUN_DEFAULTS.logLevel, choices: ['error', 'warn', 'info', 'debug'] })
        .option('stats-interval', { type: 'number', default: RUN_DEFAULTS.statsInterval, describe: 'seconds between per-queue stats events (0: off)' })
        .option('copy-range', { type: 'number', default: RUN_DEFAULTS.copyRange, describe: 'bytes of each packet copied to nfips' })
        .option('queue-maxlen', { type: 'number', default: RUN_DEFAULTS.queueMaxlen, describe: 'kernel queue length, in packets' })
        .option('batch-size', { type: 'number', default: RUN_DEFAULTS.batchSize, describe: 'most packets handed over per native call' })
        .option('rcvbuf-mb', { type: 'number', default: RUN_DEFAULTS.rcvbufMb, describe: 'netlink socket receive buffer, MiB' })
        .example('$0 run --rules rules/default.json --queues 0-1 --hook forward --log-file /var/log/nfips/nfips.json', ''),
    (argv) => cmdRun(argv as RunFlags),
  )
  .command(
    'iptables <action>',
    'print, install or remove the NFIPS chain and its jumps (remove cleans up after kill -9)',
    (y) => chainFlags(y).positional('action', { choices: ['print', 'install', 'remove'] as const, demandOption: true }),
    (argv) => cmdIptables(argv.action, argv as RunFlags),
  )
  .command(
    'demo',
    'build a client/gateway/server namespace topology, run nfips inline on it with rules/default.json, drive traffic, tear down',
    (y) => y.option('keep', { type: 'boolean', default: false, describe: 'leave the namespaces in place afterwards' }),
    async (argv) => {
      process.exitCode = await runDemo({ keep: argv.keep });
    },
  )
  .demandCommand(1, 'say which command to run')
  .strict()
  .recommendCommands()
  .help()
  .wrap(Math.min(110, process.stdout.columns || 110))
  .fail((msg, err, y) => {
    if (err) die(err.message, EXIT_RUNTIME);
    y.showHelp();
    die(msg, EXIT_CONFIG);
  })
  .parseAsync();
