// A rule file problem, located precisely enough to fix without guessing.
import { JsonFileError, JsonProblem } from '../config/json-file';

export class RuleFileError extends JsonFileError {
  constructor(file: string, problems: JsonProblem[]) {
    super('rules file', file, problems);
  }
}
