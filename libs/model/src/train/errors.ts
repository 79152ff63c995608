// Typed errors of training: a run cancelled through its AbortSignal, a loss or
// gradient that stopped being finite, and a training-state snapshot that cannot
// be read or does not belong to the run resuming from it.

/** The run's AbortSignal fired; it stopped between two optimizer steps. */
export class TrainingCancelledError extends Error {
  override name = 'TrainingCancelledError';
  /** Optimizer steps completed before it stopped. */
  readonly step: number;
  /** The snapshot to resume from, or null when there is none (no checkpoint directory, or cancelled before the first step). */
  readonly checkpoint: string | null;

  constructor(message: string, step: number, checkpoint: string | null, options?: { cause?: unknown }) {
    super(message, options);
    this.step = step;
    this.checkpoint = checkpoint;
  }
}

/** The loss or the gradient norm of a step is NaN or infinite; the weights were not updated by it. */
export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
  /** The 1-based optimizer step that diverged. */
  readonly step: number;
  /** Its loss. */
  readonly loss: number;
  /** Its global gradient norm (NaN when the loss was already not finite). */
  readonly gradNorm: number;

  constructor(message: string, step: number, loss: number, gradNorm: number) {
    super(message);
    this.step = step;
    this.loss = loss;
    this.gradNorm = gradNorm;
  }
}

/** A training-state snapshot is missing, malformed, or from another run (data, hyperparameters, weights). */
export class TrainingStateError extends Error {
  override name = 'TrainingStateError';
  /** The snapshot's directory. */
  readonly directory: string;
  /** The field or file that does not fit, when one does. */
  readonly field: string | undefined;

  constructor(message: string, directory: string, field?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.directory = directory;
    this.field = field;
  }
}

/** True when `error` is a TrainingCancelledError. */
export function isTrainingCancelledError(error: unknown): error is TrainingCancelledError {
  return error instanceof TrainingCancelledError;
}

/** True when `error` is a NonFiniteLossError. */
export function isNonFiniteLossError(error: unknown): error is NonFiniteLossError {
  return error instanceof NonFiniteLossError;
}

/** True when `error` is a TrainingStateError. */
export function isTrainingStateError(error: unknown): error is TrainingStateError {
  return error instanceof TrainingStateError;
}
