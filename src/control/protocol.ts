// The control socket speaks one JSON object per line each way.
export type ControlRequest = { cmd: 'status' } | { cmd: 'rules.reload' } | { cmd: 'rules.stats' };
export type ControlCommand = ControlRequest['cmd'];
export const CONTROL_COMMANDS: readonly ControlCommand[] = ['status', 'rules.reload', 'rules.stats'];

export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string };

export const DEFAULT_CONTROL_SOCKET = '/run/nfips/nfips.sock';
