// N-API surface of the native GEMM and the fused kernels (plain node_api.h, no node-addon-api, so
// the build needs nothing but the Node headers). Operands are Float32Arrays
// plus element offsets: the tfjs wasm kernel passes the wasm heap's HEAPF32
// view three times with the tensors' offsets, so the kernel reads and writes
// the wasm memory in place, with no copies. Every offset and extent is checked
// against the array's length before any pointer is formed.
#include <node_api.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include "fused.h"
#include "gemm.h"
#include "thread-pool.h"

namespace {

using cream::Activation;
using cream::Isa;

// Per-environment state (each worker_thread that loads the addon gets its own).
struct Instance {
  cream::ThreadPool* pool = nullptr;
  Isa isa = Isa::kGeneric;
};

void FinalizeInstance(napi_env /*env*/, void* data, void* /*hint*/) {
  auto* instance = static_cast<Instance*>(data);
  delete instance->pool;
  delete instance;
}

Instance* GetInstance(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<Instance*>(data);
}

// Throws a TypeError/RangeError into JS and returns false, for `if (!x) return nullptr;`.
bool Fail(napi_env env, const std::string& message, bool range = false) {
  if (range) {
    napi_throw_range_error(env, "ERR_CREAM_GEMM_RANGE", message.c_str());
  } else {
    napi_throw_type_error(env, "ERR_CREAM_GEMM_ARG", message.c_str());
  }
  return false;
}

bool GetSize(napi_env env, napi_value value, const char* name, size_t* out) {
  double number = 0;
  if (napi_get_value_double(env, value, &number) != napi_ok) return Fail(env, std::string(name) + " must be a number");
  if (!(number >= 0) || number > 9007199254740991.0 || number != static_cast<double>(static_cast<uint64_t>(number))) {
    return Fail(env, std::string(name) + " must be a non-negative integer", true);
  }
  *out = static_cast<size_t>(number);
  return true;
}

bool GetBool(napi_env env, napi_value value, const char* name, bool* out) {
  if (napi_get_value_bool(env, value, out) != napi_ok) return Fail(env, std::string(name) + " must be a boolean");
  return true;
}

// A Float32Array's data and length; `what` names it in errors.
bool GetFloats(napi_env env, napi_value value, const char* what, float** data, size_t* length) {
  bool is_typed = false;
  napi_is_typedarray(env, value, &is_typed);
  if (!is_typed) return Fail(env, std::string(what) + " must be a Float32Array");
  napi_typedarray_type type;
  void* raw = nullptr;
  if (napi_get_typedarray_info(env, value, &type, length, &raw, nullptr, nullptr) != napi_ok ||
      type != napi_float32_array) {
    return Fail(env, std::string(what) + " must be a Float32Array");
  }
  *data = static_cast<float*>(raw);
  return true;
}

// Checks that [offset, offset + count) lies inside an array of `length`.
bool CheckExtent(napi_env env, const char* what, size_t offset, size_t count, size_t length) {
  if (offset > length || count > length - offset) {
    return Fail(env,
                std::string(what) + " needs " + std::to_string(count) + " floats at offset " + std::to_string(offset) +
                    " but the array holds " + std::to_string(length),
                true);
  }
  return true;
}

// The call's `expected` arguments into argv; false, with an error naming the
// call, when it got another number of them.
bool GetArgs(napi_env env, napi_callback_info info, const char* call, size_t expected, napi_value* argv) {
  size_t argc = expected;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != expected) return Fail(env, std::string(call) + " expects " + std::to_string(expected) + " arguments");
  return true;
}

bool MulFits(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > SIZE_MAX / a) return false;
  *out = a * b;
  return true;
}

// gemm(a, aOffset, b, bOffset, c, cOffset, batchA, batchB, m, n, k,
//      transposeA, transposeB, bias|null, biasOffset, biasLength,
//      activation, leakyAlpha): void
napi_value GemmCall(napi_env env, napi_callback_info info) {
  size_t argc = 18;
  napi_value argv[18];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 13) {
    Fail(env, "gemm expects at least 13 arguments");
    return nullptr;
  }
  Instance* instance = GetInstance(env);
  cream::GemmProblem p;
  float *a = nullptr, *b = nullptr, *c = nullptr;
  size_t a_len = 0, b_len = 0, c_len = 0, a_off = 0, b_off = 0, c_off = 0;
  if (!GetFloats(env, argv[0], "a", &a, &a_len) || !GetSize(env, argv[1], "aOffset", &a_off) ||
      !GetFloats(env, argv[2], "b", &b, &b_len) || !GetSize(env, argv[3], "bOffset", &b_off) ||
      !GetFloats(env, argv[4], "c", &c, &c_len) || !GetSize(env, argv[5], "cOffset", &c_off) ||
      !GetSize(env, argv[6], "batchA", &p.batch_a) || !GetSize(env, argv[7], "batchB", &p.batch_b) ||
      !GetSize(env, argv[8], "m", &p.m) || !GetSize(env, argv[9], "n", &p.n) || !GetSize(env, argv[10], "k", &p.k) ||
      !GetBool(env, argv[11], "transposeA", &p.trans_a) || !GetBool(env, argv[12], "transposeB", &p.trans_b)) {
    return nullptr;
  }
  if (p.batch_a == 0 || p.batch_b == 0) {
    Fail(env, "batch sizes must be at least 1", true);
    return nullptr;
  }
  if (p.batch_a != p.batch_b && p.batch_a != 1 && p.batch_b != 1) {
    Fail(env, "batch sizes " + std::to_string(p.batch_a) + " and " + std::to_string(p.batch_b) + " do not broadcast",
         true);
    return nullptr;
  }
  const size_t batch = std::max(p.batch_a, p.batch_b);
  size_t mk = 0, kn = 0, mn = 0, a_count = 0, b_count = 0, c_count = 0;
  if (!MulFits(p.m, p.k, &mk) || !MulFits(p.k, p.n, &kn) || !MulFits(p.m, p.n, &mn) ||
      !MulFits(mk, p.batch_a, &a_count) || !MulFits(kn, p.batch_b, &b_count) || !MulFits(mn, batch, &c_count)) {
    Fail(env, "gemm sizes overflow", true);
    return nullptr;
  }
  if (!CheckExtent(env, "a", a_off, a_count, a_len) || !CheckExtent(env, "b", b_off, b_count, b_len) ||
      !CheckExtent(env, "c", c_off, c_count, c_len)) {
    return nullptr;
  }
  p.a = a + a_off;
  p.b = b + b_off;
  p.c = c + c_off;

  if (argc >= 14) {
    napi_valuetype bias_type;
    napi_typeof(env, argv[13], &bias_type);
    if (bias_type != napi_null && bias_type != napi_undefined) {
      float* bias = nullptr;
      size_t bias_len = 0, bias_off = 0, bias_count = 0;
      if (argc < 16 || !GetFloats(env, argv[13], "bias", &bias, &bias_len) ||
          !GetSize(env, argv[14], "biasOffset", &bias_off) || !GetSize(env, argv[15], "biasLength", &bias_count)) {
        if (argc < 16) Fail(env, "bias needs biasOffset and biasLength");
        return nullptr;
      }
      if (bias_count != 1 && bias_count != p.n) {
        Fail(env, "biasLength must be 1 or n (" + std::to_string(p.n) + "), got " + std::to_string(bias_count), true);
        return nullptr;
      }
      if (!CheckExtent(env, "bias", bias_off, bias_count, bias_len)) return nullptr;
      p.bias = bias + bias_off;
      p.bias_len = bias_count;
    }
  }
  if (argc >= 17) {
    size_t activation = 0;
    if (!GetSize(env, argv[16], "activation", &activation)) return nullptr;
    if (activation > static_cast<size_t>(Activation::kElu)) {
      Fail(env, "unknown activation code " + std::to_string(activation), true);
      return nullptr;
    }
    p.activation = static_cast<Activation>(activation);
  }
  if (argc >= 18) {
    double alpha = 0;
    if (napi_get_value_double(env, argv[17], &alpha) != napi_ok) {
      Fail(env, "leakyAlpha must be a number");
      return nullptr;
    }
    p.leaky_alpha = static_cast<float>(alpha);
  }
  try {
    cream::Gemm(p, instance->isa, *instance->pool);
  } catch (const std::exception& error) {
    napi_throw_error(env, "ERR_CREAM_GEMM", (std::string("native gemm failed: ") + error.what()).c_str());
  }
  return nullptr;
}

