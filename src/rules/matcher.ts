// The matcher the engine uses. Kept apart so the choice is made in one place;
// LinearMatcher stays as the reference the compiled one is tested against.
import { CompiledMatcher, compileMatcher, CompileOptions } from './compile';
import { ResolvedRule } from './linear';

/** Compiles and views at once, for callers on a single thread (rules test, tests, benchmarks). */
export function createMatcher(rules: readonly ResolvedRule[], options?: CompileOptions): CompiledMatcher {
  return new CompiledMatcher(compileMatcher(rules, options));
}
