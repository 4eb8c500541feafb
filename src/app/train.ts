// `nfips train`: feature windows from pcap files, a live interface or a
// recording, through the same pipeline as the inline path, into a model.
import { SingleBar, Presets } from 'cli-progress';
import { LiveCapture } from '../capture/live';
import { WINDOW_DEFAULTS } from './run-options';
import { readRecording } from '../detect/record-file';
import { FeatureWindow } from '../features/window';
import { EnvelopeStats } from '../detect/envelope';
import { SourceTracker } from '../detect/source-tracker';
import { saveModel } from '../detect/model';
import { DEFAULTS, minimumCaptureSeconds, trainModel, TrainingWindow } from '../detect/train';
import { printTrainSummary } from '../detect/train-report';
import { OfflinePipeline } from '../offline/pipeline';
import { PcapBatchReader } from '../pcap/reader';
import { readRuleFile, FormatChoice } from '../rules/load';
import { RuleSet } from '../rules/types';

export interface TrainCommand {
  out: string;
  pcap: string[];
  iface?: string;
  seconds?: number;
  features: string[];
  rules: string;
  rulesFormat: FormatChoice;
  windowSeconds?: number;
  stepSeconds?: number;
  queues?: number;
  falseAlarmRate?: number;
  margin?: number;
  kMax?: number;
  minPackets?: number;
  seed?: number;
  command: string;
}

const BATCH = 256;

/** Windows and per-source behaviour of normal traffic, gathered through the same pipeline as the inline path. */
interface Learnt {
  windows: FeatureWindow[];
  behaviour: EnvelopeStats;
  tracker: SourceTracker;
}

function learner(windowSeconds: number, stepSeconds: number): Learnt {
  const behaviour = new EnvelopeStats();
  return { windows: [], behaviour, tracker: new SourceTracker({ windowSeconds, stepSeconds, thresholds: null, stats: behaviour }) };
}

/** A progress bar on a terminal; nothing when output goes to a file or pipe. */
function progressBar(label: string, total: number): { update(v: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar({ format: `${label} [{bar}] {percentage}% | {value}/{total} {unit}`, stream: process.stderr, hideCursor: true }, Presets.shades_classic);
  bar.start(total, 0, { unit: '' });
  return { update: (v) => bar.update(v), stop: () => bar.stop() };
}

/**
 * Reads the files as one capture, in order of their first packet, through
 * one pipeline: rotated captures (tcpdump -C/-G) must not restart the
 * session and source tables at every file boundary.
 */
function pcapWindows(files: string[], rules: RuleSet, windowSeconds: number, stepSeconds: number, say: (l: string) => void): Learnt {
  const out = learner(windowSeconds, stepSeconds);
  const firstStamp = (f: string) => {
    const r = new PcapBatchReader(f, 1);
    try {
      return r.next() > 0 ? r.meta.tsSec[0] + r.meta.tsNsec[0] * 1e-9 : Infinity;
    } finally {
      r.close();
    }
  };
  const ordered = files.map((f) => ({ f, t: firstStamp(f) })).sort((a, b) => a.t - b.t).map((x) => x.f);
  let pipe: OfflinePipeline | null = null;
  for (const file of ordered) {
    const reader = new PcapBatchReader(file, BATCH);
    try {
      if (pipe) pipe.setMeta(reader.meta);
      else pipe = new OfflinePipeline(reader.meta, { rules, batchSize: BATCH, features: { windowSeconds, stepSeconds, maxSourcesPerStep: 256, flags: null }, onWindow: (w) => out.windows.push(w), onStep: (st) => out.tracker.add(st) });
      const bar = progressBar(file, reader.fileSize);
      for (let n = reader.next(); n > 0; n = reader.next()) {
        pipe.process(n, reader.packets);
        bar.update(reader.bytesRead);
      }
      bar.stop();
      const st = reader.stats;
      say(`${file}: ${st.packets} packets${st.skippedNonIp ? `, ${st.skippedNonIp} non-IP skipped` : ''}${st.truncated ? ', file truncated (read up to the cut)' : ''}`);
      for (const w of st.warnings) say(`${file}: ${w}`);
    } finally {
      reader.close();
    }
  }
  (pipe as OfflinePipeline | null)?.finish();
  out.tracker.flush();
  return out;
}

async function liveWindows(iface: string, seconds: number, rules: RuleSet, windowSeconds: number, stepSeconds: number, say: (l: string) => void): Promise<Learnt> {
  const out = learner(windowSeconds, stepSeconds);
  const cap = new LiveCapture(iface, { batchSize: BATCH });
  let pipe: OfflinePipeline | null = null;
  cap.onBatch((n, packets, meta) => {
    pipe ??= new OfflinePipeline(meta, { rules, batchSize: BATCH, features: { windowSeconds, stepSeconds, maxSourcesPerStep: 256, flags: null }, onWindow: (w) => out.windows.push(w), onStep: (st) => out.tracker.add(st) });
    pipe.process(n, packets);
  });
  say(`capturing on ${iface} for ${seconds} s`);
  const bar = progressBar(iface, seconds);
  const started = Date.now();
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const el = Math.min(seconds, Math.round((Date.now() - started) / 1000));
      bar.update(el);
      if (el >= seconds) {
        clearInterval(tick);
        resolve();
      }
    }, 250);
  });
  cap.stop();
  bar.stop();
  (pipe as OfflinePipeline | null)?.finish();
  out.tracker.flush();
  say(`${iface}: ${cap.stats.delivered} IP packets captured`);
  return out;
}

