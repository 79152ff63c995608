// The shape of a run's results.json (written by the coordinator, read by the
// CLI and the comparison): the contract between the run and every report.

/** The methods a run can use (the paper's CREAM and its baselines). */
export type ReportMethod = 'cream' | 'srlm' | 'srlm-dpo' | 'oracle';

/** One stage of a run as the report shows it. */
export interface ReportStage {
  /** Stable stage name, e.g. "sft", "iter-1/sample", "eval/m2". */
  name: string;
  /** Iteration it belongs to (0 for data, SFT and the first evaluations). */
  iteration: number;
  /** DONE, RESTORED, FAILED, RUNNING, PENDING. */
  state: string;
  /** ISO 8601. */
  startedAt?: string;
  /** ISO 8601. */
  finishedAt?: string;
  /** Wall time of the stage. */
  durationMs?: number;
  /** Numeric results (see the coordinator design for the keys). */
  metrics: Record<string, number>;
  /** Error, when FAILED. */
  error?: string;
}

/** Accuracy of one model on one task. */
export interface ReportTaskAccuracy {
  /** Task name. */
  task: string;
  /** Fraction correct in [0, 1]. */
  accuracy: number;
  /** Items evaluated. */
  numItems: number;
}

/** Results of one model of a run (M0 base, M1 SFT, M2.. the iterations). */
export interface ReportModelResult {
  /** "M0", "M1", ... */
  model: string;
  /** Registry version. */
  version: string;
  /** Accuracy per task. */
  accuracy: ReportTaskAccuracy[];
  /** Mean accuracy over tasks. */
  meanAccuracy: number;
  /** Consistency rate C of the iteration that produced this model (absent for M0 and M1). */
  consistencyRate?: number;
  /** Mean reward margin of the pairs that trained it (absent for M0 and M1). */
  rewardMargin?: number;
  /** Pairs that trained it. */
  pairsUsed: number;
}

/** A run's results.json. */
export interface ReportRun {
  /** Run id. */
  runId: string;
  /** Display name. */
  name: string;
  /** Method. */
  method: ReportMethod;
  /** Master seed. */
  seed: number;
  /** 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'RUNNING' | 'INTERRUPTED'. */
  state: string;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601. */
  finishedAt?: string;
  /** Compute backend of the model services, e.g. 'wasm+native'. */
  backend: string;
  /** The resolved spec as JSON. */
  spec: Record<string, unknown>;
  /** Every stage, in order. */
  stages: ReportStage[];
  /** Per-model results. */
  results: ReportModelResult[];
}
