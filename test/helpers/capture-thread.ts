// Runs capture threads the way nfips does (QueueSupervisor with a capture
// source) in this process's network namespace; the capture test starts it
// with `ip netns exec`. Rules run in log mode, so they only report what they
// would drop. Argument: a JSON ThreadProbeConfig. Output: "ready" once every
// thread opened its devices, then one JSON ThreadProbeReport line after the
// stop file appears.
import { existsSync } from 'node:fs';
import { EventLog } from '../../src/log/event-log';
import { parseRuleText } from '../../src/rules/load';
import { QueueCounters, QueueSupervisor } from '../../src/queue/supervisor';
import { RuleEvent } from '../../src/verdict/rule-events';

export interface ThreadProbeConfig {
  devices: string[];
  filter: string;
  workers: number;
  /** A rules file's text (JSON). */
  rules: string;
  stopFile: string;
  /** Also print each logged event ("event {...}") and the counters every 200 ms ("counters [...]") while running. */
  live?: boolean;
}

export interface ThreadProbeReport {
  counters: QueueCounters[];
  ruleEvents: (RuleEvent & { slot: number })[];
  logged: { type: string; fields: Record<string, unknown> }[];
  steps: number;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2]) as ThreadProbeConfig;
  const logged: ThreadProbeReport['logged'] = [];
  const log: EventLog = {
    event: (type, fields = {}) => {
      logged.push({ type, fields });
      if (cfg.live) process.stdout.write(`event ${JSON.stringify({ type, fields })}\n`);
    },
    reopen: () => undefined, close: async () => undefined };
  const ruleEvents: ThreadProbeReport['ruleEvents'] = [];
  let steps = 0;
  const sup = await QueueSupervisor.start({
    capture: { devices: cfg.devices, filter: cfg.filter, workers: cfg.workers, snaplen: 256, bufferBytes: 4 << 20, batchSize: 64, promisc: false },
    engine: { mode: 'repeat', mark: { value: 1, mask: 1 }, rejectMark: { value: 2, mask: 2 }, eventsPerSecond: 10_000, flowCapacity: 4096, malformed: 'policy', rulesMode: 'log', flowsPerSecond: null },
    features: { windowSeconds: 60, stepSeconds: 1, maxSourcesPerStep: 1000, flags: null },
    rules: parseRuleText(cfg.rules, 'capture-test-rules.json'),
    log,
    onRuleEvents: (slot, _rs, events) => ruleEvents.push(...events.map((e) => ({ ...e, slot }))),
    onStep: () => steps++,
  });
  process.stdout.write('ready\n');
  let ticks = 0;
  while (!existsSync(cfg.stopFile)) {
    await new Promise((res) => setTimeout(res, 50));
    if (cfg.live && ++ticks % 4 === 0) process.stdout.write(`counters ${JSON.stringify(sup.snapshot())}\n`);
  }
  // Rule events leave a thread with its next batch or idle tick.
  await new Promise((res) => setTimeout(res, 300));
  const counters = sup.snapshot();
  await sup.stop();
  process.stdout.write(JSON.stringify({ counters, ruleEvents, logged, steps } satisfies ThreadProbeReport) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
  process.exit(2);
});