// The fused kernels of fused.h on one Float32Array (the wasm heap): fused(op,
// heap, ...numbers), where the numbers are the op's operand offsets (in
// floats; int32 operands live in the same memory) and sizes, in the order
// listed at each case below. Every operand's extent is checked against the
// array, and target ids against the vocabulary, before anything runs.
enum class FusedOp {
  kRmsNorm = 0,
  kRmsNormGradX = 1,
  kRmsNormGradW = 2,
  kSwiGlu = 3,
  kSwiGluGradGate = 4,
  kSwiGluGradUp = 5,
  kRotary = 6,
  kSoftmax = 7,
  kSoftmaxGrad = 8,
  kLogSoftmaxGather = 9,
  kLogSoftmaxGatherGrad = 10,
  kAdamW = 11,
  kDecodeAttention = 12,
  kPermuteChunks = 13,
  kAdd = 14,
  kAttention = 15,
  kAttentionGrad = 16,
  kSumSquares = 17,
  kQkvHeads = 18,
  kSwiGluMerged = 19,
  kSwiGluMergedGrad = 20,
  kAddRmsNorm = 21,
  kRmsNormGrad = 22,
  kScatterAddRows = 23,
};
constexpr size_t kFusedOps = 24;
// Numbers after (op, heap) each op takes.
constexpr size_t kFusedArity[kFusedOps] = {6, 7, 6, 4, 5, 4, 9, 8, 6, 5, 6, 15, 11, 9, 4, 18, 21, 3, 12, 4, 5, 8, 9, 6};

