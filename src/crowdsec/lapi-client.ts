// HTTP to the CrowdSec Local API (Node's fetch): the bouncer's decision
// stream (X-Api-Key), and the machine's login, alerts and decision deletes
// (a JWT from /v1/watchers/login). Every call has a deadline, and every
// answer is checked before use; failures are LapiError with what went wrong.
import { parseStreamAnswer, StreamAnswer } from './decision';

export class LapiError extends Error {
  constructor(
    message: string,
    /** HTTP status, or null when there was no answer. */
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'LapiError';
  }
}

export interface LapiClientOptions {
  /** Base URL, e.g. http://10.0.0.1:8080 (a trailing / is fine). */
  url: string;
  /** Per request. */
  timeoutMs: number;
  userAgent: string;
}

/** Answers larger than this are refused (a community blocklist of 100,000s of IPs is ~20 MB). */
const MAX_ANSWER_BYTES = 256 << 20;

export interface LoginAnswer {
  token: string;
  /** Epoch ms the token stops working. */
  expiresAt: number;
}

export class LapiClient {
  readonly #base: string;

  constructor(private readonly o: LapiClientOptions) {
    this.#base = o.url.replace(/\/+$/, '');
  }

  /**
   * dedup=false: every decision, not only the longest per IP (1.4.6's
   * default), so a shorter one outliving a deleted longer one is known, and
   * an own decision missing from a startup answer is never taken as deleted.
   */
  async stream(apiKey: string, startup: boolean, signal?: AbortSignal): Promise<StreamAnswer> {
    const doc = await this.#call('GET', `/v1/decisions/stream?startup=${startup}&dedup=false`, { 'X-Api-Key': apiKey }, undefined, signal);
    try {
      return parseStreamAnswer(doc);
    } catch (e) {
      throw new LapiError(`unexpected decision stream answer: ${(e as Error).message}`, 200);
    }
  }

  async login(machineId: string, password: string, signal?: AbortSignal): Promise<LoginAnswer> {
    const doc = await this.#call('POST', '/v1/watchers/login', {}, { machine_id: machineId, password, scenarios: [] }, signal);
    const o = (doc ?? {}) as Record<string, unknown>;
    const expiresAt = typeof o.expire === 'string' ? Date.parse(o.expire) : NaN;
    if (typeof o.token !== 'string' || !o.token || Number.isNaN(expiresAt)) throw new LapiError('unexpected login answer: no token or expire', 200);
    return { token: o.token, expiresAt };
  }

  /** Returns the ids of the alerts created. */
  async postAlerts(token: string, alerts: readonly unknown[], signal?: AbortSignal): Promise<string[]> {
    const doc = await this.#call('POST', '/v1/alerts', { Authorization: `Bearer ${token}` }, alerts, signal);
    if (!Array.isArray(doc)) throw new LapiError('unexpected alerts answer: not a list of ids', 200);
    return doc.map(String);
  }

  async deleteDecision(token: string, id: number, signal?: AbortSignal): Promise<void> {
    await this.#call('DELETE', `/v1/decisions/${id}`, { Authorization: `Bearer ${token}` }, undefined, signal);
  }

  /**
   * `stop` is the caller's (aborted at shutdown); the per-request deadline is added here.
   * One controller per request, aborted by our own timer or by a once-listener on `stop`,
   * both undone in the finally: AbortSignal.any/timeout on Node 20 hold their sources
   * only weakly (nodejs/node#57736), so a GC mid-request could drop the deadline, and
   * each call would leave a WeakRef on the long-lived stop signal.
   */
  async #call(method: string, path: string, headers: Record<string, string>, body?: unknown, stop?: AbortSignal): Promise<unknown> {
    const ctl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctl.abort(new DOMException(`no answer within ${this.o.timeoutMs} ms`, 'TimeoutError'));
    }, this.o.timeoutMs);
    const onStop = (): void => ctl.abort(stop?.reason);
    if (stop?.aborted) ctl.abort(stop.reason);
    else stop?.addEventListener('abort', onStop, { once: true });
    let text: string;
    let res: Response;
    try {
      try {
        res = await fetch(`${this.#base}${path}`, {
          method,
          headers: { 'User-Agent': this.o.userAgent, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: ctl.signal,
          // The bouncer key and the token go to the configured host only, never where a redirect points.
          redirect: 'error',
        });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        const why = stop?.aborted ? 'stopped (nfips is shutting down)' : timedOut ? `no answer within ${this.o.timeoutMs} ms` : (err.cause?.code ?? err.cause?.message ?? err.message);
        throw new LapiError(`${method} ${path}: ${why}`, null);
      }
      try {
        text = await readBounded(res, MAX_ANSWER_BYTES);
      } catch (e) {
        if (e instanceof LapiError) throw new LapiError(`${method} ${path}: ${e.message}`, res.status);
        if (stop?.aborted) throw new LapiError(`${method} ${path}: stopped (nfips is shutting down)`, null);
        if (timedOut) throw new LapiError(`${method} ${path}: answer not complete within ${this.o.timeoutMs} ms`, res.status);
        throw new LapiError(`${method} ${path}: answer cut off (${(e as Error).message})`, res.status);
      }
    } finally {
      clearTimeout(timer);
      stop?.removeEventListener('abort', onStop);
    }
    let doc: unknown = null;
    try {
      doc = text ? JSON.parse(text) : null;
    } catch {
      throw new LapiError(`${method} ${path}: HTTP ${res.status}, not JSON: ${JSON.stringify(text.slice(0, 120))}`, res.status);
    }
    if (!res.ok) {
      const msg = typeof (doc as { message?: unknown } | null)?.message === 'string' ? (doc as { message: string }).message : text.slice(0, 200);
      throw new LapiError(`${method} ${path}: HTTP ${res.status} ${msg}`, res.status);
    }
    return doc;
  }
}

/** The body as text, refused as soon as it passes `max` bytes (not after buffering all of it). */
async function readBounded(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new LapiError(`answer larger than ${max} bytes`, res.status);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
