// A real CrowdSec Local API for the integration tests, started by hand (no
// systemd): the Debian package's config with its own SQLite database, log
// directory and listen address, no Central API, inside a network namespace
// the gateways reach. Machines and bouncers are registered with cscli.
import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { nsExec } from '../../lab/netns/topology';
import { requireTools } from './env';

const PACKAGE_CONFIG = '/etc/crowdsec/config.yaml';

export interface Lapi {
  readonly ns: string;
  /** http://ADDRESS:PORT */
  readonly url: string;
  readonly dir: string;
  cscli(args: string[]): Promise<string>;
  /** Registers a bouncer; returns the file holding its key. */
  addBouncer(name: string): Promise<string>;
  /** Registers a machine; returns the file holding its password. */
  addMachine(name: string): Promise<string>;
  /** Kills the Local API (SIGKILL: an outage, not a shutdown). */
  kill(): Promise<void>;
  /** Starts it again on the same database. */
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startLapi(ns: string, address: string, port: number): Promise<Lapi> {
  requireTools('crowdsec', 'cscli');
  const dir = mkdtempSync(path.join(tmpdir(), 'nfips-lapi-'));
  const config = path.join(dir, 'config.yaml');
  const c = parse(readFileSync(PACKAGE_CONFIG, 'utf8')) as Record<string, Record<string, unknown>>;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  c.common = { ...c.common, daemonize: false, log_media: 'file', log_dir: dir };
  c.config_paths = { ...c.config_paths, data_dir: path.join(dir, 'data') };
  c.db_config = { ...c.db_config, db_path: path.join(dir, 'crowdsec.db'), use_wal: false };
  const api = c.api as { client: Record<string, unknown>; server: Record<string, unknown> };
  api.client = { ...api.client, credentials_path: path.join(dir, 'local_api_credentials.yaml') };
  api.server = { ...api.server, listen_uri: `${address.includes(':') ? `[${address}]` : address}:${port}` };
  // No Central API: the tests run offline, and a test must not talk to the world.
  delete api.server.online_client;
  c.prometheus = { ...c.prometheus, enabled: false };
  mkdirSync(path.join(dir, 'data'));
  writeFileSync(config, stringify(c));
  writeFileSync(path.join(dir, 'local_api_credentials.yaml'), '');
  let proc: ChildProcess | null = null;
  let out = '';
  const cscli = async (args: string[]): Promise<string> => {
    const r = await nsExec(ns, 'cscli', ['-c', config, ...args], { allowFail: true });
    if (r.code !== 0) throw new Error(`cscli ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const start = async (): Promise<void> => {
    out = '';
    proc = spawn('ip', ['netns', 'exec', ns, 'crowdsec', '-c', config, '-no-cs'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    proc.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      if (proc.exitCode !== null) break;
      // Without a key it answers 403: it is up.
      const r = await nsExec(ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `${url}/v1/decisions/stream`], { allowFail: true });
      if (r.stdout.trim() === '403') return;
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error(`the CrowdSec Local API did not come up on ${url}: ${out}\n${readLogTail(dir)}`);
  };
  const kill = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  };
  await start();
  // cscli decisions add/delete talk to the API as a machine: the one in api.client's credentials file.
  await cscli(['machines', 'add', 'cscli-operator', '--password', `o${Date.now().toString(36)}x`, '-f', path.join(dir, 'local_api_credentials.yaml'), '--url', url]);
  return {
    ns,
    url,
    dir,
    cscli,
    async addBouncer(name) {
      const key = `k${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
      await cscli(['bouncers', 'add', name, '-k', key]);
      const file = path.join(dir, `${name}.key`);
      writeFileSync(file, `${key}\n`, { mode: 0o600 });
      return file;
    },
    async addMachine(name) {
      const password = `p${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
      await cscli(['machines', 'add', name, '--password', password, '-f', path.join(dir, `${name}.credentials.yaml`), '--url', url]);
      const file = path.join(dir, `${name}.password`);
      writeFileSync(file, `${password}\n`, { mode: 0o600 });
      return file;
    },
    kill,
    start,
    async destroy() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readLogTail(dir: string): string {
  try {
    return readFileSync(path.join(dir, 'crowdsec_api.log'), 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}