napi_value FusedCall(napi_env env, napi_callback_info info) {
  constexpr size_t kMaxArgs = 23;
  size_t argc = kMaxArgs;
  napi_value argv[kMaxArgs];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  size_t code = 0;
  if (argc < 2 || !GetSize(env, argv[0], "op", &code)) {
    if (argc < 2) Fail(env, "fused expects an op code and an array");
    return nullptr;
  }
  if (code >= kFusedOps) {
    Fail(env, "unknown fused op " + std::to_string(code), true);
    return nullptr;
  }
  if (argc != 2 + kFusedArity[code]) {
    Fail(env, "fused op " + std::to_string(code) + " takes " + std::to_string(kFusedArity[code]) + " numbers, got " +
                  std::to_string(argc - 2));
    return nullptr;
  }
  float* heap = nullptr;
  size_t heap_len = 0;
  if (!GetFloats(env, argv[1], "heap", &heap, &heap_len)) return nullptr;
  double num[kMaxArgs] = {};
  for (size_t i = 2; i < argc; ++i) {
    if (napi_get_value_double(env, argv[i], &num[i - 2]) != napi_ok) {
      Fail(env, "fused argument " + std::to_string(i) + " must be a number");
      return nullptr;
    }
  }
  auto size = [&](size_t i, size_t* out) {
    const double value = num[i];
    if (!(value >= 0) || value > 9007199254740991.0 || value != static_cast<double>(static_cast<uint64_t>(value))) {
      return Fail(env, "fused argument " + std::to_string(i + 2) + " must be a non-negative integer", true);
    }
    *out = static_cast<size_t>(value);
    return true;
  };
  // The operand at offset num[i] holding `count` floats.
  auto span = [&](size_t i, size_t count, const char* what, float** out) {
    size_t offset = 0;
    if (!size(i, &offset) || !CheckExtent(env, what, offset, count, heap_len)) return false;
    *out = heap + offset;
    return true;
  };
  auto product = [&](std::initializer_list<size_t> factors, size_t* out) {
    size_t total = 1;
    for (size_t f : factors) {
      if (!MulFits(total, f, &total)) return Fail(env, "fused sizes overflow", true);
    }
    *out = total;
    return true;
  };
  // int32 ids (the `what` of each row: a target, an index) in [0, v).
  auto ids_in_range = [&](const float* raw, size_t rows, size_t v, const char* what) {
    const auto* targets = reinterpret_cast<const int32_t*>(raw);
    for (size_t r = 0; r < rows; ++r) {
      if (targets[r] < 0 || static_cast<size_t>(targets[r]) >= v) {
        return Fail(env, std::string(what) + " " + std::to_string(targets[r]) + " at row " + std::to_string(r) +
                             " is outside [0, " + std::to_string(v) + ")", true);
      }
    }
    return true;
  };
  cream::ThreadPool& pool = *GetInstance(env)->pool;
  float *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr, *e = nullptr, *f = nullptr, *g = nullptr;
  try {
    switch (static_cast<FusedOp>(code)) {
      case FusedOp::kRmsNorm:  // x, w, out, rows, d, eps
      case FusedOp::kRmsNormGradW: {  // x, dy, dw, rows, d, eps
        size_t rows = 0, width = 0, total = 0;
        if (!size(3, &rows) || !size(4, &width) || !product({rows, width}, &total)) return nullptr;
        const bool forward = code == static_cast<size_t>(FusedOp::kRmsNorm);
        if (!span(0, total, "x", &a) || !span(1, forward ? width : total, forward ? "weight" : "dy", &b) ||
            !span(2, forward ? total : width, "out", &c)) {
          return nullptr;
        }
        if (forward) {
          cream::RmsNormForward(a, b, c, rows, width, static_cast<float>(num[5]), pool);
        } else {
          cream::RmsNormGradW(a, b, c, rows, width, static_cast<float>(num[5]), pool);
        }
        break;
      }
      case FusedOp::kRmsNormGradX: {  // x, w, dy, dx, rows, d, eps
        size_t rows = 0, width = 0, total = 0;
        if (!size(4, &rows) || !size(5, &width) || !product({rows, width}, &total)) return nullptr;
        if (!span(0, total, "x", &a) || !span(1, width, "weight", &b) || !span(2, total, "dy", &c) ||
            !span(3, total, "dx", &d)) {
          return nullptr;
        }
        cream::RmsNormGradX(a, b, c, d, rows, width, static_cast<float>(num[6]), pool);
        break;
      }
      case FusedOp::kScatterAddRows: {  // indices (int32 [m]), updates [m, width], out [rows, width], m, rows, width
        size_t m = 0, rows = 0, width = 0, in_total = 0, out_total = 0;
        if (!size(3, &m) || !size(4, &rows) || !size(5, &width) || !product({m, width}, &in_total) ||
            !product({rows, width}, &out_total)) {
          return nullptr;
        }
        if (!span(0, m, "indices", &a) || !span(1, in_total, "updates", &b) || !span(2, out_total, "out", &c) ||
            !ids_in_range(a, m, rows, "index")) {
          return nullptr;
        }
        cream::ScatterAddRows(reinterpret_cast<const int32_t*>(a), b, c, m, rows, width, pool);
        break;
      }
      case FusedOp::kAddRmsNorm: {  // x, y, w, h, out, rows, d, eps
        size_t rows = 0, width = 0, total = 0;
        if (!size(5, &rows) || !size(6, &width) || !product({rows, width}, &total)) return nullptr;
        if (!span(0, total, "x", &a) || !span(1, total, "y", &b) || !span(2, width, "weight", &c) ||
            !span(3, total, "h", &d) || !span(4, total, "out", &e)) {
          return nullptr;
        }
        cream::AddRmsNorm(a, b, c, d, e, rows, width, static_cast<float>(num[7]), pool);
        break;
      }
      case FusedOp::kRmsNormGrad: {  // x, w, dy, addend (-1: none), dx, dw, rows, d, eps
        size_t rows = 0, width = 0, total = 0;
        if (!size(6, &rows) || !size(7, &width) || !product({rows, width}, &total)) return nullptr;
        if (!span(0, total, "x", &a) || !span(1, width, "weight", &b) || !span(2, total, "dy", &c) ||
            (num[3] != -1 && !span(3, total, "addend", &d)) || !span(4, total, "dx", &e) || !span(5, width, "dw", &f)) {
          return nullptr;
        }
        cream::RmsNormGrad(a, b, c, num[3] == -1 ? nullptr : d, e, f, rows, width, static_cast<float>(num[8]), pool);
        break;
      }
      case FusedOp::kSwiGlu:          // gate, up, out, n
      case FusedOp::kSwiGluGradUp: {  // gate, dy, dup, n
        size_t n = 0;
        if (!size(3, &n) || !span(0, n, "gate", &a) || !span(1, n, "up/dy", &b) || !span(2, n, "out", &c)) {
          return nullptr;
        }
        if (code == static_cast<size_t>(FusedOp::kSwiGlu)) {
          cream::SwiGlu(a, b, c, n, pool);
        } else {
          cream::SwiGluGradUp(a, b, c, n, pool);
        }
        break;
      }
      case FusedOp::kSwiGluGradGate: {  // gate, up, dy, dgate, n
        size_t n = 0;
        if (!size(4, &n) || !span(0, n, "gate", &a) || !span(1, n, "up", &b) || !span(2, n, "dy", &c) ||
            !span(3, n, "dgate", &d)) {
          return nullptr;
        }
        cream::SwiGluGradGate(a, b, c, d, n, pool);
        break;
      }
      case FusedOp::kRotary: {  // x, cos, sin, out, b, t, h, dh, backward
        size_t nb = 0, nt = 0, nh = 0, dh = 0, total = 0, angles = 0;
        if (!size(4, &nb) || !size(5, &nt) || !size(6, &nh) || !size(7, &dh) ||
            !product({nb, nt, nh, dh}, &total) || !product({nb, nt, dh / 2}, &angles)) {
          return nullptr;
        }
        if (dh % 2 != 0) {
          Fail(env, "rotary head size must be even, got " + std::to_string(dh), true);
          return nullptr;
        }
        if (!span(0, total, "x", &a) || !span(1, angles, "cos", &b) || !span(2, angles, "sin", &c) ||
            !span(3, total, "out", &d)) {
          return nullptr;
        }
        cream::RotaryHeads(a, b, c, d, nb, nt, nh, dh, num[8] != 0, pool);
        break;
      }
      case FusedOp::kSoftmax: {  // scores, mask (-1: none), out, b, h, t, s, scale
        size_t nb = 0, nh = 0, nt = 0, ns = 0, total = 0, mask_total = 0;
        if (!size(3, &nb) || !size(4, &nh) || !size(5, &nt) || !size(6, &ns) || !product({nb, nh, nt, ns}, &total) ||
            !product({nb, nt, ns}, &mask_total)) {
          return nullptr;
        }
        if (!span(0, total, "scores", &a) || (num[1] != -1 && !span(1, mask_total, "mask", &b)) ||
            !span(2, total, "out", &c)) {
          return nullptr;
        }
        cream::MaskedSoftmax(a, b, c, nb, nh, nt, ns, static_cast<float>(num[7]), pool);
        break;
      }
      case FusedOp::kSoftmaxGrad: {  // probs, dy, dx, rows, s, scale
        size_t rows = 0, ns = 0, total = 0;
        if (!size(3, &rows) || !size(4, &ns) || !product({rows, ns}, &total)) return nullptr;
        if (!span(0, total, "probs", &a) || !span(1, total, "dy", &b) || !span(2, total, "dx", &c)) return nullptr;
        cream::MaskedSoftmaxGrad(a, b, c, rows, ns, static_cast<float>(num[5]), pool);
        break;
      }
      case FusedOp::kLogSoftmaxGather: {  // logits, targets, out, rows, v
        size_t rows = 0, v = 0, total = 0;
        if (!size(3, &rows) || !size(4, &v) || !product({rows, v}, &total)) return nullptr;
        if (!span(0, total, "logits", &a) || !span(1, rows, "targets", &b) || !span(2, rows, "out", &c) ||
            !ids_in_range(b, rows, v, "target")) {
          return nullptr;
        }
        cream::LogSoftmaxGather(a, reinterpret_cast<const int32_t*>(b), c, rows, v, pool);
        break;
      }
      case FusedOp::kLogSoftmaxGatherGrad: {  // logits, targets, dy, dlogits, rows, v
        size_t rows = 0, v = 0, total = 0;
        if (!size(4, &rows) || !size(5, &v) || !product({rows, v}, &total)) return nullptr;
        if (!span(0, total, "logits", &a) || !span(1, rows, "targets", &b) || !span(2, rows, "dy", &c) ||
            !span(3, total, "dlogits", &d) || !ids_in_range(b, rows, v, "target")) {
          return nullptr;
        }
        cream::LogSoftmaxGatherGrad(a, reinterpret_cast<const int32_t*>(b), c, d, rows, v, pool);
        break;
      }
      case FusedOp::kAdamW: {  // p, m, v, g, pOut, mOut, vOut, n, beta1, beta2, eps, decayFactor, stepSize, bc2Sqrt, gradientScale
        size_t n = 0;
        if (!size(7, &n) || !span(0, n, "p", &a) || !span(1, n, "m", &b) || !span(2, n, "v", &c) ||
            !span(3, n, "g", &d) || !span(4, n, "pOut", &e) || !span(5, n, "mOut", &f) || !span(6, n, "vOut", &g)) {
          return nullptr;
        }
        const cream::AdamWStep step{static_cast<float>(num[8]),  static_cast<float>(num[9]),
                                    static_cast<float>(num[10]), static_cast<float>(num[11]),
                                    static_cast<float>(num[12]), static_cast<float>(num[13]),
                                    static_cast<float>(num[14])};
        cream::AdamWUpdate(a, b, c, d, e, f, g, n, step, pool);
        break;
      }
      case FusedOp::kSumSquares: {  // x, out (one float), n
        size_t n = 0;
        if (!size(2, &n) || !span(0, n, "x", &a) || !span(1, 1, "out", &b)) return nullptr;
        b[0] = static_cast<float>(cream::SumSquares(a, n, pool));
        break;
      }
      case FusedOp::kDecodeAttention: {  // q, keys, values, mask (-1: none), out, b, hq, hkv, s, dh, scale
        size_t nb = 0, hq = 0, hkv = 0, ns = 0, dh = 0, q_total = 0, kv_total = 0, mask_total = 0;
        if (!size(5, &nb) || !size(6, &hq) || !size(7, &hkv) || !size(8, &ns) || !size(9, &dh) ||
            !product({nb, hq, dh}, &q_total) || !product({nb, hkv, ns, dh}, &kv_total) ||
            !product({nb, ns}, &mask_total)) {
          return nullptr;
        }
        if (hkv == 0 || hq % hkv != 0) {
          Fail(env, "query heads (" + std::to_string(hq) + ") must be a multiple of kv heads (" + std::to_string(hkv) +
                        ")", true);
          return nullptr;
        }
        if (!span(0, q_total, "q", &a) || !span(1, kv_total, "keys", &b) || !span(2, kv_total, "values", &c) ||
            (num[3] != -1 && !span(3, mask_total, "mask", &d)) || !span(4, q_total, "out", &e)) {
          return nullptr;
        }
        cream::DecodeAttention(a, b, c, num[3] == -1 ? nullptr : d, e, nb, hq, hkv, ns, dh, static_cast<float>(num[10]),
                               pool);
        break;
      }
      case FusedOp::kPermuteChunks: {  // x, out, d0, d1, d2, chunk, p0, p1, p2
        size_t dims[3] = {}, perm[3] = {}, chunk = 0, total = 0;
        if (!size(2, &dims[0]) || !size(3, &dims[1]) || !size(4, &dims[2]) || !size(5, &chunk) || !size(6, &perm[0]) ||
            !size(7, &perm[1]) || !size(8, &perm[2]) || !product({dims[0], dims[1], dims[2], chunk}, &total)) {
          return nullptr;
        }
        if (perm[0] > 2 || perm[1] > 2 || perm[2] > 2 || perm[0] == perm[1] || perm[0] == perm[2] || perm[1] == perm[2]) {
          Fail(env, "permutation must order the axes 0, 1, 2", true);
          return nullptr;
        }
        if (!span(0, total, "x", &a) || !span(1, total, "out", &b)) return nullptr;
        cream::PermuteChunks(a, b, dims, perm, chunk, pool);
        break;
      }
      case FusedOp::kAdd: {  // a, b, out, n
        size_t n = 0;
        if (!size(3, &n) || !span(0, n, "a", &a) || !span(1, n, "b", &b) || !span(2, n, "out", &c)) return nullptr;
        cream::AddSame(a, b, c, n, pool);
        break;
      }
      case FusedOp::kQkvHeads: {  // qkv, q, k, v, cos, sin, b, t, hq, hkv, dh, backward (qkv written then)
        size_t nb = 0, nt = 0, hq = 0, hkv = 0, dh = 0, merged = 0, q_total = 0, kv_total = 0, angles = 0;
        if (!size(6, &nb) || !size(7, &nt) || !size(8, &hq) || !size(9, &hkv) || !size(10, &dh) ||
            !product({nb, nt, hq + 2 * hkv, dh}, &merged) || !product({nb, nt, hq, dh}, &q_total) ||
            !product({nb, nt, hkv, dh}, &kv_total) || !product({nb, nt, dh / 2}, &angles)) {
          return nullptr;
        }
        if (dh % 2 != 0) {
          Fail(env, "rotary head size must be even, got " + std::to_string(dh), true);
          return nullptr;
        }
        if (!span(0, merged, "qkv", &a) || !span(1, q_total, "q", &b) || !span(2, kv_total, "k", &c) ||
            !span(3, kv_total, "v", &d) || !span(4, angles, "cos", &e) || !span(5, angles, "sin", &f)) {
          return nullptr;
        }
        cream::QkvHeads(a, b, c, d, e, f, nb, nt, hq, hkv, dh, num[11] != 0, pool);
        break;
      }
      case FusedOp::kSwiGluMerged: {  // gateUp, out, rows, inter
        size_t rows = 0, inter = 0, merged = 0, half = 0;
        if (!size(2, &rows) || !size(3, &inter) || !product({rows, 2, inter}, &merged) || !product({rows, inter}, &half) ||
            !span(0, merged, "gateUp", &a) || !span(1, half, "out", &b)) {
          return nullptr;
        }
        cream::SwiGluMerged(a, b, rows, inter, pool);
        break;
      }
      case FusedOp::kSwiGluMergedGrad: {  // gateUp, dy, dGateUp, rows, inter
        size_t rows = 0, inter = 0, merged = 0, half = 0;
        if (!size(3, &rows) || !size(4, &inter) || !product({rows, 2, inter}, &merged) || !product({rows, inter}, &half) ||
            !span(0, merged, "gateUp", &a) || !span(1, half, "dy", &b) || !span(2, merged, "dGateUp", &c)) {
          return nullptr;
        }
        cream::SwiGluMergedGrad(a, b, c, rows, inter, pool);
        break;
      }
      // With cos and sin (else -1), the merged form: q, keys and values are all
      // the one projection qkv [b, t, (hq + 2 hkv) dh] (the same offset thrice,
      // s == t), and dq, dk and dv all its gradient dqkv; cos and sin are [b, t, dh / 2].
      // For the gradient the forward pass keeps probs [b, hq, t, s] or lse [b, hq, t] (each -1: none).
      case FusedOp::kAttention:  // q, keys, values, mask (-1: none), out, probs, b, hq, hkv, t, s, dh, scale, past (-1: none; int32 [b]), cos, sin, starts (-1: none; int32 [b, t], with past), lse
      case FusedOp::kAttentionGrad: {  // dy, q, keys, values, probs, dq, dk, dv, b, hq, hkv, t, s, dh, scale, cos, sin, mask, past, starts, lse: one of probs and lse (with lse, the forward pass's mask, past and starts)
        const bool forward = code == static_cast<size_t>(FusedOp::kAttention);
        const size_t first = forward ? 6 : 8;
        const size_t angles_at = forward ? 14 : 15;
        const size_t mask_at = forward ? 3 : 17, past_at = forward ? 13 : 18, starts_at = forward ? 16 : 19;
        const size_t probs_at = forward ? 5 : 4, lse_at = forward ? 17 : 20;
        const bool merged = num[angles_at] != -1 || num[angles_at + 1] != -1;
        cream::AttentionShape shape;
        size_t q_total = 0, kv_total = 0, p_total = 0, lse_total = 0, mask_total = 0, angles = 0;
        if (!size(first, &shape.b) || !size(first + 1, &shape.hq) || !size(first + 2, &shape.hkv) ||
            !size(first + 3, &shape.t) || !size(first + 4, &shape.s) || !size(first + 5, &shape.dh) ||
            !product({shape.b, shape.hq, shape.t, shape.dh}, &q_total) ||
            !product({shape.b, shape.hkv, shape.s, shape.dh}, &kv_total) ||
            !product({shape.b, shape.hq, shape.t, shape.s}, &p_total) || !product({shape.b, shape.hq, shape.t}, &lse_total) ||
            !product({shape.b, shape.t, shape.s}, &mask_total)) {
          return nullptr;
        }
        if (shape.hkv == 0 || shape.hq % shape.hkv != 0) {
          Fail(env, "query heads (" + std::to_string(shape.hq) + ") must be a multiple of kv heads (" +
                        std::to_string(shape.hkv) + ")", true);
          return nullptr;
        }
        shape.scale = static_cast<float>(num[first + 6]);
        // Extents of q, keys and values (and dq, dk, dv): one projection each merged.
        size_t q_in = q_total;
        if (merged) {
          const size_t q_at = forward ? 0 : 1, dq_at = 5;
          if (shape.s != shape.t || shape.dh % 2 != 0) {
            Fail(env, "merged attention needs as many keys as queries and an even head size, got t " +
                          std::to_string(shape.t) + ", s " + std::to_string(shape.s) + ", dh " + std::to_string(shape.dh), true);
            return nullptr;
          }
          if (num[q_at] != num[q_at + 1] || num[q_at] != num[q_at + 2] ||
              (!forward && (num[dq_at] != num[dq_at + 1] || num[dq_at] != num[dq_at + 2]))) {
            Fail(env, "merged attention takes the one qkv offset for q, keys and values (and the one dqkv for dq, dk, dv)", true);
            return nullptr;
          }
          float *cos = nullptr, *sin = nullptr;
          if (!product({shape.b, shape.t, shape.hq + 2 * shape.hkv, shape.dh}, &q_in) ||
              !product({shape.b, shape.t, shape.dh / 2}, &angles) || !span(angles_at, angles, "cos", &cos) ||
              !span(angles_at + 1, angles, "sin", &sin)) {
            return nullptr;
          }
          shape.cos = cos;
          shape.sin = sin;
          kv_total = q_in;
        }
        // The mask: a bias, or causal from each row's past (query t of row b sees
        // slots 0 .. past[b] + t), from each query's start when packed.
        float* mask = nullptr;
        if (num[mask_at] != -1 && !span(mask_at, mask_total, "mask", &mask)) return nullptr;
        if (num[past_at] != -1) {
          float* raw = nullptr;
          if (!span(past_at, shape.b, "past", &raw)) return nullptr;
          const auto* past = reinterpret_cast<const int32_t*>(raw);
          for (size_t bi = 0; bi < shape.b; ++bi) {
            if (past[bi] < 0 || static_cast<size_t>(past[bi]) + shape.t > shape.s) {
              Fail(env, "past " + std::to_string(past[bi]) + " of row " + std::to_string(bi) + " leaves no room for " +
                            std::to_string(shape.t) + " queries in " + std::to_string(shape.s) + " keys", true);
              return nullptr;
            }
          }
          shape.past = past;
        }
        if (num[starts_at] != -1) {  // packed segments: query t of row b sees slots starts[b t + t] .. past[b] + t
          size_t starts_total = 0;
          float* raw = nullptr;
          if (shape.past == nullptr || mask != nullptr) {
            Fail(env, "attention starts need past and no mask", true);
            return nullptr;
          }
          if (!product({shape.b, shape.t}, &starts_total) || !span(starts_at, starts_total, "starts", &raw)) return nullptr;
          const auto* starts = reinterpret_cast<const int32_t*>(raw);
          for (size_t i = 0; i < starts_total; ++i) {
            const size_t last = static_cast<size_t>(shape.past[i / shape.t]) + i % shape.t;  // the query's own slot
            if (starts[i] < 0 || static_cast<size_t>(starts[i]) > last) {
              Fail(env, "start " + std::to_string(starts[i]) + " of query " + std::to_string(i % shape.t) + " in row " +
                            std::to_string(i / shape.t) + " is outside [0, " + std::to_string(last) + "]", true);
              return nullptr;
            }
          }
          shape.starts = starts;
        }
        float *probs = nullptr, *lse = nullptr;
        if ((num[probs_at] != -1 && !span(probs_at, p_total, "probs", &probs)) ||
            (num[lse_at] != -1 && !span(lse_at, lse_total, "lse", &lse))) {
          return nullptr;
        }
        const Isa isa = GetInstance(env)->isa;
        if (forward) {
          if (!span(0, q_in, "q", &a) || !span(1, kv_total, "keys", &b) || !span(2, kv_total, "values", &c) ||
              !span(4, q_total, "out", &e)) {
            return nullptr;
          }
          cream::Attention(a, b, c, mask, e, probs, lse, shape, isa, pool);
        } else {
          if ((probs == nullptr) == (lse == nullptr)) {
            Fail(env, "the attention gradient takes one of probs and lse", true);
            return nullptr;
          }
          float* h = nullptr;
          if (!span(0, q_total, "dy", &a) || !span(1, q_in, "q", &b) || !span(2, kv_total, "keys", &c) ||
              !span(3, kv_total, "values", &d) || !span(5, q_in, "dq", &f) || !span(6, kv_total, "dk", &g) ||
              !span(7, kv_total, "dv", &h)) {
            return nullptr;
          }
          cream::AttentionGrad(a, b, c, d, probs, mask, lse, f, g, h, shape, isa, pool);
        }
        break;
      }
    }
  } catch (const std::exception& error) {
    napi_throw_error(env, "ERR_CREAM_FUSED", (std::string("native fused op failed: ") + error.what()).c_str());
  }
  return nullptr;
}

