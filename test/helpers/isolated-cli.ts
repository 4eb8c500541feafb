// Unit tests that expect `nfips run` to refuse its flags start it in a
// throwaway network namespace (unshare --net): if the refusal ever regresses,
// the nfips that starts instead changes that namespace's iptables and sets,
// never the host's.
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/config/paths';

export const NFIPS = path.join(PACKAGE_ROOT, 'bin', 'nfips');

/** argv for spawning `nfips ARGS` in its own network namespace (needs root, as make test runs). */
export function isolatedArgv(args: readonly string[]): [string, string[]] {
  return ['unshare', ['--net', '--', process.execPath, NFIPS, ...args]];
}

export function nfipsIsolated(args: readonly string[], timeoutMs = 30_000): SpawnSyncReturns<string> {
  const [cmd, argv] = isolatedArgv(args);
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw new Error(`cannot run ${cmd} (util-linux): ${r.error.message}`);
  return r;
}
