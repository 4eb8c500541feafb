// The detection side of `nfips run`, settled before anything starts: the
// model, the window length and step, and whether --learn is under way.
import { checkAppendable } from '../config/safe-file';
import { prepareLearning, LearningPlan } from '../detect/learning';
import { loadModel, Model } from '../detect/model';
import { shareFlagModel } from '../flow/flag-model';
import { FeatureSettings } from '../queue/messages';
import { RunOptions, WINDOW_DEFAULTS } from './run-options';

/** Features are computed when detecting, recording or learning. */
export interface DetectionSetup {
  features: FeatureSettings | null;
  /** The model detection starts with: --model, the one learning uses to alert meanwhile, or the one it learnt. */
  model: Model | null;
  /** --learn: where learning stands (done: plan.done holds the learnt model, which is `model`). */
  learning: LearningPlan | null;
  warnings: string[];
}

/**
 * Loads the model (detect mode) and settles the window length and step:
 * the model's unless flags say otherwise, and flags that contradict the
 * model are an error, since its scores only hold for the windows it was
 * trained on.
 */
export function detectionSetup(o: RunOptions): DetectionSetup {
  const warnings: string[] = [];
  let model: Model | null = null;
  const queues = o.queues.last - o.queues.first + 1;
  if (o.learnSeconds !== null) {
    // Learning records with the flags' window settings (else the model's); the
    // model alerts meanwhile only if its windows are the same.
    const current = loadModel(o.model);
    const windowSeconds = o.windowSeconds ?? current.windowSeconds;
    const stepSeconds = o.stepSeconds ?? current.stepSeconds;
    const plan = prepareLearning({ stateDir: o.stateDir, learnSeconds: o.learnSeconds, windowSeconds, stepSeconds, queues });
    if (plan.done) model = plan.done.model;
    else if (current.windowSeconds === windowSeconds && current.stepSeconds === stepSeconds) model = current;
    else warnings.push(`no alerts while learning: ${o.model} was trained on ${current.windowSeconds} s windows / ${current.stepSeconds} s steps and this learning records ${windowSeconds} s / ${stepSeconds} s`);
    return { features: { windowSeconds, stepSeconds, maxSourcesPerStep: 256, flags: model ? shareFlagModel(model.flags) : null }, model, learning: plan, warnings };
  }
  if (o.mode !== 'off') {
    model = loadModel(o.model);
    const clash = (flag: string, given: number | undefined, trained: number) =>
      given !== undefined && given !== trained ? `--${flag} ${given} differs from the model's ${trained} s (${o.model}); drop the flag or train a model with it` : null;
    const problems = [clash('window-seconds', o.windowSeconds, model.windowSeconds), clash('step-seconds', o.stepSeconds, model.stepSeconds)].filter((x): x is string => x !== null);
    if (problems.length) throw new Error(problems.join('\n'));
    if (model.queues !== queues) warnings.push(`the model was trained on windows of ${model.queues} queue(s) and this run has ${queues}: per-queue volumes differ, so scores may be off; train with the same --queues`);
  }
  if (o.recordFeatures) {
    // Checked with the other settings, before anything is bound or installed.
    // As the recorder will open it: no links followed, no FIFO or device.
    try {
      checkAppendable(o.recordFeatures, '--record-features');
    } catch (e) {
      throw new Error(`invalid ${(e as Error).message}`);
    }
  }
  if (o.mode === 'off' && !o.recordFeatures) return { features: null, model: null, learning: null, warnings };
  return {
    features: {
      windowSeconds: model?.windowSeconds ?? o.windowSeconds ?? WINDOW_DEFAULTS.windowSeconds,
      stepSeconds: model?.stepSeconds ?? o.stepSeconds ?? WINDOW_DEFAULTS.stepSeconds,
      maxSourcesPerStep: 256,
      flags: model ? shareFlagModel(model.flags) : null,
    },
    model,
    learning: null,
    warnings,
  };
}
