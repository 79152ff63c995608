// Typed errors of @cream/tasks. Each names what it is about so that the
// coordinator can refuse a bad run spec before any work starts and say why:
// DataFileError and DataFormatError name the file (and the 1-based line and the
// field of the first bad record), InvalidOptionsError names the option,
// SuiteCapacityError the task that ran out of distinct prompts, and
// GenerateResultError the batch a generate function answered wrongly.

/** Base of every error this library throws on purpose. */
export class TasksError extends Error {
  override name = 'TasksError';
}

/** An option of buildSuite or evaluate is out of range; `option` names it, e.g. `sizes.testPerTask`. */
export class InvalidOptionsError extends TasksError {
  override name = 'InvalidOptionsError';
  constructor(
    message: string,
    /** The offending option, as a path into the options object. */
    readonly option: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A task generator could not produce as many distinct prompts as the sizes ask for. */
export class SuiteCapacityError extends TasksError {
  override name = 'SuiteCapacityError';
  constructor(
    /** The task that ran out. */
    readonly task: string,
    /** Distinct prompts the splits need from this task. */
    readonly needed: number,
    /** Distinct prompts it produced before giving up. */
    readonly produced: number,
    options?: { cause?: unknown },
  ) {
    super(
      `task "${task}" produced only ${produced} distinct prompts of the ${needed} the suite sizes need; ask for fewer`,
      options,
    );
  }
}

/** A data file could not be read (missing, a directory, no permission); `cause` is the file system error. */
export class DataFileError extends TasksError {
  override name = 'DataFileError';
  constructor(
    message: string,
    /** The path as given. */
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A record of a data file is not in the expected format; the first bad record is reported. */
export class DataFormatError extends TasksError {
  override name = 'DataFormatError';
  constructor(
    /** What is wrong, without the location (the message adds it). */
    readonly problem: string,
    /** The path as given (or the name given to a parse function). */
    readonly file: string,
    /** 1-based line number of the bad record; 0 when the problem is the whole file (e.g. empty). */
    readonly line: number,
    /** Path of the bad field inside the record, e.g. `question.choices[2].label`; `` for the line itself. */
    readonly field: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}${line > 0 ? `:${line}` : ''}${field === '' ? '' : ` (${field})`}: ${problem}`, options);
  }
}

/** The injected generate function of evaluate returned the wrong number of responses, or a non-string. */
export class GenerateResultError extends TasksError {
  override name = 'GenerateResultError';
  constructor(
    message: string,
    /** 0-based index of the batch. */
    readonly batch: number,
    /** Responses expected for that batch. */
    readonly expected: number,
    /** Responses received (or the index of the first non-string). */
    readonly received: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when `error` is any error this library throws on purpose. */
export function isTasksError(error: unknown): error is TasksError {
  return error instanceof TasksError;
}

/** True when `error` is an InvalidOptionsError. */
export function isInvalidOptionsError(error: unknown): error is InvalidOptionsError {
  return error instanceof InvalidOptionsError;
}

/** True when `error` is a SuiteCapacityError. */
export function isSuiteCapacityError(error: unknown): error is SuiteCapacityError {
  return error instanceof SuiteCapacityError;
}

/** True when `error` is a DataFileError. */
export function isDataFileError(error: unknown): error is DataFileError {
  return error instanceof DataFileError;
}

/** True when `error` is a DataFormatError. */
export function isDataFormatError(error: unknown): error is DataFormatError {
  return error instanceof DataFormatError;
}

/** True when `error` is a GenerateResultError. */
export function isGenerateResultError(error: unknown): error is GenerateResultError {
  return error instanceof GenerateResultError;
}
