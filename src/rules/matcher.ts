// The matcher the engine uses. Kept apart so the choice is made in one place;
// LinearMatcher stays as the reference the compiled one is tested against.
import { CompiledMatcher } from './compile';
import { Matcher, ResolvedRule } from './linear';

export function createMatcher(rules: readonly ResolvedRule[]): Matcher {
  return new CompiledMatcher(rules);
}
