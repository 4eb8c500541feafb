// Model files as an input: capped in size and nesting before the model's own
// validation (src/detect/model.ts) walks them, so a huge or absurdly nested
// file gets a located error instead of exhausting memory or the stack.
import { parseJsonBounded } from '../config/json-file';
import { readFileBounded } from '../config/safe-file';
import { Model, ModelError, parseModel } from '../detect/model';

/** Models are tens of kilobytes; learnt ones with a flag model a few megabytes at most. */
export const MAX_MODEL_BYTES = 16 << 20;

/** Reads, bounds and validates a model file; throws ModelError naming the file and JSON path. */
export function loadModelBounded(file: string): Model {
  let text: string;
  try {
    text = readFileBounded(file, 'model file', { maxBytes: MAX_MODEL_BYTES });
  } catch (e) {
    throw new ModelError(file, [{ path: '', message: `cannot read file: ${(e as Error).message}` }]);
  }
  const parsed = parseJsonBounded(text);
  if ('problem' in parsed) throw new ModelError(file, [parsed.problem]);
  return parseModel(text, file);
}
