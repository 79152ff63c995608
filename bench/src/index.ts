// Public surface of @cream/bench: the benchmark suite of `cream bench` and its PyTorch baseline.

/** The cases: shapes, workloads, the reference, micro, base-model and named-checkpoint cases. */
export {
  BenchCaseError,
  METRIC_GROUPS,
  REFERENCE_SHAPE,
  MICRO_SHAPE,
  BASE_FALLBACK_SHAPE,
  baseCase,
  baseModelDir,
  describeShape,
  microCase,
  modelCase,
  referenceCase,
  shapeOf,
  type BenchCase,
  type BenchShape,
  type BenchWorkload,
  type CaseOptions,
  type MetricGroup,
} from './cases';
/** FLOPs of a training step from the shape, and the formula. */
export { TRAINING_FLOPS_FORMULA, forwardFlops, trainingStepFlops, gflopsPerSecond } from './flops';
/** Figures of one side: samples, medians, metric names. */
export { median, poolRounds, samplesOf, generateMetric, type ImplementationResult, type MetricSamples } from './results';
/** The PyTorch baseline subprocess and its fair environment. */
export {
  BASELINE_SCRIPT,
  DEFAULT_PYTHONS,
  TORCH_HINT,
  baselineEnv,
  findTorch,
  probeTorch,
  runBaseline,
  runBaselineCheck,
  type AgreementInput,
  type AgreementResult,
  type TorchProbe,
} from './baseline';
/** A whole run: cases, our worker, the baseline. */
export { DEFAULT_PEAK_GFLOPS, benchCases, runBench, runOurs, type BenchOptions, type BenchReport, type CaseReport } from './run';
/** Rows with ratios, and the text table. */
export { formatReport, formatValue, reportRows, type ReportRow } from './report';
