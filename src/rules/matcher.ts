// The matcher the engine uses. Kept apart so the choice is made in one place.
import { LinearMatcher, Matcher, ResolvedRule } from './linear';

export function createMatcher(rules: readonly ResolvedRule[]): Matcher {
  return new LinearMatcher(rules);
}
