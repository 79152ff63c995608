// N-API surface of the native GEMM (plain node_api.h, no node-addon-api, so
// the build needs nothing but the Node headers). Operands are Float32Arrays
// plus element offsets: the tfjs wasm kernel passes the wasm heap's HEAPF32
// view three times with the tensors' offsets, so the kernel reads and writes
// the wasm memory in place, with no copies. Every offset and extent is checked
// against the array's length before any pointer is formed.
#include <node_api.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string>
#include <thread>

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

napi_value Init(napi_env env, napi_value exports) {
  auto* instance = new Instance();
  instance->isa = cream::DetectIsa();
  const unsigned hardware = std::thread::hardware_concurrency();
  instance->pool = new cream::ThreadPool(hardware == 0 ? 1 : hardware);
  napi_set_instance_data(env, instance, FinalizeInstance, nullptr);

  napi_property_descriptor properties[] = {
      {"gemm", nullptr, GemmCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, InfoCall, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"configure", nullptr, ConfigureCall, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