// packPanels(w, wOffset, n, k, out): packs W [n, k] at w[wOffset..] into
// `out` (PackedPanelsSize(n, k) floats, see gemm.h) for gemmPacked.
napi_value PackPanelsCall(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!GetArgs(env, info, "packPanels", 5, argv)) return nullptr;
  float *w = nullptr, *out = nullptr;
  size_t w_len = 0, out_len = 0, w_off = 0, n = 0, k = 0, count = 0;
  if (!GetFloats(env, argv[0], "w", &w, &w_len) || !GetSize(env, argv[1], "wOffset", &w_off) ||
      !GetSize(env, argv[2], "n", &n) || !GetSize(env, argv[3], "k", &k) ||
      !GetFloats(env, argv[4], "out", &out, &out_len)) {
    return nullptr;
  }
  if (!MulFits(n, k, &count) || n > SIZE_MAX / 2) {
    Fail(env, "packPanels sizes overflow", true);
    return nullptr;
  }
  if (!CheckExtent(env, "w", w_off, count, w_len) ||
      !CheckExtent(env, "out", 0, cream::PackedPanelsSize(n, k), out_len)) {
    return nullptr;
  }
  cream::PackPanels(w + w_off, n, k, out);
  return nullptr;
}

// gemmPacked(a, aOffset, packed, c, cOffset, m, n, k): C [m, n] = A [m, k] . W^T
// with W packed by packPanels.
napi_value GemmPackedCall(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!GetArgs(env, info, "gemmPacked", 8, argv)) return nullptr;
  Instance* instance = GetInstance(env);
  float *a = nullptr, *packed = nullptr, *c = nullptr;
  size_t a_len = 0, packed_len = 0, c_len = 0, a_off = 0, c_off = 0, m = 0, n = 0, k = 0, mk = 0, mn = 0;
  if (!GetFloats(env, argv[0], "a", &a, &a_len) || !GetSize(env, argv[1], "aOffset", &a_off) ||
      !GetFloats(env, argv[2], "packed", &packed, &packed_len) || !GetFloats(env, argv[3], "c", &c, &c_len) ||
      !GetSize(env, argv[4], "cOffset", &c_off) || !GetSize(env, argv[5], "m", &m) || !GetSize(env, argv[6], "n", &n) ||
      !GetSize(env, argv[7], "k", &k)) {
    return nullptr;
  }
  size_t nk = 0;
  if (!MulFits(m, k, &mk) || !MulFits(m, n, &mn) || !MulFits(n, k, &nk) || n > SIZE_MAX / 2) {
    Fail(env, "gemmPacked sizes overflow", true);
    return nullptr;
  }
  if (!CheckExtent(env, "a", a_off, mk, a_len) || !CheckExtent(env, "packed", 0, cream::PackedPanelsSize(n, k), packed_len) ||
      !CheckExtent(env, "c", c_off, mn, c_len)) {
    return nullptr;
  }
  try {
    cream::GemmPacked(a + a_off, packed, c + c_off, m, n, k, instance->isa, *instance->pool);
  } catch (const std::exception& error) {
    napi_throw_error(env, "ERR_CREAM_GEMM", (std::string("native gemmPacked failed: ") + error.what()).c_str());
  }
  return nullptr;
}

