// Worker thread of site learning: reads the recording, trains the model and
// posts it back, with progress on the way. Training a day of windows takes
// seconds to minutes of CPU; the main thread keeps serving meanwhile.
import { parentPort, workerData } from 'node:worker_threads';
import { readRecording } from './record-file';
import { Model } from './model';
import { trainModel, TrainSummary } from './train';

export interface TrainJob {
  recording: string;
  windowSeconds: number;
  stepSeconds: number;
  queues: number;
  source: string;
  command: string;
}

export type TrainReply =
  | { type: 'progress'; phase: string; done: number; total: number }
  | { type: 'done'; model: Model; summary: TrainSummary }
  | { type: 'error'; message: string };

function main(job: TrainJob, post: (m: TrainReply) => void): void {
  try {
    const rec = readRecording(job.recording);
    const windows = rec.windows.filter((w) => w.windowSeconds === job.windowSeconds && w.stepSeconds === job.stepSeconds);
    let last = 0;
    const { model, summary } = trainModel(windows, rec.behaviour, {
      windowSeconds: job.windowSeconds,
      stepSeconds: job.stepSeconds,
      queues: job.queues,
      source: job.source,
      command: job.command,
      onProgress: (phase, done, total) => {
        const now = Date.now();
        if (now - last < 250 && done < total) return;
        last = now;
        post({ type: 'progress', phase, done, total });
      },
    });
    post({ type: 'done', model, summary });
  } catch (e) {
    post({ type: 'error', message: (e as Error).message });
  }
}

if (parentPort) {
  const port = parentPort;
  main(workerData as TrainJob, (m) => port.postMessage(m));
}
