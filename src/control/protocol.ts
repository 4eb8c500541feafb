// The control socket speaks one JSON object per line each way.
export interface BlockAddArgs {
  net: string;
  scope?: string;
  proto?: string;
  port?: number;
  ttl_seconds?: number;
  reason?: string;
}

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'rules.reload' }
  | { cmd: 'rules.stats' }
  | { cmd: 'blocks.list' }
  | ({ cmd: 'blocks.add' } & BlockAddArgs)
  | { cmd: 'blocks.del'; key: string }
  | { cmd: 'blocks.flush' }
  | { cmd: 'sessions'; limit?: number };
export type ControlCommand = ControlRequest['cmd'];
export const CONTROL_COMMANDS: readonly ControlCommand[] = ['status', 'rules.reload', 'rules.stats', 'blocks.list', 'blocks.add', 'blocks.del', 'blocks.flush', 'sessions'];

export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string };

export const DEFAULT_CONTROL_SOCKET = '/run/nfips/nfips.sock';