// decodeLayer(heap, offsets, weights, slots, sizes, eps): one decoder layer
// for t tokens per sequence (DecodeLayer in fused.h for t = 1, PrefillLayer
// for more). offsets: x, out, inputNorm, postNorm, cosTable, sinTable, keys,
// values (floats into heap); weights: wq, wk, wv, wo, w1, w3, w2 as packPanels
// copies, then for t > 1 the same seven plain [out, in]; slots: Int32Array
// [b], each sequence's first slot; sizes: b, d, hq, hkv, dh, inter, s,
// tablePositions and optionally t (default 1); extras (optional): offsets of
// bq, bk, bv, bo, qNorm, kNorm, each -1 when the model has none (qNorm and
// kNorm both or neither).
napi_value DecodeLayerCall(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  size_t argc = 7;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 6 && argc != 7) {
    Fail(env, "decodeLayer expects 6 or 7 arguments");
    return nullptr;
  }
  Instance* instance = GetInstance(env);
  float* heap = nullptr;
  size_t heap_len = 0;
  if (!GetFloats(env, argv[0], "heap", &heap, &heap_len)) return nullptr;
  auto element = [&](napi_value array, uint32_t i, napi_value* out) {
    return napi_get_element(env, array, i, out) == napi_ok;
  };
  size_t offsets[8] = {}, sizes[9] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
  static const char* offset_names[8] = {"x", "out", "inputNorm", "postNorm", "cosTable", "sinTable", "keys", "values"};
  static const char* size_names[9] = {"b", "d", "hq", "hkv", "dh", "inter", "s", "tablePositions", "t"};
  uint32_t size_count = 0;
  napi_get_array_length(env, argv[4], &size_count);
  if (size_count != 8 && size_count != 9) {
    Fail(env, "decodeLayer sizes must hold 8 or 9 values");
    return nullptr;
  }
  for (uint32_t i = 0; i < 9; ++i) {
    napi_value value;
    if (i < 8 && (!element(argv[1], i, &value) || !GetSize(env, value, offset_names[i], &offsets[i]))) return nullptr;
    if (i < size_count && (!element(argv[4], i, &value) || !GetSize(env, value, size_names[i], &sizes[i]))) return nullptr;
  }
  cream::DecodeLayerArgs a;
  a.b = sizes[0];
  a.d = sizes[1];
  a.hq = sizes[2];
  a.hkv = sizes[3];
  a.dh = sizes[4];
  a.inter = sizes[5];
  a.s = sizes[6];
  const size_t positions = sizes[7];
  a.t = sizes[8];
  for (size_t value : {a.b, a.d, a.hq, a.hkv, a.dh, a.inter, a.s, positions, a.t}) {
    if (value == 0 || value > (size_t{1} << 24)) {
      Fail(env, "decodeLayer sizes must be in [1, 2^24]", true);
      return nullptr;
    }
  }
  if (a.hq % a.hkv != 0 || a.dh % 2 != 0) {
    Fail(env, "decodeLayer needs hq a multiple of hkv and an even head size", true);
    return nullptr;
  }
  double eps = 0;
  if (napi_get_value_double(env, argv[5], &eps) != napi_ok) {
    Fail(env, "eps must be a number");
    return nullptr;
  }
  a.eps = static_cast<float>(eps);
  const size_t qd = a.hq * a.dh, kvd = a.hkv * a.dh, half = a.dh / 2;
  // Every extent below is a product of values <= 2^24 taken two or three at a time: no overflow in 64 bits.
  const size_t counts[8] = {a.b * a.t * a.d, a.b * a.t * a.d, a.d, a.d, positions * half, positions * half,
                            a.b * a.hkv * a.s * a.dh, a.b * a.hkv * a.s * a.dh};
  float* spans[8] = {};
  for (int i = 0; i < 8; ++i) {
    if (!CheckExtent(env, offset_names[i], offsets[i], counts[i], heap_len)) return nullptr;
    spans[i] = heap + offsets[i];
  }
  // The packed copies, then (t > 1) the plain weights.
  const float* weights[14] = {};
  static const char* weight_names[7] = {"wq", "wk", "wv", "wo", "w1", "w3", "w2"};
  const size_t weight_shapes[7][2] = {{qd, a.d}, {kvd, a.d}, {kvd, a.d}, {a.d, qd}, {a.inter, a.d}, {a.inter, a.d}, {a.d, a.inter}};
  const uint32_t weight_count = a.t == 1 ? 7 : 14;
  uint32_t given = 0;
  napi_get_array_length(env, argv[2], &given);
  if (given != weight_count) {
    Fail(env, "decodeLayer weights must hold " + std::to_string(weight_count) + " arrays for t = " + std::to_string(a.t));
    return nullptr;
  }
  for (uint32_t i = 0; i < weight_count; ++i) {
    napi_value value;
    float* data = nullptr;
    size_t length = 0;
    const std::string name = std::string(i < 7 ? "packed " : "") + weight_names[i % 7];
    if (!element(argv[2], i, &value) || !GetFloats(env, value, name.c_str(), &data, &length)) return nullptr;
    const size_t rows = weight_shapes[i % 7][0], columns = weight_shapes[i % 7][1];
    if (!CheckExtent(env, name.c_str(), 0, i < 7 ? cream::PackedPanelsSize(rows, columns) : rows * columns, length)) {
      return nullptr;
    }
    weights[i] = data;
  }
  const float** packed = weights;
  bool is_typed = false;
  napi_typedarray_type type;
  size_t slot_count = 0;
  void* raw = nullptr;
  napi_is_typedarray(env, argv[3], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[3], &type, &slot_count, &raw, nullptr, nullptr) != napi_ok ||
      type != napi_int32_array || slot_count != a.b) {
    Fail(env, "slots must be an Int32Array of b values");
    return nullptr;
  }
  const auto* slots = static_cast<const int32_t*>(raw);
  for (size_t i = 0; i < a.b; ++i) {
    // The row's last token sits at slots[i] + t - 1.
    if (slots[i] < 0 || static_cast<size_t>(slots[i]) + a.t > a.s || static_cast<size_t>(slots[i]) + a.t > positions) {
      Fail(env, "slots " + std::to_string(slots[i]) + ".." + std::to_string(slots[i] + a.t - 1) + " of row " +
                    std::to_string(i) + " are outside the cache (" + std::to_string(a.s) + ") or the rotary table (" +
                    std::to_string(positions) + ")", true);
      return nullptr;
    }
  }
  a.x = spans[0];
  a.out = spans[1];
  a.input_norm = spans[2];
  a.post_norm = spans[3];
  a.cos_table = spans[4];
  a.sin_table = spans[5];
  a.keys = spans[6];
  a.values = spans[7];
  a.wq = packed[0];
  a.wk = packed[1];
  a.wv = packed[2];
  a.wo = packed[3];
  a.w1 = packed[4];
  a.w3 = packed[5];
  a.w2 = packed[6];
  if (a.t > 1) {  // plain weights for the GEMM, packed copies for few rows
    a.packed_wq = packed[0];
    a.packed_wk = packed[1];
    a.packed_wv = packed[2];
    a.packed_wo = packed[3];
    a.packed_w1 = packed[4];
    a.packed_w3 = packed[5];
    a.packed_w2 = packed[6];
    a.wq = weights[7];
    a.wk = weights[8];
    a.wv = weights[9];
    a.wo = weights[10];
    a.w1 = weights[11];
    a.w3 = weights[12];
    a.w2 = weights[13];
  }
  if (argc == 7) {
    static const char* extra_names[6] = {"bq", "bk", "bv", "bo", "qNorm", "kNorm"};
    const size_t extra_counts[6] = {qd, kvd, kvd, a.d, a.dh, a.dh};
    const float* extras[6] = {};
    uint32_t extra_count = 0;
    bool is_array = false;
    napi_is_array(env, argv[6], &is_array);
    if (!is_array || napi_get_array_length(env, argv[6], &extra_count) != napi_ok || extra_count != 6) {
      Fail(env, "decodeLayer extras must be an array of 6 offsets (bq, bk, bv, bo, qNorm, kNorm; -1 for none)");
      return nullptr;
    }
    for (uint32_t i = 0; i < 6; ++i) {
      napi_value value;
      double offset = 0;
      if (!element(argv[6], i, &value) || napi_get_value_double(env, value, &offset) != napi_ok) {
        Fail(env, std::string(extra_names[i]) + " must be a number (an offset, or -1 for none)");
        return nullptr;
      }
      if (offset == -1) continue;
      size_t at = 0;
      if (!GetSize(env, value, extra_names[i], &at) || !CheckExtent(env, extra_names[i], at, extra_counts[i], heap_len)) return nullptr;
      extras[i] = heap + at;
    }
    if ((extras[4] == nullptr) != (extras[5] == nullptr)) {
      Fail(env, "decodeLayer takes qNorm and kNorm both or neither");
      return nullptr;
    }
    a.bq = extras[0];
    a.bk = extras[1];
    a.bv = extras[2];
    a.bo = extras[3];
    a.q_norm = extras[4];
    a.k_norm = extras[5];
  }
  a.slots = slots;
  try {
    if (a.t == 1) {
      cream::DecodeLayer(a, instance->isa, *instance->pool);
    } else {
      cream::PrefillLayer(a, instance->isa, *instance->pool);
    }
  } catch (const std::exception& error) {
    napi_throw_error(env, "ERR_CREAM_FUSED", (std::string("native decodeLayer failed: ") + error.what()).c_str());
  }
  return nullptr;
}

