// A rule set compiled for the verdict engine: interfaces resolved, indexes
// built, per-rule columns filled, all in typed arrays in one
// SharedArrayBuffer. The main thread makes one per load (start and every
// reload) and posts it to every queue thread; posting copies a few dozen
// small objects whatever the rule count, and a thread then only builds views
// and swaps a reference between two batches (VerdictEngine.setRules).
import { compileMatcher, MatcherData } from '../rules/compile';
import { resolveRules } from '../rules/linear';
import { intoSharedMemory } from '../rules/shared-arrays';
import { RuleAction, RuleSet } from '../rules/types';
import { compileGuard, GuardData, MalformedPolicy } from './hidden-guard';

/** The engine's action codes for rules (engine.ts adds the event-only ones). */
export const ACT_ACCEPT = 0;
export const ACT_DROP = 1;
export const ACT_REJECT = 2;
export const ACT_ALERT = 3;
const ACTION_CODES: Record<RuleAction, number> = { accept: ACT_ACCEPT, drop: ACT_DROP, reject: ACT_REJECT, alert: ACT_ALERT };

export interface RuleSnapshot {
  ruleCount: number;
  lock: boolean;
  defaultAccepts: boolean;
  /** Whether any rule looks at flow state (sessions are then classified before the match). */
  usesState: boolean;
  /** ACT_* code per rule. */
  actions: Uint8Array;
  /** 1 where the rule's drop/reject/accept events are logged (the rule's `log`). */
  logs: Uint8Array;
  matcher: MatcherData;
  guard: GuardData;
  /** Interface names the rules use that had no index when compiled (their rules match nothing), sorted. */
  unresolvedInterfaces: readonly string[];
  /** Main-thread time spent resolving and compiling, in ms. */
  compileMs: number;
}

export interface SnapshotOptions {
  /** ifindex of an interface name now (sysfs of this network namespace), undefined if there is none. */
  ifindex: (name: string) => number | undefined;
  /** The engine's --malformed; 'drop' when absent. */
  malformed?: MalformedPolicy;
  /** The shared memory to compile into, given the bytes needed (a SharedAreaPool's); a new SharedArrayBuffer when absent. */
  area?: (bytes: number) => SharedArrayBuffer;
}

/**
 * Compiles a validated rule set. Interface names are resolved here, once per
 * name: an interface that does not exist yet gets no index, and its rules
 * never match until the next load finds it (as when each thread resolved
 * them itself).
 */
export function compileRuleSet(rs: RuleSet, opts: SnapshotOptions): RuleSnapshot {
  const t0 = performance.now();
  const known = new Map<string, number | undefined>();
  const ifindex = (name: string): number | undefined => {
    if (!known.has(name)) known.set(name, opts.ifindex(name));
    return known.get(name);
  };
  const resolved = resolveRules(rs.rules, ifindex);
  const compiled: RuleSnapshot = {
    ruleCount: rs.rules.length,
    lock: rs.lock,
    defaultAccepts: rs.default === 'accept',
    usesState: rs.rules.some((r) => r.state !== null),
    actions: Uint8Array.from(rs.rules, (r) => ACTION_CODES[r.action]),
    logs: Uint8Array.from(rs.rules, (r) => (r.log ? 1 : 0)),
    matcher: compileMatcher(resolved),
    guard: compileGuard(rs, resolved, opts.malformed ?? 'drop'),
    unresolvedInterfaces: [...known].flatMap(([name, index]) => (index === undefined ? [name] : [])).sort(),
    compileMs: 0,
  };
  const shared = intoSharedMemory(compiled, opts.area);
  // Measured to the end, copy into shared memory included; the copy is frozen, so a fresh object carries the figure.
  return { ...shared, compileMs: performance.now() - t0 };
}
