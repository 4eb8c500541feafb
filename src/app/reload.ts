// Rule reloads from SIGHUP, the control socket or a change to the file. The
// new file is validated first; on any problem the old rules stay in force.
import { createHash } from 'node:crypto';
import { FSWatcher, readFileSync, watch } from 'node:fs';
import path from 'node:path';
import { EventLog } from '../log/event-log';
import { QueueSupervisor } from '../queue/supervisor';
import { FormatChoice, readRuleFile } from '../rules/load';
import { logRuleWarnings } from './rule-warnings';

export type ReloadSource = 'sighup' | 'control' | 'watch';

export interface ReloadResult {
  version: number;
  changed: boolean;
  rules_count: number;
  sha256: string;
}

const DEBOUNCE_MS = 500;

export class RuleReloader {
  #chain: Promise<unknown> = Promise.resolve();
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly file: string,
    private readonly format: FormatChoice,
    private readonly sup: QueueSupervisor,
    private readonly log: EventLog,
    /** Told of every reload's result and how long it took (for --metrics-listen). */
    private readonly onResult?: (result: 'ok' | 'unchanged' | 'failed', seconds: number) => void,
    /** nfips watch: also warn about rules a capture cannot match as inline. */
    private readonly capture = false,
  ) {}

  /** Reloads now; calls are serialised so two reloads never interleave. */
  reload(source: ReloadSource): Promise<ReloadResult> {
    const next = this.#chain.then(async () => {
      const started = process.hrtime.bigint();
      const took = () => Number(process.hrtime.bigint() - started) / 1e9;
      try {
        const r = await this.#reloadOnce(source);
        this.onResult?.(r.changed ? 'ok' : 'unchanged', took());
        return r;
      } catch (e) {
        this.onResult?.('failed', took());
        throw e;
      }
    });
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #reloadOnce(source: ReloadSource): Promise<ReloadResult> {
    let rules;
    try {
      rules = readRuleFile(this.file, this.format);
    } catch (e) {
      this.log.event('rules_reload_failed', { source, file: this.file, error: (e as Error).message, kept_version: this.sup.rulesVersion, kept_sha256: this.sup.rules.origin.sha256 }, 'error');
      throw e;
    }
    if (rules.origin.sha256 === this.sup.rules.origin.sha256 && source === 'watch') {
      return { version: this.sup.rulesVersion, changed: false, rules_count: rules.rules.length, sha256: rules.origin.sha256 };
    }
    let applied;
    try {
      applied = await this.sup.setRules(rules);
    } catch (e) {
      // Threads that answered run the new set; the others get it when they do.
      this.log.event('rules_reload_failed', { source, file: this.file, error: (e as Error).message, version: this.sup.rulesVersion }, 'error');
      throw e;
    }
    const version = applied.version;
    const swaps = applied.swaps.map((s) => ({ queue: s.queue, swap_ms: s.ms }));
    this.log.event('rules_reloaded', { source, file: this.file, version, sha256: rules.origin.sha256, rules_count: rules.rules.length, format: rules.origin.format, compile_ms: applied.compileMs, swap_ms_max: Math.max(0, ...applied.swaps.map((s) => s.ms)), queues: swaps });
    logRuleWarnings(this.log, rules, version, applied.unresolvedInterfaces, this.capture);
    return { version, changed: true, rules_count: rules.rules.length, sha256: rules.origin.sha256 };
  }

  /** Watches the directory: editors and config tools replace files by rename. */
  watch(): void {
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    this.#watcher = watch(dir, (_event, name) => {
      if (name !== null && name !== base) return;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => {
        this.#timer = null;
        if (!this.#changedOnDisk()) return;
        this.reload('watch').catch(() => undefined);
      }, DEBOUNCE_MS);
    });
    this.#watcher.on('error', (e) => this.log.event('rules_watch_error', { file: this.file, error: e.message }, 'warn'));
  }

  #changedOnDisk(): boolean {
    try {
      return createHash('sha256').update(readFileSync(this.file)).digest('hex') !== this.sup.rules.origin.sha256;
    } catch {
      return true; // let the reload report why it cannot read the file
    }
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#watcher?.close();
  }
}