napi_value MakeString(napi_env env, const char* text) {
  napi_value value;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &value);
  return value;
}

// info(): { isa, supported: string[], threads }
napi_value InfoCall(napi_env env, napi_callback_info /*info*/) {
  Instance* instance = GetInstance(env);
  napi_value result, supported, threads;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "isa", MakeString(env, cream::IsaName(instance->isa)));
  napi_create_array(env, &supported);
  uint32_t index = 0;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2Fma, Isa::kGeneric}) {
    if (cream::IsaSupported(isa)) napi_set_element(env, supported, index++, MakeString(env, cream::IsaName(isa)));
  }
  napi_set_named_property(env, result, "supported", supported);
  napi_create_uint32(env, static_cast<uint32_t>(instance->pool->size()), &threads);
  napi_set_named_property(env, result, "threads", threads);
  return result;
}

// peakGflops(seconds): MeasurePeakGflops for the kernel and pool in use.
napi_value PeakGflopsCall(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr);
  double seconds = 0.1;
  if (argc >= 1) {
    napi_valuetype type;
    napi_typeof(env, arg, &type);
    if (type != napi_number || napi_get_value_double(env, arg, &seconds) != napi_ok || !(seconds > 0.0) || seconds > 10.0) {
      napi_throw_range_error(env, nullptr, "seconds must be a number in (0, 10]");
      return nullptr;
    }
  }
  Instance* instance = GetInstance(env);
  napi_value result;
  napi_create_double(env, cream::MeasurePeakGflops(instance->isa, *instance->pool, seconds), &result);
  return result;
}

