// Control socket requests of a running nfips, each handed to the piece that
// owns the answer.
import { BlockManager } from '../blocks/manager';
import { ControlRequest } from '../control/protocol';
import { QueueSupervisor } from '../queue/supervisor';
import { DEFAULT_SESSIONS_LIMIT } from '../flow/session-snapshot';
import { RuleReloader } from './reload';

/** What block requests answer when nothing enforces blocks. */
export const NO_BLOCKS = 'this nfips watch was started without --block: it enforces no blocks (give --block on a box that forwards the watched traffic)';

export interface ControlTargets {
  reloader: RuleReloader;
  sup: QueueSupervisor;
  /** null: nothing enforces blocks (nfips watch without --block). */
  blocks: BlockManager | null;
  status: () => Promise<Record<string, unknown>>;
  /** blocks del: through the CrowdSec link when there is one (it owns the decisions it applied). */
  deleteBlock: (key: string) => Promise<unknown>;
}

export function controlDispatch(t: ControlTargets): (req: ControlRequest) => Promise<unknown> {
  const blocks = (): BlockManager => {
    if (!t.blocks) throw new Error(NO_BLOCKS);
    return t.blocks;
  };
  return async (req) => {
    switch (req.cmd) {
      case 'rules.reload':
        return t.reloader.reload('control');
      case 'rules.stats':
        return t.sup.ruleStats();
      case 'blocks.list':
        return blocks().list();
      case 'blocks.add':
        return blocks().addManual(req);
      case 'blocks.del':
        if (typeof req.key !== 'string') throw new Error('blocks del needs the block, as "nfips blocks list" shows it');
        return t.deleteBlock(req.key);
      case 'blocks.flush':
        return blocks().flush('manual');
      case 'status':
        return t.status();
      case 'sessions':
        return t.sup.sessions(req.limit ?? DEFAULT_SESSIONS_LIMIT);
    }
  };
}
