// Per-source behaviour for tests that need a model: `sources` quiet
// sources, each seen `steps` seconds doing nothing the evidence counts, so
// every threshold is its floor.
import { EnvelopeStats } from '../../src/detect/envelope';

export function quietBehaviour(steps = 600, sources = 3): EnvelopeStats {
  const s = new EnvelopeStats();
  s.steps = steps;
  s.sourceSteps = steps * sources;
  for (const m of s.measures) {
    m.step.add(0, steps * sources);
    m.window.add(0, steps * sources);
  }
  for (const h of s.aggregate.values()) h.add(0, steps);
  return s;
}