// configure({ isa?: string, threads?: number }): picks the kernel (one this
// CPU supports) and/or rebuilds the pool with another thread count.
napi_value ConfigureCall(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value options;
  napi_get_cb_info(env, info, &argc, &options, nullptr, nullptr);
  Instance* instance = GetInstance(env);
  if (argc < 1) return nullptr;
  bool has = false;
  napi_has_named_property(env, options, "isa", &has);
  if (has) {
    napi_value value;
    napi_get_named_property(env, options, "isa", &value);
    char name[32] = {0};
    size_t length = 0;
    if (napi_get_value_string_utf8(env, value, name, sizeof(name), &length) != napi_ok) {
      Fail(env, "isa must be a string");
      return nullptr;
    }
    const std::string wanted(name, length);
    bool found = false;
    for (Isa isa : {Isa::kAvx512, Isa::kAvx2Fma, Isa::kGeneric}) {
      if (wanted == cream::IsaName(isa)) {
        if (!cream::IsaSupported(isa)) {
          Fail(env, "this CPU does not support " + wanted, true);
          return nullptr;
        }
        instance->isa = isa;
        found = true;
      }
    }
    if (!found) {
      Fail(env, "unknown isa '" + wanted + "' (avx512f, avx2+fma, generic)", true);
      return nullptr;
    }
  }
  napi_has_named_property(env, options, "threads", &has);
  if (has) {
    napi_value value;
    napi_get_named_property(env, options, "threads", &value);
    size_t threads = 0;
    if (!GetSize(env, value, "threads", &threads)) return nullptr;
    if (threads < 1 || threads > 256) {
      Fail(env, "threads must be between 1 and 256", true);
      return nullptr;
    }
    if (threads != instance->pool->size()) {
      delete instance->pool;
      instance->pool = nullptr;
      instance->pool = new cream::ThreadPool(threads);
    }
  }
  return nullptr;
}

