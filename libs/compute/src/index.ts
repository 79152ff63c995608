// Public surface of @cream/compute: TensorFlow.js backend selection, the
// native fp32 GEMM and its wasm kernels, and the pure-JS reference.

/** Chooses and initializes the tfjs backend (CREAM_BACKEND overrides), and what was chosen. */
export { initCompute, computeInfo, computeStatus, backendVariable, attentionKeepVariable } from './backend';
/** Shapes of the backend choice: the proto's ComputeInfo, variants, options. */
export type { ComputeInfo, ComputeVariant, InitComputeOptions } from './backend';
/** Typed errors and their guards. */
export {
  ComputeError,
  ComputeConfigError,
  BackendUnavailableError,
  GemmShapeError,
  WasmMemoryError,
  isComputeError,
  isComputeConfigError,
  isBackendUnavailableError,
} from './errors';
/** The logger shape compute writes to, and one that drops everything. */
export { silentLogger, type ComputeLogger, type ComputeLogFields } from './logger';
/** The native GEMM addon: loader, typed wrapper, and gemm() on Float32Arrays (pure-JS when absent). */
export { loadNativeGemm, gemm, NativeGemm, nativeAddonPath, nativeCallTime } from './native';
/** Types of the native addon's calls and report. */
export type { NativeIsa, NativeInfo, NativeGemmOperands, NativeLoadResult, NativeCallTime } from './native';
/** Float64 reference GEMM (tests, last fallback) and its shape types. */
export { referenceGemm, checkGemmShape } from './reference-gemm';
/** GEMM geometry, activations and epilogue. */
export type { GemmShape, GemmActivation, GemmEpilogue } from './reference-gemm';
/** Switches the wasm backend's matmul kernels (native, fast-path, stock), e.g. for benchmarks. */
export { useMatMulKernels, matMulKernelMode, writeSlotsInPlace, soleOwner, WASM_MEMORY_LIMIT_BYTES, type MatMulKernelMode } from './wasm-kernels';
/** Fused decoder ops: one native kernel each on wasm+native, the same math composed of tfjs ops elsewhere. */
export { rmsNorm, addRmsNorm, swiglu, swigluMerged, rotaryHeads, qkvHeads, qkvAttention, maskedSoftmax, causalAttention, causalBias, type AttentionMask, type SegmentedCausal, attentionKeepLimit, setAttentionKeepLimit, attentionKeeps, defaultAttentionKeepBytes, logSoftmaxGather, adamwUpdate, sumOfSquares, sumOfSquaresAll } from './ops';
/** Hyperparameters of adamwUpdate. */
export type { AdamWUpdateParams } from './ops';
/** Whether the fused kernels run, and a switch to compare them with the composed ops. */
export { fusedKernelsActive, useFusedKernels, FusedKernel, prefillLayer, type DecodeLayerWeights } from './fused-kernels';
