// `nfips <command> ... --control-socket S` against a running instance, with its exit code and output.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/config/paths';

const execFileP = promisify(execFile);
const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

export async function controlCli(socket: string, ...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await execFileP(process.execPath, [NFIPS, ...args, '--control-socket', socket]);
    return { code: 0, out: r.stdout };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: `${err.stdout}${err.stderr}` };
  }
}