// sumSquaresList(heap, offsets, sizes): sum(x^2) over the spans of heap at
// offsets[i] (floats) holding sizes[i] floats, as one number (SumSquaresList).
napi_value SumSquaresListCall(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!GetArgs(env, info, "sumSquaresList", 3, argv)) return nullptr;
  float* heap = nullptr;
  size_t heap_len = 0;
  if (!GetFloats(env, argv[0], "heap", &heap, &heap_len)) return nullptr;
  uint32_t count = 0, size_count = 0;
  bool offsets_array = false, sizes_array = false;
  napi_is_array(env, argv[1], &offsets_array);
  napi_is_array(env, argv[2], &sizes_array);
  if (!offsets_array || !sizes_array) {
    Fail(env, "sumSquaresList offsets and sizes must be arrays");
    return nullptr;
  }
  napi_get_array_length(env, argv[1], &count);
  napi_get_array_length(env, argv[2], &size_count);
  if (count != size_count) {
    Fail(env, "sumSquaresList got " + std::to_string(count) + " offsets and " + std::to_string(size_count) + " sizes", true);
    return nullptr;
  }
  std::vector<const float*> spans(count);
  std::vector<size_t> sizes(count);
  for (uint32_t i = 0; i < count; ++i) {
    napi_value value;
    size_t offset = 0;
    const std::string at = "[" + std::to_string(i) + "]";
    if (napi_get_element(env, argv[1], i, &value) != napi_ok || !GetSize(env, value, ("offsets" + at).c_str(), &offset)) {
      return nullptr;
    }
    if (napi_get_element(env, argv[2], i, &value) != napi_ok || !GetSize(env, value, ("sizes" + at).c_str(), &sizes[i])) {
      return nullptr;
    }
    if (!CheckExtent(env, ("span" + at).c_str(), offset, sizes[i], heap_len)) return nullptr;
    spans[i] = heap + offset;
  }
  double sum = 0.0;
  try {
    sum = cream::SumSquaresList(spans.data(), sizes.data(), count, *GetInstance(env)->pool);
  } catch (const std::exception& error) {
    napi_throw_error(env, "ERR_CREAM_FUSED", (std::string("sumSquaresList failed: ") + error.what()).c_str());
    return nullptr;
  }
  napi_value result;
  napi_create_double(env, sum, &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  auto* instance = new Instance();
  instance->isa = cream::DetectIsa();
  const unsigned hardware = std::thread::hardware_concurrency();
  instance->pool = new cream::ThreadPool(hardware == 0 ? 1 : hardware);
  napi_set_instance_data(env, instance, FinalizeInstance, nullptr);

  napi_property_descriptor properties[] = {
      {"gemm", nullptr, GemmCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fused", nullptr, FusedCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumSquaresList", nullptr, SumSquaresListCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"packPanels", nullptr, PackPanelsCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gemmPacked", nullptr, GemmPackedCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"decodeLayer", nullptr, DecodeLayerCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, InfoCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"peakGflops", nullptr, PeakGflopsCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"configure", nullptr, ConfigureCall, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
