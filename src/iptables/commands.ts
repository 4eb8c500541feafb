// The commands that apply a plan, as data (pure), and the shell script
// `nfips iptables print` shows for them.
import { restoreScript, setPrefixFor } from '../blocks/ipset';
import { Block } from '../blocks/block';
import { Command, commandLine } from '../exec/run';
import { binaryFor, DEFAULT_BINARIES, Family, IptablesBinaries, ipsetCommand, restoreBinaryFor, wrap } from '../exec/tools';
import { FamilyPlan, IptablesPlan, QueueTable, TablePlan } from './plan';

/** `<iptables> -w -t TABLE ARGS`: -w so a concurrent firewall tool makes us wait, not fail. */
export function iptablesCommand(family: Family, bins: IptablesBinaries, args: string[], table: QueueTable = 'filter'): Command {
  return wrap(bins, binaryFor(family, bins), ['-w', '-t', table, ...args]);
}

/** Creates the family's block sets (they must not exist) and fills them with the blocks. */
export function setsCommand(fp: FamilyPlan, bins: IptablesBinaries, blocks: readonly Block[] = [], now = Date.now()): Command {
  return ipsetCommand(bins, ['restore'], restoreScript(setPrefixFor(fp.chain), [fp.family], blocks, now));
}

/** `iptables-restore --noflush` with a payload for one family (the payload names its table). */
export function restorePayloadCommand(family: Family, bins: IptablesBinaries, payload: string): Command {
  return wrap(bins, restoreBinaryFor(family, bins), ['--noflush', '-w'], payload);
}

export function restoreCommand(fp: FamilyPlan, tp: TablePlan, bins: IptablesBinaries): Command {
  return restorePayloadCommand(fp.family, bins, tp.restore);
}

export function jumpCommands(fp: FamilyPlan, tp: TablePlan, bins: IptablesBinaries): Command[] {
  return tp.jumps.map((j) => iptablesCommand(fp.family, bins, ['-I', j.parent, String(j.position), ...j.spec], tp.table));
}

function heredocDelimiter(payload: string): string {
  const lines = new Set(payload.split('\n'));
  let d = 'NFIPS_RULES';
  while (lines.has(d)) d += '_';
  return d;
}

/** A POSIX shell script doing what install() does after removing stale nfips state. */
export function renderPlanText(plan: IptablesPlan, bins: IptablesBinaries = DEFAULT_BINARIES): string {
  const o = plan.options;
  const queues = o.queues.first === o.queues.last ? `${o.queues.first}` : `${o.queues.first}:${o.queues.last}`;
  const where = o.table === 'filter' ? 'queued from the filter table' : 'queued from the mangle table, rejects in the filter table';
  const out = [
    `# nfips iptables plan: chain ${plan.chain}, hook ${o.hook}, queue ${queues}, ${where}, ${o.failClosed ? 'fail-closed' : 'fail-open (--queue-bypass)'}`,
    `# install first deletes any ${plan.chain} jumps from FORWARD/INPUT (mangle and filter), the ${plan.chain} chains and the block sets left by an earlier run, then runs:`,
  ];
  for (const fp of plan.families) {
    const sets = setsCommand(fp, bins);
    out.push('', `# ${fp.family}: the block sets (then the saved blocks are added), then per table the chain and its jumps`);
    out.push(`${commandLine(sets)} <<'${heredocDelimiter(sets.input ?? '')}'`, ...(sets.input ?? '').replace(/\n$/, '').split('\n'), heredocDelimiter(sets.input ?? ''));
    for (const tp of fp.tables) {
      const restore = restoreCommand(fp, tp, bins);
      const delim = heredocDelimiter(tp.restore);
      out.push(`${commandLine(restore)} <<'${delim}'`, ...tp.restore.replace(/\n$/, '').split('\n'), delim);
      out.push(...jumpCommands(fp, tp, bins).map(commandLine));
    }
  }
  return `${out.join('\n')}\n`;
}