/** Runs the command; returns the lines it printed. Throws on bad input. */
export async function runTrain(c: TrainCommand, say: (line: string) => void): Promise<void> {
  const sources = (c.pcap.length ? 1 : 0) + (c.iface ? 1 : 0) + (c.features.length ? 1 : 0);
  if (sources !== 1) throw new Error('give exactly one kind of input: --pcap FILE..., --iface NAME --seconds N, or --features FILE...');
  let windowSeconds = c.windowSeconds ?? WINDOW_DEFAULTS.windowSeconds;
  let stepSeconds = c.stepSeconds ?? WINDOW_DEFAULTS.stepSeconds;
  let queues = c.queues ?? 1;
  let windows: TrainingWindow[];
  let behaviour: EnvelopeStats;
  let source: string;
  if (c.features.length) {
    const recordings = c.features.map((f) => ({ file: f, r: readRecording(f) }));
    const recs = recordings.flatMap((x) => x.r.windows);
    if (recs.length === 0) throw new Error(`${c.features.join(', ')}: no feature windows recorded`);
    behaviour = new EnvelopeStats();
    for (const { file, r } of recordings) {
      if (r.behaviour.empty) throw new Error(`${file}: no per-source behaviour in it (recorded by an older nfips, which kept windows only); record the normal traffic again with this nfips`);
      const off = r.behaviourShapes.find((b) => b.windowSeconds !== r.windows[0]?.windowSeconds || b.stepSeconds !== r.windows[0]?.stepSeconds);
      if (off) throw new Error(`${file}: its behaviour was recorded with ${off.windowSeconds}/${off.stepSeconds} s windows/steps and its windows with others; train on one setting at a time`);
      behaviour.merge(r.behaviour);
    }
    const shapes = new Set(recs.map((r) => `${r.windowSeconds}/${r.stepSeconds}`));
    if (shapes.size > 1) throw new Error(`the recordings mix window/step settings (${[...shapes].join(', ')} s); train on one setting at a time`);
    windowSeconds = recs[0].windowSeconds;
    stepSeconds = recs[0].stepSeconds;
    if (c.windowSeconds !== undefined && c.windowSeconds !== windowSeconds) throw new Error(`--window-seconds ${c.windowSeconds}: the recording has ${windowSeconds} s windows`);
    if (c.stepSeconds !== undefined && c.stepSeconds !== stepSeconds) throw new Error(`--step-seconds ${c.stepSeconds}: the recording has ${stepSeconds} s steps`);
    const recordedQueues = new Set(recs.map((r) => r.queues));
    if (recordedQueues.size > 1) throw new Error(`the recordings come from runs with different queue counts (${[...recordedQueues].join(', ')}); volumes are per queue, so train on one at a time`);
    queues = c.queues ?? recs[0].queues;
    windows = recs;
    source = `feature recording ${c.features.join(', ')}`;
  } else {
    const rules = readRuleFile(c.rules, c.rulesFormat);
    let got: Learnt;
    if (c.iface) {
      if (!c.seconds || c.seconds <= 0) throw new Error('--iface needs --seconds N (how long to capture)');
      // Said before capturing for minutes rather than after.
      const least = minimumCaptureSeconds(stepSeconds, windowSeconds, queues);
      if (c.seconds < least) throw new Error(`invalid --seconds ${c.seconds}: training needs at least ${least} s of uninterrupted traffic (with ${windowSeconds} s windows every ${stepSeconds} s on ${queues} queue${queues === 1 ? '' : 's'}), with at least ${c.minPackets ?? DEFAULTS.minPackets} packets in every window`);
      got = await liveWindows(c.iface, c.seconds, rules, windowSeconds, stepSeconds, say);
      source = `live capture on ${c.iface}, ${c.seconds} s`;
    } else {
      got = pcapWindows(c.pcap, rules, windowSeconds, stepSeconds, say);
      source = `pcap ${c.pcap.join(', ')}`;
    }
    windows = got.windows;
    behaviour = got.behaviour;
  }
  windows = [...windows].sort((a, b) => a.end - b.end);
  const phase = { bar: null as ReturnType<typeof progressBar> | null, name: '' };
  const { model, summary } = trainModel(windows, behaviour, {
    windowSeconds,
    stepSeconds,
    queues,
    source,
    command: c.command,
    falseAlarmRate: c.falseAlarmRate,
    margin: c.margin,
    kMax: c.kMax,
    minPackets: c.minPackets,
    seed: c.seed,
    onProgress: (name, done, total) => {
      if (phase.name !== name) {
        phase.bar?.stop();
        phase.bar = progressBar(name, total);
        phase.name = name;
      }
      phase.bar?.update(done);
    },
  });
  phase.bar?.stop();
  saveModel(c.out, model);
  printTrainSummary(summary, c.out, say);
}
