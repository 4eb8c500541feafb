// The --crowdsec-* flags of `nfips run` (the link itself is src/crowdsec): checked with the other flags (URL,
// interval, which credentials go together), and the secret files read
// before anything is installed (an unreadable key file is a start error).
import path from 'node:path';
import { parseDuration } from './duration';
import { readFileBounded } from './safe-file';

export interface CrowdSecFlags {
  crowdsecUrl?: string;
  crowdsecBouncerKeyFile?: string;
  crowdsecInterval?: number | string;
  crowdsecMachineId?: string;
  crowdsecPasswordFile?: string;
  crowdsecMaxDecisions?: number | string;
}

export interface CrowdSecOptions {
  /** Local API base URL, without a trailing slash. */
  url: string;
  bouncerKeyFile: string;
  intervalSeconds: number;
  /** Publishing anomaly blocks: both set, or neither. */
  machineId: string | null;
  passwordFile: string | null;
  /** --crowdsec-max-decisions; null: what the ipset sets leave beside --max-blocks. */
  maxDecisions: number | null;
}

export const CROWDSEC_DEFAULTS = { intervalSeconds: 10 } as const;

/** null when no --crowdsec-url; throws one line per mistake. */
export function resolveCrowdSecOptions(f: CrowdSecFlags): CrowdSecOptions | null {
  const given = [f.crowdsecBouncerKeyFile, f.crowdsecInterval, f.crowdsecMachineId, f.crowdsecPasswordFile, f.crowdsecMaxDecisions].some((v) => v !== undefined);
  if (f.crowdsecUrl === undefined) {
    if (given) throw new Error('invalid --crowdsec-* flags without --crowdsec-url: give the Local API URL, e.g. --crowdsec-url http://10.0.0.1:8080');
    return null;
  }
  const problems: string[] = [];
  const url = String(f.crowdsecUrl).trim();
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    problems.push(`invalid --crowdsec-url "${url}": expected http://HOST:PORT or https://HOST:PORT`);
  }
  if (parsed && !['http:', 'https:'].includes(parsed.protocol)) problems.push(`invalid --crowdsec-url "${url}": the scheme must be http or https`);
  // The client appends /v1/...: a path would be silently dropped or doubled, and userinfo would travel in every request.
  if (parsed && (parsed.search || parsed.hash || parsed.username || parsed.password || parsed.pathname !== '/')) problems.push(`invalid --crowdsec-url "${url}": give the API's base URL only (no path, query, fragment or user)`);
  if (!f.crowdsecBouncerKeyFile) problems.push('missing --crowdsec-bouncer-key-file: the file holding the key "cscli bouncers add" printed');
  let intervalSeconds: number = CROWDSEC_DEFAULTS.intervalSeconds;
  if (f.crowdsecInterval !== undefined) {
    try {
      intervalSeconds = parseDuration('crowdsec-interval', String(f.crowdsecInterval));
      if (intervalSeconds < 1 || intervalSeconds > 3600) problems.push(`invalid --crowdsec-interval "${f.crowdsecInterval}": from 1 s to 1 h`);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  const machine = f.crowdsecMachineId === undefined ? null : String(f.crowdsecMachineId);
  const password = f.crowdsecPasswordFile === undefined ? null : String(f.crowdsecPasswordFile);
  if ((machine === null) !== (password === null)) problems.push('--crowdsec-machine-id and --crowdsec-password-file go together (publishing needs both)');
  if (machine === '') problems.push('invalid --crowdsec-machine-id "": give the name "cscli machines add" registered');
  let maxDecisions: number | null = null;
  if (f.crowdsecMaxDecisions !== undefined) {
    const n = Number(f.crowdsecMaxDecisions);
    if (!Number.isInteger(n) || n < 1 || n > 65536) problems.push(`invalid --crowdsec-max-decisions "${f.crowdsecMaxDecisions}": an integer from 1 to 65536`);
    else maxDecisions = n;
  }
  if (problems.length) throw new Error(problems.join('\n'));
  return {
    url: (parsed as URL).href.replace(/\/+$/, ''),
    bouncerKeyFile: path.resolve(String(f.crowdsecBouncerKeyFile)),
    intervalSeconds,
    machineId: machine,
    passwordFile: password === null ? null : path.resolve(password),
    maxDecisions,
  };
}

export interface CrowdSecSecrets {
  apiKey: string;
  password: string | null;
}

function readSecret(file: string, flag: string): string {
  let text: string;
  try {
    text = readFileBounded(file, flag, { maxBytes: 4096 });
  } catch (e) {
    throw new Error(`invalid --${flag} ${file}: ${(e as Error).message}`);
  }
  const v = text.trim();
  if (!v || /\s/.test(v)) throw new Error(`invalid --${flag} ${file}: expected one line holding the secret alone`);
  return v;
}

/** Reads the key and password files; throws naming the flag. */
export function readCrowdSecSecrets(o: CrowdSecOptions): CrowdSecSecrets {
  return { apiKey: readSecret(o.bouncerKeyFile, 'crowdsec-bouncer-key-file'), password: o.passwordFile === null ? null : readSecret(o.passwordFile, 'crowdsec-password-file') };
}
