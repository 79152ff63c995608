// The fused kernels of fused.h. Row kernels are plain C++ written so GCC
// vectorizes them (sums in 16 independent lanes, an exp by range reduction
// and a polynomial); each carries target_clones, so one binary holds
// AVX-512, AVX2 and baseline versions and the loader picks one by CPUID.
#include "fused.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "tile-avx2.h"
#define CREAM_X86_FUSED 1
#else
#define CREAM_X86_FUSED 0
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

// CREAM_NO_TARGET_CLONES: one baseline version (the ThreadSanitizer build of
// scripts/check-native-sanitizers.sh: target_clones' ifunc resolvers run
// before the TSan runtime is up and crash).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(CREAM_NO_TARGET_CLONES)
#define CREAM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CREAM_CLONES
#endif
#define CREAM_INLINE inline __attribute__((always_inline))

namespace cream {
namespace {

// Below this many values a kernel runs on the calling thread: waking the
// pool costs a few microseconds (decoding steps are that small).
constexpr size_t kParallelValues = size_t{1} << 15;
constexpr int kLanes = 16;

// Runs body(r0, r1) over [0, rows), split across the pool when rows * width is large.
void ForRows(ThreadPool& pool, size_t rows, size_t width, const std::function<void(size_t, size_t)>& body) {
  const size_t parts = rows * width < kParallelValues ? 1 : std::min(pool.size(), rows);
  if (parts <= 1) {
    if (rows > 0) body(0, rows);
    return;
  }
  pool.Run(parts, [&](size_t i) {
    const size_t r0 = rows * i / parts;
    const size_t r1 = rows * (i + 1) / parts;
    if (r1 > r0) body(r0, r1);
  });
}

// e^x for x <= 88: x = n ln2 + r with |r| <= ln2 / 2, e^r by Cephes' expf
// polynomial (relative error about 2e-7), 2^n by the exponent bits. Inputs
// below -87 give e^-87 (1.6e-38), which every caller here treats as zero.
CREAM_INLINE float Exp(float x) {
  x = std::max(x, -87.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);
}

CREAM_INLINE float Sigmoid(float x) { return 1.0f / (1.0f + Exp(-x)); }

CREAM_INLINE float Fold(const float* acc) {
  float total = 0.0f;
  for (int l = 0; l < kLanes; ++l) total += acc[l];
  return total;
}

// sum(a[i] * b[i]) in 16 lanes.
CREAM_INLINE float Dot(const float* a, const float* b, size_t n) {
  float acc[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float total = Fold(acc);
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

CREAM_INLINE float Max(const float* a, size_t n) {
  float acc[kLanes];
  for (int l = 0; l < kLanes; ++l) acc[l] = -INFINITY;
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] = std::max(acc[l], a[i + l]);
  }
  float best = acc[0];
  for (int l = 1; l < kLanes; ++l) best = std::max(best, acc[l]);
  for (; i < n; ++i) best = std::max(best, a[i]);
  return best;
}

CREAM_CLONES void RmsNormRows(const float* x, const float* w, float* out, size_t r0, size_t r1, size_t d, float eps) {
  for (size_t r = r0; r < r1; ++r) {
    const float* row = x + r * d;
    const float inv = 1.0f / std::sqrt(Dot(row, row, d) / static_cast<float>(d) + eps);
    float* dst = out + r * d;
    for (size_t j = 0; j < d; ++j) dst[j] = row[j] * inv * w[j];
  }
}

// With g = dy * w and inv = 1 / rms: dx = inv * g - x * inv^3 * sum(g * x) / d.
CREAM_CLONES void RmsNormGradXRows(const float* x, const float* w, const float* dy, float* dx, size_t r0, size_t r1,
                                   size_t d, float eps) {
  for (size_t r = r0; r < r1; ++r) {
    const float* row = x + r * d;
    const float* grad = dy + r * d;
    const float inv = 1.0f / std::sqrt(Dot(row, row, d) / static_cast<float>(d) + eps);
    float acc[kLanes] = {};
    size_t j = 0;
    for (; j + kLanes <= d; j += kLanes) {
      for (int l = 0; l < kLanes; ++l) acc[l] += grad[j + l] * w[j + l] * row[j + l];
    }
    float dot = Fold(acc);
    for (; j < d; ++j) dot += grad[j] * w[j] * row[j];
    const float coefficient = inv * inv * inv * dot / static_cast<float>(d);
    float* dst = dx + r * d;
    for (size_t k = 0; k < d; ++k) dst[k] = inv * grad[k] * w[k] - row[k] * coefficient;
  }
}

CREAM_CLONES void RmsNormGradWRows(const float* x, const float* dy, float* dw, size_t r0, size_t r1, size_t d,
                                   float eps) {
  for (size_t r = r0; r < r1; ++r) {
    const float* row = x + r * d;
    const float* grad = dy + r * d;
    const float inv = 1.0f / std::sqrt(Dot(row, row, d) / static_cast<float>(d) + eps);
    for (size_t j = 0; j < d; ++j) dw[j] += grad[j] * row[j] * inv;
  }
}

// h = x + y, then RmsNormRows on h, a row at a time while it is in L1: a
// residual add and the norm after it.
CREAM_CLONES void AddRmsNormRows(const float* x, const float* y, const float* w, float* h, float* out, size_t r0,
                                 size_t r1, size_t d, float eps) {
  for (size_t r = r0; r < r1; ++r) {
    for (size_t j = r * d; j < (r + 1) * d; ++j) h[j] = x[j] + y[j];
    RmsNormRows(h, w, out, r, r + 1, d, eps);
  }
}

// A row at a time: RmsNormGradXRows' dx plus addend (nullptr: none; the
// gradient the residual stream brings) when dx is given, and RmsNormGradWRows'
// terms added into dw, over x and dy read once.
CREAM_CLONES void RmsNormGradRows(const float* x, const float* w, const float* dy, const float* addend, float* dx,
                                  float* dw, size_t r0, size_t r1, size_t d, float eps) {
  for (size_t r = r0; r < r1; ++r) {
    if (dx != nullptr) {
      RmsNormGradXRows(x, w, dy, dx, r, r + 1, d, eps);
      if (addend != nullptr) {
        for (size_t j = r * d; j < (r + 1) * d; ++j) dx[j] = addend[j] + dx[j];
      }
    }
    RmsNormGradWRows(x, dy, dw, r, r + 1, d, eps);
  }
}

CREAM_CLONES void SwiGluRange(const float* gate, const float* up, float* out, size_t i0, size_t i1) {
  for (size_t i = i0; i < i1; ++i) out[i] = gate[i] * Sigmoid(gate[i]) * up[i];
}

// silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g).
CREAM_CLONES void SwiGluGradGateRange(const float* gate, const float* up, const float* dy, float* dgate, size_t i0,
                                      size_t i1) {
  for (size_t i = i0; i < i1; ++i) {
    const float s = Sigmoid(gate[i]);
    dgate[i] = dy[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
  }
}

CREAM_CLONES void SwiGluGradUpRange(const float* gate, const float* dy, float* dup, size_t i0, size_t i1) {
  for (size_t i = i0; i < i1; ++i) dup[i] = dy[i] * gate[i] * Sigmoid(gate[i]);
}

// Both gradients in one pass, each sigmoid computed once.
CREAM_CLONES void SwiGluGradRange(const float* gate, const float* up, const float* dy, float* dgate, float* dup,
                                  size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float s = Sigmoid(gate[i]);
    const float dys = dy[i] * s;
    dup[i] = dys * gate[i];
    dgate[i] = dys * up[i] * (1.0f + gate[i] * (1.0f - s));
  }
}

// x [dh] rotated by the angles (c, s) [dh / 2] into out: pairs (i, i + dh / 2)
// turn as complex numbers, by the negated angles when sign is -1 (the gradient).
CREAM_INLINE void RotateHead(const float* x, const float* c, const float* s, float sign, float* out, size_t half) {
  for (size_t i = 0; i < half; ++i) {
    const float x1 = x[i];
    const float x2 = x[i + half];
    const float si = sign * s[i];
    out[i] = x1 * c[i] - x2 * si;
    out[i + half] = x2 * c[i] + x1 * si;
  }
}

// Rows are (batch, token) pairs; sign is +1 forward and -1 backward.
// With `slots` (forward only), row r = (bi, ti) sits at position slots[bi] +
// ti: its angles are that row of the cos and sin tables, and with
// cache_slots > 0 it goes to that slot of a cache [b, h, cache_slots, dh].
// Else cos and sin hold one row per token; out is [b, h, t, dh] but in a cache.
// The tokens-first side holds row_heads heads per token (0: h), these h from
// head_offset on (the q or k part of a merged q/k/v projection).
CREAM_CLONES void RotaryRows(const float* x, const float* cos, const float* sin, float* out, size_t r0, size_t r1,
                             size_t t, size_t h, size_t dh, bool backward, const int32_t* slots = nullptr,
                             size_t cache_slots = 0, size_t row_heads = 0, size_t head_offset = 0) {
  if (row_heads == 0) row_heads = h;
  const size_t half = dh / 2;
  const float sign = backward ? -1.0f : 1.0f;
  for (size_t r = r0; r < r1; ++r) {
    const size_t bi = r / t;
    const size_t ti = r % t;
    const size_t at = slots == nullptr ? r : static_cast<size_t>(slots[bi]) + ti;
    const float* c = cos + at * half;
    const float* s = sin + at * half;
    for (size_t hi = 0; hi < h; ++hi) {
      // [b, t, h, dh] and [b, h, t, dh] (or the cache's) offsets of this (token, head).
      const size_t tokens_first = (r * row_heads + head_offset + hi) * dh;
      const size_t heads_first = cache_slots == 0 ? ((bi * h + hi) * t + ti) * dh : ((bi * h + hi) * cache_slots + at) * dh;
      RotateHead(x + (backward ? heads_first : tokens_first), c, s, sign, out + (backward ? tokens_first : heads_first), half);
    }
  }
}

// A head's rows in the merged projection are a whole token row apart (3 KiB
// and more), too far for the hardware prefetchers to follow from a few
// reads: the row this many tokens on is fetched ahead.
constexpr size_t kHeadRowsAhead = 6;
CREAM_INLINE void PrefetchHeadRow(const float* row, size_t dh, bool for_write) {
  for (size_t i = 0; i < dh; i += 16) {
    if (for_write) {
      __builtin_prefetch(row + i, 1);
    } else {
      __builtin_prefetch(row + i, 0);
    }
  }
}

// Head `slot` of sequence bi in a merged projection [b, t, row_heads, dh]
// (tokens first) to or from the rows [t, dh] of one task's q, k or v
// (Attention and AttentionGrad with AttentionShape::cos set), rotated on the
// way by the sequence's angle rows (cos and sin [b, t, dh / 2]) unless cos is
// nullptr: from `from` into `to`, whose rows are the merged projection's when
// kToMerged (a gradient, rotated back by the negated angles), else `from`'s.
template <bool kToMerged>
CREAM_INLINE void MoveHead(const float* from, float* to, size_t row_heads, size_t slot, size_t bi, size_t t,
                           size_t dh, const float* cos, const float* sin) {
  const size_t half = dh / 2;
  for (size_t ti = 0; ti < t; ++ti) {
    const size_t r = bi * t + ti;
    const size_t merged = (r * row_heads + slot) * dh, rows = ti * dh;
    const float* src = from + (kToMerged ? rows : merged);
    float* dst = to + (kToMerged ? merged : rows);
    if (ti + kHeadRowsAhead < t) {
      const float* ahead = (kToMerged ? dst : src) + kHeadRowsAhead * row_heads * dh;
      PrefetchHeadRow(ahead, dh, kToMerged);
    }
    if (cos == nullptr) {
      std::memcpy(dst, src, dh * sizeof(float));
    } else {
      RotateHead(src, cos + r * half, sin + r * half, kToMerged ? -1.0f : 1.0f, dst, half);
    }
  }
}

CREAM_CLONES void GatherHead(const float* qkv, size_t row_heads, size_t slot, size_t bi, size_t t, size_t dh,
                             const float* cos, const float* sin, float* dst) {
  MoveHead<false>(qkv, dst, row_heads, slot, bi, t, dh, cos, sin);
}

CREAM_CLONES void ScatterHead(const float* src, size_t row_heads, size_t slot, size_t bi, size_t t, size_t dh,
                              const float* cos, const float* sin, float* d_qkv) {
  MoveHead<true>(src, d_qkv, row_heads, slot, bi, t, dh, cos, sin);
}

// dst = softmax(src * scale + bias) over n values (bias may be null; src may
// be dst), the exponentials in 16 lanes; returns the log-sum-exp of
// src * scale + bias (its max plus the log of the sum after subtracting it).
CREAM_INLINE float SoftmaxInto(const float* src, const float* bias, float scale, size_t n, float* dst) {
  if (bias != nullptr) {
    for (size_t j = 0; j < n; ++j) dst[j] = src[j] * scale + bias[j];
  } else {
    for (size_t j = 0; j < n; ++j) dst[j] = src[j] * scale;
  }
  const float top = Max(dst, n);
  float acc[kLanes] = {};
  size_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float e = Exp(dst[j + l] - top);
      dst[j + l] = e;
      acc[l] += e;
    }
  }
  float total = Fold(acc);
  for (; j < n; ++j) {
    const float e = Exp(dst[j] - top);
    dst[j] = e;
    total += e;
  }
  const float inv = 1.0f / total;
  for (size_t k = 0; k < n; ++k) dst[k] *= inv;
  return top + std::log(total);
}

CREAM_CLONES float ScaledSoftmax(const float* src, const float* bias, float scale, size_t n, float* dst) {
  return SoftmaxInto(src, bias, scale, n, dst);
}

// dst[j] = exp(src[j] * scale + bias[j] - lse) over n values: a softmax row
// again from its scores and the log-sum-exp ScaledSoftmax returned.
CREAM_CLONES void SoftmaxFromLse(const float* src, const float* bias, float scale, float lse, size_t n, float* dst) {
  if (bias != nullptr) {
    for (size_t j = 0; j < n; ++j) dst[j] = Exp(src[j] * scale + bias[j] - lse);
  } else {
    for (size_t j = 0; j < n; ++j) dst[j] = Exp(src[j] * scale - lse);
  }
}

// Rows are (batch, head, query) triples.
CREAM_CLONES void SoftmaxRows(const float* scores, const float* mask, float* out, size_t r0, size_t r1, size_t h,
                              size_t t, size_t s, float scale) {
  for (size_t r = r0; r < r1; ++r) {
    const size_t bi = r / (h * t);
    const size_t qi = r % t;
    SoftmaxInto(scores + r * s, mask == nullptr ? nullptr : mask + (bi * t + qi) * s, scale, s, out + r * s);
  }
}

// Scores of one query against slots [0, s) of its keys: out[j] = q . k[j] *
// scale + bias[j], or kMaskedScore where bias[j] <= kSkipBias (those slots'
// keys are not read).
constexpr float kSkipBias = -1e8f;
constexpr float kMaskedScore = -INFINITY;
CREAM_CLONES void DecodeScoresPortable(const float* query, const float* k, const float* bias, float* out, size_t s,
                                       size_t dh, float scale) {
  for (size_t j = 0; j < s; ++j) {
    const float b = bias == nullptr ? 0.0f : bias[j];
    out[j] = b <= kSkipBias ? kMaskedScore : Dot(query, k + j * dh, dh) * scale + b;
  }
}

// out[0, dh) = sum over slots of p[j] * v[j] (slots with p[j] == 0 skipped).
CREAM_CLONES void WeightedSumPortable(const float* p, const float* v, float* out, size_t s, size_t dh) {
  for (size_t d = 0; d < dh; ++d) out[d] = 0.0f;
  for (size_t j = 0; j < s; ++j) {
    if (p[j] == 0.0f) continue;
    const float* row = v + j * dh;
    for (size_t d = 0; d < dh; ++d) out[d] += p[j] * row[d];
  }
}

// A slot's score: the dot product scaled plus its bias, or kMaskedScore
// where the bias skips the slot.
CREAM_INLINE float SlotScore(const float* bias, size_t slot, float dot, float scale) {
  if (bias == nullptr) return dot * scale;
  return bias[slot] > kSkipBias ? dot * scale + bias[slot] : kMaskedScore;
}

#if CREAM_X86_FUSED
// AVX-512: four slots at a time, each in one zmm accumulator over the head
// (a masked load for a head size that is not a multiple of 16), reduced
// with the in-register sum; GCC's lane-array version of this loop stays scalar.
__attribute__((target("avx512f"))) void DecodeScoresAvx512(const float* query, const float* k, const float* bias,
                                                         float* out, size_t s, size_t dh, float scale) {
  const size_t full = dh / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (dh - full)) - 1u);
  size_t j = 0;
  for (; j + 4 <= s; j += 4) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (size_t d = 0; d < full; d += 16) {
      const __m512 x = _mm512_loadu_ps(query + d);
      for (int q = 0; q < 4; ++q) acc[q] = _mm512_fmadd_ps(x, _mm512_loadu_ps(k + (j + q) * dh + d), acc[q]);
    }
    if (tail != 0) {
      const __m512 x = _mm512_maskz_loadu_ps(tail, query + full);
      for (int q = 0; q < 4; ++q) acc[q] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(tail, k + (j + q) * dh + full), acc[q]);
    }
    for (int q = 0; q < 4; ++q) out[j + q] = SlotScore(bias, j + q, _mm512_reduce_add_ps(acc[q]), scale);
  }
  for (; j < s; ++j) {
    __m512 acc = _mm512_setzero_ps();
    for (size_t d = 0; d < full; d += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(query + d), _mm512_loadu_ps(k + j * dh + d), acc);
    if (tail != 0) acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, query + full), _mm512_maskz_loadu_ps(tail, k + j * dh + full), acc);
    out[j] = SlotScore(bias, j, _mm512_reduce_add_ps(acc), scale);
  }
}

__attribute__((target("avx512f"))) void WeightedSumAvx512(const float* p, const float* v, float* out, size_t s,
                                                        size_t dh) {
  for (size_t d0 = 0; d0 < dh; d0 += 64) {
    // Up to 64 head values in four zmm accumulators.
    const size_t width = std::min<size_t>(64, dh - d0);
    __mmask16 masks[4];
    for (int c = 0; c < 4; ++c) {
      const size_t begin = static_cast<size_t>(c) * 16;
      const size_t count = width > begin ? std::min<size_t>(16, width - begin) : 0;
      masks[c] = static_cast<__mmask16>((1u << count) - 1u);
    }
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (size_t j = 0; j < s; ++j) {
      if (p[j] == 0.0f) continue;
      const __m512 w = _mm512_set1_ps(p[j]);
      const float* row = v + j * dh + d0;
      for (int c = 0; c < 4; ++c) acc[c] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(masks[c], row + c * 16), acc[c]);
    }
    for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(out + d0 + c * 16, masks[c], acc[c]);
  }
}
#endif

#if CREAM_X86_FUSED
// AVX2+FMA versions of the two: 8 lanes, masked loads for a head size that
// is not a multiple of 8.
__attribute__((target("avx2,fma"))) CREAM_INLINE float SumLanes(__m256 x) {
  __m128 v = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}

__attribute__((target("avx2,fma"))) void DecodeScoresAvx2(const float* query, const float* k, const float* bias,
                                                        float* out, size_t s, size_t dh, float scale) {
  const size_t full = dh / 8 * 8;
  const __m256i tail = avx2::LeadingLanes(dh - full);
  const bool has_tail = full < dh;
  size_t j = 0;
  for (; j + 4 <= s; j += 4) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t d = 0; d < full; d += 8) {
      const __m256 x = _mm256_loadu_ps(query + d);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) acc[q] = _mm256_fmadd_ps(x, _mm256_loadu_ps(k + (j + q) * dh + d), acc[q]);
    }
    if (has_tail) {
      const __m256 x = _mm256_maskload_ps(query + full, tail);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) acc[q] = _mm256_fmadd_ps(x, _mm256_maskload_ps(k + (j + q) * dh + full, tail), acc[q]);
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) out[j + q] = SlotScore(bias, j + q, SumLanes(acc[q]), scale);
  }
  for (; j < s; ++j) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t d = 0; d < full; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(query + d), _mm256_loadu_ps(k + j * dh + d), acc);
    if (has_tail) acc = _mm256_fmadd_ps(_mm256_maskload_ps(query + full, tail), _mm256_maskload_ps(k + j * dh + full, tail), acc);
    out[j] = SlotScore(bias, j, SumLanes(acc), scale);
  }
}

// acc[0..4) += p[j] * v[j][d0 .. d0 + 32) over the slots with p[j] != 0;
// kMasked loads only the lanes `masks` keep (the head's last strip).
template <bool kMasked>
__attribute__((target("avx2,fma"), always_inline)) inline void WeightedStripAvx2(const float* p, const float* v,
                                                                                size_t s, size_t dh, size_t d0,
                                                                                const __m256i* masks, __m256* acc) {
  for (size_t j = 0; j < s; ++j) {
    if (p[j] == 0.0f) continue;
    const __m256 w = _mm256_set1_ps(p[j]);
    const float* row = v + j * dh + d0;
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m256 x = kMasked ? _mm256_maskload_ps(row + c * 8, masks[c]) : _mm256_loadu_ps(row + c * 8);
      acc[c] = _mm256_fmadd_ps(w, x, acc[c]);
    }
  }
}

__attribute__((target("avx2,fma"))) void WeightedSumAvx2(const float* p, const float* v, float* out, size_t s,
                                                       size_t dh) {
  for (size_t d0 = 0; d0 < dh; d0 += 32) {
    // Up to 32 head values in four ymm accumulators.
    const size_t width = std::min<size_t>(32, dh - d0);
    __m256i masks[4];
    for (int c = 0; c < 4; ++c) {
      const size_t begin = static_cast<size_t>(c) * 8;
      masks[c] = avx2::LeadingLanes(width > begin ? std::min<size_t>(8, width - begin) : 0);
    }
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    if (width == 32) {
      WeightedStripAvx2<false>(p, v, s, dh, d0, masks, acc);
    } else {
      WeightedStripAvx2<true>(p, v, s, dh, d0, masks, acc);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) _mm256_maskstore_ps(out + d0 + c * 8, masks[c], acc[c]);
  }
}
#endif

#if CREAM_X86_FUSED
// Register-tiled products for whole-sequence attention with AVX-512: the
// head width (40 or 64 here) is too thin for the GEMM's packing to pay off,
// so these read their operands in place.

// C[R rows, 16 NC columns] = A[R, k] . Bt[k, 16 NC]: A rows lda apart, Bt rows ldb apart.
template <int R, int NC>
__attribute__((target("avx512f"))) CREAM_INLINE void TransposedTile(const float* a, size_t lda, const float* bt,
                                                                   size_t ldb, float* c, size_t ldc, size_t k) {
  __m512 acc[R][NC];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < NC; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  for (size_t d = 0; d < k; ++d) {
    __m512 b[NC];
    for (int j = 0; j < NC; ++j) b[j] = _mm512_loadu_ps(bt + d * ldb + 16 * j);
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * lda + d]);
      for (int j = 0; j < NC; ++j) acc[r][j] = _mm512_fmadd_ps(x, b[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < NC; ++j) _mm512_storeu_ps(c + r * ldc + 16 * j, acc[r][j]);
  }
}

template <int R>
__attribute__((target("avx512f"))) CREAM_INLINE void TransposedRows(const float* a, size_t lda, const float* bt,
                                                                   size_t ldb, float* c, size_t ldc, size_t chunks,
                                                                   size_t k) {
  size_t j = 0;
  for (; j + 4 <= chunks; j += 4) TransposedTile<R, 4>(a, lda, bt + 16 * j, ldb, c + 16 * j, ldc, k);
  switch (chunks - j) {
    case 3: TransposedTile<R, 3>(a, lda, bt + 16 * j, ldb, c + 16 * j, ldc, k); break;
    case 2: TransposedTile<R, 2>(a, lda, bt + 16 * j, ldb, c + 16 * j, ldc, k); break;
    case 1: TransposedTile<R, 1>(a, lda, bt + 16 * j, ldb, c + 16 * j, ldc, k); break;
    default: break;
  }
}

// C[m, n rounded up to 16] = A[m, k] . Bt[k, n]: every column up to the
// multiple of 16 is written, so Bt and C need that many (Bt's extra ones are
// read and their products ignored).
__attribute__((target("avx512f"))) void ProductTransposedAvx512(const float* a, size_t lda, const float* bt,
                                                               size_t ldb, float* c, size_t ldc, size_t m, size_t n,
                                                               size_t k) {
  const size_t chunks = (n + 15) / 16;
  size_t r = 0;
  for (; r + 6 <= m; r += 6) TransposedRows<6>(a + r * lda, lda, bt, ldb, c + r * ldc, ldc, chunks, k);
  for (; r < m; ++r) TransposedRows<1>(a + r * lda, lda, bt, ldb, c + r * ldc, ldc, chunks, k);
}

// C[R, w] (+)= A[R, k] . B[k, w], w <= 16 DC head values: A's element (r, i)
// at a[r * ars + i * aks] (a transposed A swaps the strides), B rows ldb apart,
// the last chunk masked by `tail`.
template <int R, int DC>
__attribute__((target("avx512f"))) CREAM_INLINE void HeadTile(const float* a, size_t ars, size_t aks, const float* b,
                                                             size_t ldb, float* c, size_t ldc, size_t k,
                                                             __mmask16 tail, bool accumulate) {
  __m512 acc[R][DC];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < DC; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  for (size_t i = 0; i < k; ++i) {
    __m512 v[DC];
    for (int j = 0; j + 1 < DC; ++j) v[j] = _mm512_loadu_ps(b + i * ldb + 16 * j);
    v[DC - 1] = _mm512_maskz_loadu_ps(tail, b + i * ldb + 16 * (DC - 1));
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * ars + i * aks]);
      for (int j = 0; j < DC; ++j) acc[r][j] = _mm512_fmadd_ps(x, v[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* row = c + r * ldc;
    for (int j = 0; j < DC; ++j) {
      const __mmask16 lanes = j + 1 == DC ? tail : static_cast<__mmask16>(0xFFFF);
      __m512 value = acc[r][j];
      if (accumulate) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(lanes, row + 16 * j));
      _mm512_mask_storeu_ps(row + 16 * j, lanes, value);
    }
  }
}

template <int DC>
__attribute__((target("avx512f"))) void HeadRows(const float* a, size_t ars, size_t aks, const float* b, size_t ldb,
                                                 float* c, size_t ldc, size_t m, size_t k, __mmask16 tail,
                                                 bool accumulate) {
  // About 24 accumulators: 8 rows of 3 chunks (a 40-wide head), 6 of 4 (64-wide).
  constexpr int kRows = DC <= 3 ? 8 : 24 / DC;
  size_t r = 0;
  for (; r + kRows <= m; r += kRows) {
    HeadTile<kRows, DC>(a + r * ars, ars, aks, b, ldb, c + r * ldc, ldc, k, tail, accumulate);
  }
  for (; r < m; ++r) HeadTile<1, DC>(a + r * ars, ars, aks, b, ldb, c + r * ldc, ldc, k, tail, accumulate);
}

// C[m, dh] (+)= A[m, k] . B[k, dh] for dh <= 128 (kMaxHeadTiled).
constexpr size_t kMaxHeadTiled = 128;
__attribute__((target("avx512f"))) void ProductIntoHeadAvx512(const float* a, size_t ars, size_t aks, const float* b,
                                                              size_t ldb, float* c, size_t ldc, size_t m, size_t k,
                                                              size_t dh, bool accumulate) {
  const size_t chunks = (dh + 15) / 16;
  const size_t last = dh - 16 * (chunks - 1);
  const __mmask16 tail = static_cast<__mmask16>((1u << last) - 1u);
  switch (chunks) {
    case 1: HeadRows<1>(a, ars, aks, b, ldb, c, ldc, m, k, tail, accumulate); break;
    case 2: HeadRows<2>(a, ars, aks, b, ldb, c, ldc, m, k, tail, accumulate); break;
    case 3: HeadRows<3>(a, ars, aks, b, ldb, c, ldc, m, k, tail, accumulate); break;
    case 4: HeadRows<4>(a, ars, aks, b, ldb, c, ldc, m, k, tail, accumulate); break;
    case 5: HeadRows<5>(a, ars, aks, b, ldb, c, ldc, m, k, tail, accumulate); break;
    case 6: HeadRows<6>(a, ars, aks, b, ldb, c, ldc, m, k, tail, accumulate); break;
    case 7: HeadRows<7>(a, ars, aks, b, ldb, c, ldc, m, k, tail, accumulate); break;
    default: HeadRows<8>(a, ars, aks, b, ldb, c, ldc, m, k, tail, accumulate); break;
  }
}
#endif

#if CREAM_X86_FUSED
// The same two products with AVX2+FMA, in strips of 16 columns of
// tile-avx2.h's 6 x 16 register tiles.

// As ProductTransposedAvx512: every column up to the multiple of 16 is written.
__attribute__((target("avx2,fma"))) void ProductTransposedAvx2(const float* a, size_t lda, const float* bt, size_t ldb,
                                                              float* c, size_t ldc, size_t m, size_t n, size_t k) {
  for (size_t j = 0; j < n; j += 16) avx2::Strip16<false>(a, lda, 1, bt + j, ldb, c + j, ldc, m, k, 16, false);
}

// As ProductIntoHeadAvx512; B's rows end at dh (masked loads in a last
// partial strip only). A head width of 16 j + 8 starts with a 24-wide strip
// (tile-avx2.h's Strip24), so no strip is half empty: 40-wide heads, base
// model shape, attention gradient 6.1 -> 5.1 ms a layer (bench/README.md,
// session 9).
__attribute__((target("avx2,fma"))) void ProductIntoHeadAvx2(const float* a, size_t ars, size_t aks, const float* b,
                                                            size_t ldb, float* c, size_t ldc, size_t m, size_t k,
                                                            size_t dh, bool accumulate) {
  size_t first = 0;
  if (dh % 16 == 8 && dh >= 24) {
    avx2::Strip24(a, ars, aks, b, ldb, c, ldc, m, k, accumulate);
    first = 24;
  }
  for (size_t c0 = first; c0 < dh; c0 += 16) {
    const size_t cols = std::min<size_t>(16, dh - c0);
    if (cols == 16) {
      avx2::Strip16<false>(a, ars, aks, b + c0, ldb, c + c0, ldc, m, k, 16, accumulate);
    } else {
      avx2::Strip16<true>(a, ars, aks, b + c0, ldb, c + c0, ldc, m, k, cols, accumulate);
    }
  }
}
#endif

// The tiled products for the kernel in use (TiledAttention says when they apply).
void ProductTransposed(Isa isa, const float* a, size_t lda, const float* bt, size_t ldb, float* c, size_t ldc, size_t m,
                       size_t n, size_t k) {
#if CREAM_X86_FUSED
  if (isa == Isa::kAvx512) return ProductTransposedAvx512(a, lda, bt, ldb, c, ldc, m, n, k);
  if (isa == Isa::kAvx2Fma) return ProductTransposedAvx2(a, lda, bt, ldb, c, ldc, m, n, k);
#endif
  (void)isa, (void)a, (void)lda, (void)bt, (void)ldb, (void)c, (void)ldc, (void)m, (void)n, (void)k;
}

void ProductIntoHead(Isa isa, const float* a, size_t ars, size_t aks, const float* b, size_t ldb, float* c, size_t ldc,
                     size_t m, size_t k, size_t dh, bool accumulate) {
#if CREAM_X86_FUSED
  if (isa == Isa::kAvx512) return ProductIntoHeadAvx512(a, ars, aks, b, ldb, c, ldc, m, k, dh, accumulate);
  if (isa == Isa::kAvx2Fma) return ProductIntoHeadAvx2(a, ars, aks, b, ldb, c, ldc, m, k, dh, accumulate);
#endif
  (void)isa, (void)a, (void)ars, (void)aks, (void)b, (void)ldb, (void)c, (void)ldc, (void)m, (void)k, (void)dh,
      (void)accumulate;
}

// Bt [dh, padded] = B [s, dh] transposed, columns s.. padded zero (8 x 8
// blocks in registers on x86, where the tiled products that use it run).
void TransposeHead(const float* b, float* bt, size_t s, size_t dh, size_t padded) {
#if CREAM_X86_FUSED
  avx2::TransposeRect(b, dh, bt, padded, s, dh);
#else
  for (size_t d = 0; d < dh; ++d) {
    for (size_t j = 0; j < s; ++j) bt[d * padded + j] = b[j * dh + d];
  }
#endif
  for (size_t d = 0; d < dh; ++d) std::fill(bt + d * padded + s, bt + d * padded + padded, 0.0f);
}

// p = softmax(scores) in place, kMaskedScore slots exactly 0 (exp in 16 lanes, as SoftmaxRows).
CREAM_CLONES void SoftmaxScores(float* scores, size_t s) {
  const float top = Max(scores, s);
  float acc[kLanes] = {};
  size_t j = 0;
  for (; j + kLanes <= s; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float x = scores[j + l];
      const float e = x == kMaskedScore ? 0.0f : Exp(x - top);
      scores[j + l] = e;
      acc[l] += e;
    }
  }
  float total = Fold(acc);
  for (; j < s; ++j) {
    const float e = scores[j] == kMaskedScore ? 0.0f : Exp(scores[j] - top);
    scores[j] = e;
    total += e;
  }
  const float inv = 1.0f / total;
  for (size_t i = 0; i < s; ++i) scores[i] *= inv;
}

void DecodeScores(const float* query, const float* k, const float* bias, float* out, size_t s, size_t dh, float scale) {
#if CREAM_X86_FUSED
  if (__builtin_cpu_supports("avx512f")) return DecodeScoresAvx512(query, k, bias, out, s, dh, scale);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return DecodeScoresAvx2(query, k, bias, out, s, dh, scale);
#endif
  DecodeScoresPortable(query, k, bias, out, s, dh, scale);
}

void WeightedSum(const float* p, const float* v, float* out, size_t s, size_t dh) {
#if CREAM_X86_FUSED
  if (__builtin_cpu_supports("avx512f")) return WeightedSumAvx512(p, v, out, s, dh);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return WeightedSumAvx2(p, v, out, s, dh);
#endif
  WeightedSumPortable(p, v, out, s, dh);
}

// One query token per (sequence, head) over its cache: rows r0..r1 of the
// b * hq (sequence, query head) pairs. Scores as above, softmax (exp in 16
// lanes as SoftmaxRows), out = sum p . v. Slots the mask sets at or below
// kSkipBias get probability exactly 0 and their values are not read.
void DecodeAttentionRows(const float* q, const float* keys, const float* values, const float* mask,
                                      float* out, float* scratch, size_t r0, size_t r1, size_t hq, size_t hkv,
                                      size_t s, size_t dh, float scale) {
  const size_t groups = hq / hkv;
  for (size_t r = r0; r < r1; ++r) {
    const size_t bi = r / hq;
    const size_t kv = (r % hq) / groups;
    const float* v = values + (bi * hkv + kv) * s * dh;
    DecodeScores(q + r * dh, keys + (bi * hkv + kv) * s * dh, mask == nullptr ? nullptr : mask + bi * s, scratch, s, dh,
                 scale);
    SoftmaxScores(scratch, s);
    WeightedSum(scratch, v, out + r * dh, s, dh);
  }
}

CREAM_CLONES void AddRange(const float* a, const float* b, float* out, size_t i0, size_t i1) {
  for (size_t i = i0; i < i1; ++i) out[i] = a[i] + b[i];
}

CREAM_CLONES void SoftmaxGradRows(const float* probs, const float* dy, float* dx, size_t r0, size_t r1, size_t s,
                                  float scale) {
  for (size_t r = r0; r < r1; ++r) {
    const float* p = probs + r * s;
    const float* g = dy + r * s;
    const float dot = Dot(p, g, s);
    float* dst = dx + r * s;
    for (size_t j = 0; j < s; ++j) dst[j] = scale * p[j] * (g[j] - dot);
  }
}

// max and log(sum(exp(x - max))) of one row.
CREAM_INLINE void LogSumExp(const float* row, size_t v, float* top, float* log_total) {
  *top = Max(row, v);
  float acc[kLanes] = {};
  size_t j = 0;
  for (; j + kLanes <= v; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += Exp(row[j + l] - *top);
  }
  float total = Fold(acc);
  for (; j < v; ++j) total += Exp(row[j] - *top);
  *log_total = std::log(total);
}

CREAM_CLONES void LogSoftmaxGatherRows(const float* logits, const int32_t* targets, float* out, size_t r0, size_t r1,
                                       size_t v) {
  for (size_t r = r0; r < r1; ++r) {
    const float* row = logits + r * v;
    float top, log_total;
    LogSumExp(row, v, &top, &log_total);
    out[r] = row[targets[r]] - top - log_total;
  }
}

CREAM_CLONES void LogSoftmaxGatherGradRows(const float* logits, const int32_t* targets, const float* dy,
                                           float* dlogits, size_t r0, size_t r1, size_t v) {
  for (size_t r = r0; r < r1; ++r) {
    const float* row = logits + r * v;
    float top, log_total;
    LogSumExp(row, v, &top, &log_total);
    const float shift = top + log_total;
    const float g = dy[r];
    float* dst = dlogits + r * v;
    for (size_t j = 0; j < v; ++j) dst[j] = -g * Exp(row[j] - shift);
    dst[targets[r]] += g;
  }
}

CREAM_CLONES void AdamWRange(const float* p, const float* m, const float* v, const float* g, float* p_out,
                             float* m_out, float* v_out, size_t i0, size_t i1, AdamWStep step) {
  const float one_minus_beta1 = 1.0f - step.beta1;
  const float one_minus_beta2 = 1.0f - step.beta2;
  const float inv_bias_correction2_sqrt = 1.0f / step.bias_correction2_sqrt;
  // Element i reads and writes only index i (outputs may be the inputs
  // themselves, never shifted copies), so no iteration depends on another:
  // without this GCC needs more run-time overlap checks than it allows and
  // leaves the loop scalar.
#pragma GCC ivdep
  for (size_t i = i0; i < i1; ++i) {
    const float gi = g[i] * step.gradient_scale;
    const float mi = step.beta1 * m[i] + one_minus_beta1 * gi;
    const float vi = step.beta2 * v[i] + one_minus_beta2 * gi * gi;
    const float denominator = std::sqrt(vi) * inv_bias_correction2_sqrt + step.epsilon;
    p_out[i] = p[i] * step.decay_factor - step.step_size * (mi / denominator);
    m_out[i] = mi;
    v_out[i] = vi;
  }
}

}  // namespace

void RmsNormForward(const float* x, const float* w, float* out, size_t rows, size_t d, float eps, ThreadPool& pool) {
  ForRows(pool, rows, d, [&](size_t r0, size_t r1) { RmsNormRows(x, w, out, r0, r1, d, eps); });
}

void RmsNormGradX(const float* x, const float* w, const float* dy, float* dx, size_t rows, size_t d, float eps,
                  ThreadPool& pool) {
  ForRows(pool, rows, d, [&](size_t r0, size_t r1) { RmsNormGradXRows(x, w, dy, dx, r0, r1, d, eps); });
}

void RmsNormGradW(const float* x, const float* dy, float* dw, size_t rows, size_t d, float eps, ThreadPool& pool) {
  RmsNormGrad(x, nullptr, dy, nullptr, nullptr, dw, rows, d, eps, pool);
}

void AddRmsNorm(const float* x, const float* y, const float* w, float* h, float* out, size_t rows, size_t d, float eps,
                ThreadPool& pool) {
  ForRows(pool, rows, d, [&](size_t r0, size_t r1) { AddRmsNormRows(x, y, w, h, out, r0, r1, d, eps); });
}

void RmsNormGrad(const float* x, const float* w, const float* dy, const float* addend, float* dx, float* dw,
                 size_t rows, size_t d, float eps, ThreadPool& pool) {
  // Each participant sums its rows' dw terms into its own scratch; the partial sums are added at the end.
  const size_t parts = rows * d < kParallelValues ? 1 : std::min(pool.size(), rows);
  std::vector<float*> partial(parts);
  for (size_t i = 0; i < parts; ++i) {
    partial[i] = pool.Scratch(i, d);
    std::fill(partial[i], partial[i] + d, 0.0f);
  }
  if (parts <= 1) {
    RmsNormGradRows(x, w, dy, addend, dx, partial[0], 0, rows, d, eps);
  } else {
    pool.Run(parts, [&](size_t i) {
      RmsNormGradRows(x, w, dy, addend, dx, partial[i], rows * i / parts, rows * (i + 1) / parts, d, eps);
    });
  }
  for (size_t j = 0; j < d; ++j) {
    float total = 0.0f;
    for (size_t i = 0; i < parts; ++i) total += partial[i][j];
    dw[j] = total;
  }
}

void SwiGlu(const float* gate, const float* up, float* out, size_t n, ThreadPool& pool) {
  ForRows(pool, n, 1, [&](size_t i0, size_t i1) { SwiGluRange(gate, up, out, i0, i1); });
}

void SwiGluGradGate(const float* gate, const float* up, const float* dy, float* dgate, size_t n, ThreadPool& pool) {
  ForRows(pool, n, 1, [&](size_t i0, size_t i1) { SwiGluGradGateRange(gate, up, dy, dgate, i0, i1); });
}

void SwiGluGradUp(const float* gate, const float* dy, float* dup, size_t n, ThreadPool& pool) {
  ForRows(pool, n, 1, [&](size_t i0, size_t i1) { SwiGluGradUpRange(gate, dy, dup, i0, i1); });
}

void RotaryHeads(const float* x, const float* cos, const float* sin, float* out, size_t b, size_t t, size_t h,
                 size_t dh, bool backward, ThreadPool& pool) {
  ForRows(pool, b * t, h * dh, [&](size_t r0, size_t r1) { RotaryRows(x, cos, sin, out, r0, r1, t, h, dh, backward); });
}

void QkvHeads(float* qkv, float* q, float* k, float* v, const float* cos, const float* sin, size_t b, size_t t,
              size_t hq, size_t hkv, size_t dh, bool backward, ThreadPool& pool) {
  const size_t row_heads = hq + 2 * hkv;
  ForRows(pool, b * t, row_heads * dh, [&](size_t r0, size_t r1) {
    if (backward) {
      RotaryRows(q, cos, sin, qkv, r0, r1, t, hq, dh, true, nullptr, 0, row_heads, 0);
      RotaryRows(k, cos, sin, qkv, r0, r1, t, hkv, dh, true, nullptr, 0, row_heads, hq);
    } else {
      RotaryRows(qkv, cos, sin, q, r0, r1, t, hq, dh, false, nullptr, 0, row_heads, 0);
      RotaryRows(qkv, cos, sin, k, r0, r1, t, hkv, dh, false, nullptr, 0, row_heads, hq);
    }
    for (size_t r = r0; r < r1; ++r) {
      const size_t bi = r / t, ti = r % t;
      for (size_t hi = 0; hi < hkv; ++hi) {
        float* merged = qkv + (r * row_heads + hq + hkv + hi) * dh;
        float* heads = v + ((bi * hkv + hi) * t + ti) * dh;
        if (backward) {
          std::memcpy(merged, heads, dh * sizeof(float));
        } else {
          std::memcpy(heads, merged, dh * sizeof(float));
        }
      }
    }
  });
}

void SwiGluMerged(const float* gate_up, float* out, size_t rows, size_t inter, ThreadPool& pool) {
  ForRows(pool, rows, 2 * inter, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) SwiGluRange(gate_up + r * 2 * inter, gate_up + r * 2 * inter + inter, out + r * inter, 0, inter);
  });
}

void SwiGluMergedGrad(const float* gate_up, const float* dy, float* d_gate_up, size_t rows, size_t inter,
                      ThreadPool& pool) {
  ForRows(pool, rows, 2 * inter, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const float* gate = gate_up + r * 2 * inter;
      float* d_gate = d_gate_up + r * 2 * inter;
      SwiGluGradRange(gate, gate + inter, dy + r * inter, d_gate, d_gate + inter, inter);
    }
  });
}

void MaskedSoftmax(const float* scores, const float* mask, float* out, size_t b, size_t h, size_t t, size_t s,
                   float scale, ThreadPool& pool) {
  ForRows(pool, b * h * t, s, [&](size_t r0, size_t r1) { SoftmaxRows(scores, mask, out, r0, r1, h, t, s, scale); });
}

void MaskedSoftmaxGrad(const float* probs, const float* dy, float* dx, size_t rows, size_t s, float scale,
                       ThreadPool& pool) {
  ForRows(pool, rows, s, [&](size_t r0, size_t r1) { SoftmaxGradRows(probs, dy, dx, r0, r1, s, scale); });
}

void LogSoftmaxGather(const float* logits, const int32_t* targets, float* out, size_t rows, size_t v,
                      ThreadPool& pool) {
  ForRows(pool, rows, v, [&](size_t r0, size_t r1) { LogSoftmaxGatherRows(logits, targets, out, r0, r1, v); });
}

void LogSoftmaxGatherGrad(const float* logits, const int32_t* targets, const float* dy, float* dlogits, size_t rows,
                          size_t v, ThreadPool& pool) {
  ForRows(pool, rows, v,
          [&](size_t r0, size_t r1) { LogSoftmaxGatherGradRows(logits, targets, dy, dlogits, r0, r1, v); });
}

void AdamWUpdate(const float* p, const float* m, const float* v, const float* g, float* p_out, float* m_out,
                 float* v_out, size_t n, const AdamWStep& step, ThreadPool& pool) {
  ForRows(pool, n, 1, [&](size_t i0, size_t i1) { AdamWRange(p, m, v, g, p_out, m_out, v_out, i0, i1, step); });
}

void DecodeAttention(const float* q, const float* keys, const float* values, const float* mask, float* out, size_t b,
                     size_t hq, size_t hkv, size_t s, size_t dh, float scale, ThreadPool& pool) {
  ForRows(pool, b * hq, s * dh, [&](size_t r0, size_t r1) {
    std::vector<float> scratch(s);
    DecodeAttentionRows(q, keys, values, mask, out, scratch.data(), r0, r1, hq, hkv, s, dh, scale);
  });
}

void PermuteChunks(const float* x, float* out, const size_t dims[3], const size_t perm[3], size_t chunk,
                   ThreadPool& pool) {
  // Input strides of the three leading axes, in chunks.
  const size_t stride[3] = {dims[1] * dims[2], dims[2], 1};
  const size_t out_dims[3] = {dims[perm[0]], dims[perm[1]], dims[perm[2]]};
  const size_t rows = out_dims[0] * out_dims[1] * out_dims[2];
  ForRows(pool, rows, chunk, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const size_t i2 = r % out_dims[2];
      const size_t i1 = (r / out_dims[2]) % out_dims[1];
      const size_t i0 = r / (out_dims[1] * out_dims[2]);
      const size_t from = i0 * stride[perm[0]] + i1 * stride[perm[1]] + i2 * stride[perm[2]];
      std::memcpy(out + r * chunk, x + from * chunk, chunk * sizeof(float));
    }
  });
}

void ScatterAddRows(const int32_t* indices, const float* updates, float* out, size_t m, size_t rows, size_t width,
                    ThreadPool& pool) {
  ForRows(pool, rows, m * width / std::max<size_t>(rows, 1) + width, [&](size_t r0, size_t r1) {
    std::fill(out + r0 * width, out + r1 * width, 0.0f);
    for (size_t i = 0; i < m; ++i) {
      const size_t row = static_cast<size_t>(indices[i]);
      if (row < r0 || row >= r1) continue;
      AddRange(out + row * width, updates + i * width, out + row * width, 0, width);
    }
  });
}

void AddSame(const float* a, const float* b, float* out, size_t n, ThreadPool& pool) {
  ForRows(pool, (n + 1023) / 1024, 1024, [&](size_t r0, size_t r1) { AddRange(a, b, out, r0 * 1024, std::min(n, r1 * 1024)); });
}

namespace {
// Rotary on the queries and keys of the t tokens per sequence at slots
// slots[b] + i (also their positions): queries to q_heads [b, hq, t, dh]
// (q itself when t = 1), keys rotated and values copied into the cache
// [b, hkv, s, dh] at those slots.
void RotateIntoCache(const float* q, const float* k, const float* v, float* q_heads, const DecodeLayerArgs& a,
                     ThreadPool& pool) {
  const size_t kvd = a.hkv * a.dh;
  ForRows(pool, a.b * a.t, (a.hq + 2 * a.hkv) * a.dh, [&](size_t r0, size_t r1) {
    RotaryRows(q, a.cos_table, a.sin_table, q_heads, r0, r1, a.t, a.hq, a.dh, false, a.slots);
    RotaryRows(k, a.cos_table, a.sin_table, a.keys, r0, r1, a.t, a.hkv, a.dh, false, a.slots, a.s);
    for (size_t r = r0; r < r1; ++r) {
      const size_t bi = r / a.t, slot = static_cast<size_t>(a.slots[bi]) + r % a.t;
      for (size_t hi = 0; hi < a.hkv; ++hi) {
        std::memcpy(a.values + ((bi * a.hkv + hi) * a.s + slot) * a.dh, v + r * kvd + hi * a.dh, a.dh * sizeof(float));
      }
    }
  });
}
}  // namespace

namespace {
// y [rows, width] += bias [width] on every row (the model's tf.add of a
// Linear layer's bias after its product).
void AddBiasRows(float* y, const float* bias, size_t rows, size_t width, ThreadPool& pool) {
  ForRows(pool, rows, width, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) AddRange(y + r * width, bias, y + r * width, 0, width);
  });
}

// The optional parts of a layer's attention input, on the `rows` rows of q, k
// and v just projected: their biases, then the per-head RMSNorm of q and k
// (in place: each row's sum is taken before the row is written).
void ProjectionExtras(float* q, float* k, float* v, size_t rows, const DecodeLayerArgs& a, ThreadPool& pool) {
  const size_t qd = a.hq * a.dh, kvd = a.hkv * a.dh;
  if (a.bq != nullptr) AddBiasRows(q, a.bq, rows, qd, pool);
  if (a.bk != nullptr) AddBiasRows(k, a.bk, rows, kvd, pool);
  if (a.bv != nullptr) AddBiasRows(v, a.bv, rows, kvd, pool);
  if (a.q_norm != nullptr) RmsNormForward(q, a.q_norm, q, rows * a.hq, a.dh, a.eps, pool);
  if (a.k_norm != nullptr) RmsNormForward(k, a.k_norm, k, rows * a.hkv, a.dh, a.eps, pool);
}
}  // namespace

void DecodeLayer(const DecodeLayerArgs& a, Isa isa, ThreadPool& pool) {
  const size_t qd = a.hq * a.dh, kvd = a.hkv * a.dh, groups = a.hq / a.hkv;
  // Per-thread scratch, grown as needed: the activations of one step are small.
  thread_local std::vector<float> scratch;
  const size_t need = a.b * (2 * a.d + 2 * qd + 2 * kvd + 3 * a.inter + a.d) + a.s;
  if (scratch.size() < need) scratch.resize(need);
  float* xn = scratch.data();
  float* q = xn + a.b * a.d;
  float* k = q + a.b * qd;
  float* v = k + a.b * kvd;
  float* attn = v + a.b * kvd;
  float* h = attn + a.b * qd;
  float* gate = h + a.b * a.d;
  float* up = gate + a.b * a.inter;
  float* act = up + a.b * a.inter;
  float* proj = act + a.b * a.inter;
  float* scores = proj + a.b * a.d;

  RmsNormRows(a.x, a.input_norm, xn, 0, a.b, a.d, a.eps);
  GemmPacked(xn, a.wq, q, a.b, qd, a.d, isa, pool);
  GemmPacked(xn, a.wk, k, a.b, kvd, a.d, isa, pool);
  GemmPacked(xn, a.wv, v, a.b, kvd, a.d, isa, pool);
  ProjectionExtras(q, k, v, a.b, a, pool);
  RotateIntoCache(q, k, v, q, a, pool);  // t = 1: heads first is the rows' own layout
  // Attention per (row, query head), split across the pool when the cache is large.
  const float scale = 1.0f / std::sqrt(static_cast<float>(a.dh));
  size_t attended = 0;
  for (size_t bi = 0; bi < a.b; ++bi) attended += static_cast<size_t>(a.slots[bi]) + 1;
  ForRows(pool, a.b * a.hq, attended * a.dh * 4 / a.b, [&](size_t r0, size_t r1) {
    std::vector<float> local(r0 == 0 ? 0 : a.s);
    float* row_scores = r0 == 0 ? scores : local.data();
    for (size_t r = r0; r < r1; ++r) {
      const size_t bi = r / a.hq, hi = r % a.hq;
      const size_t slot = static_cast<size_t>(a.slots[bi]);
      const size_t base = (bi * a.hkv + hi / groups) * a.s * a.dh;
      DecodeScores(q + bi * qd + hi * a.dh, a.keys + base, nullptr, row_scores, slot + 1, a.dh, scale);
      SoftmaxScores(row_scores, slot + 1);
      WeightedSum(row_scores, a.values + base, attn + bi * qd + hi * a.dh, slot + 1, a.dh);
    }
  });
  GemmPacked(attn, a.wo, proj, a.b, a.d, qd, isa, pool);
  if (a.bo != nullptr) AddBiasRows(proj, a.bo, a.b, a.d, pool);
  AddRange(a.x, proj, h, 0, a.b * a.d);
  RmsNormRows(h, a.post_norm, xn, 0, a.b, a.d, a.eps);
  GemmPacked(xn, a.w1, gate, a.b, a.inter, a.d, isa, pool);
  GemmPacked(xn, a.w3, up, a.b, a.inter, a.d, isa, pool);
  SwiGluRange(gate, up, act, 0, a.b * a.inter);
  GemmPacked(act, a.w2, proj, a.b, a.d, a.inter, isa, pool);
  AddRange(h, proj, a.out, 0, a.b * a.d);
}

namespace {
// C [m, n] = op(A) . op(B) on the pool.
void Product(const float* a, const float* b, float* c, size_t m, size_t n, size_t k, bool trans_a, bool trans_b,
             Isa isa, ThreadPool& pool) {
  GemmProblem p;
  p.a = a;
  p.b = b;
  p.c = c;
  p.m = m;
  p.n = n;
  p.k = k;
  p.trans_a = trans_a;
  p.trans_b = trans_b;
  Gemm(p, isa, pool);
}

// Rows up to which a Linear layer's product reads the PackPanels copy (no
// packing per call: 1.3-1.9x faster at 64-256 rows); the GEMM above, where
// the two are about even (a C++ harness, 2 threads, Zen 5).
constexpr size_t kPackedRowsMax = 512;

// C [m, n] = A [m, k] . W^T for a Linear weight W [n, k] (or its packed copy), on the pool.
void LinearRows(const float* a, const float* w, const float* packed, float* c, size_t m, size_t n, size_t k, Isa isa,
                ThreadPool& pool) {
  if (m <= kPackedRowsMax) return GemmPacked(a, packed, c, m, n, k, isa, pool);
  Product(a, w, c, m, n, k, false, true, isa, pool);
}
}  // namespace

void PrefillLayer(const DecodeLayerArgs& a, Isa isa, ThreadPool& pool) {
  const size_t n = a.b * a.t, qd = a.hq * a.dh, kvd = a.hkv * a.dh;
  // The activations, kept per thread between calls (a layer's pass is the
  // same size the next time) up to kRetainedFloats; a larger pass frees its
  // own at the end, so a one-off huge batch does not pin that memory. Taken
  // uninitialized: every value is written before it is read. (Freed and taken
  // again each layer, 72 MiB of them cost a SmolLM-135M-shaped scoring pass
  // of 2,048 tokens a third of its time: page faults and zeroing, where 64 MiB
  // was the limit.)
  constexpr size_t kRetainedFloats = size_t{64} << 20;  // 256 MiB
  thread_local std::unique_ptr<float[]> scratch;
  thread_local size_t scratch_floats = 0;
  const size_t need = n * (3 * a.d + 3 * qd + 2 * kvd + 3 * a.inter);
  if (scratch_floats < need) {
    scratch.reset();
    scratch.reset(new float[need]);
    scratch_floats = need;
  }
  float* xn = scratch.get();
  float* q = xn + n * a.d;
  float* k = q + n * qd;
  float* v = k + n * kvd;
  float* q_heads = v + n * kvd;
  float* attn = q_heads + n * qd;
  float* h = attn + n * qd;
  float* gate = h + n * a.d;
  float* up = gate + n * a.inter;
  float* act = up + n * a.inter;
  float* proj = act + n * a.inter;

  RmsNormForward(a.x, a.input_norm, xn, n, a.d, a.eps, pool);
  LinearRows(xn, a.wq, a.packed_wq, q, n, qd, a.d, isa, pool);
  LinearRows(xn, a.wk, a.packed_wk, k, n, kvd, a.d, isa, pool);
  LinearRows(xn, a.wv, a.packed_wv, v, n, kvd, a.d, isa, pool);
  ProjectionExtras(q, k, v, n, a, pool);
  RotateIntoCache(q, k, v, q_heads, a, pool);
  AttentionShape shape;
  shape.b = a.b;
  shape.hq = a.hq;
  shape.hkv = a.hkv;
  shape.t = a.t;
  shape.s = a.s;
  shape.dh = a.dh;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(a.dh));
  shape.past = a.slots;  // causal: token t of row b attends slots 0 .. slots[b] + t
  Attention(q_heads, a.keys, a.values, nullptr, attn, nullptr, nullptr, shape, isa, pool);
  LinearRows(attn, a.wo, a.packed_wo, proj, n, a.d, qd, isa, pool);
  if (a.bo != nullptr) AddBiasRows(proj, a.bo, n, a.d, pool);
  AddSame(a.x, proj, h, n * a.d, pool);
  RmsNormForward(h, a.post_norm, xn, n, a.d, a.eps, pool);
  LinearRows(xn, a.w1, a.packed_w1, gate, n, a.inter, a.d, isa, pool);
  LinearRows(xn, a.w3, a.packed_w3, up, n, a.inter, a.d, isa, pool);
  SwiGlu(gate, up, act, n * a.inter, pool);
  LinearRows(act, a.w2, a.packed_w2, proj, n, a.d, a.inter, isa, pool);
  AddSame(h, proj, a.out, n * a.d, pool);
  if (scratch_floats > kRetainedFloats) {
    scratch.reset();
    scratch_floats = 0;
  }
}

namespace {
// A one-thread pool per thread: the attention kernels run their small
// products inside a task of the shared pool, each on its own thread.
ThreadPool& LocalPool() {
  thread_local ThreadPool pool(1);
  return pool;
}

// Runs body(item) for item in [0, items) across the pool, one item at a time.
void ForItems(ThreadPool& pool, size_t items, size_t work_per_item, const std::function<void(size_t)>& body) {
  const size_t parts = items * work_per_item < kParallelValues ? 1 : std::min(pool.size(), items);
  TaskShares shares(items, parts);
  pool.Run(parts, [&](size_t index) {
    size_t item;
    while (shares.Next(index, &item)) body(item);
  });
}

// C [m, n] = op(A) . op(B) on this thread.
void SmallGemm(const float* a, const float* b, float* c, size_t m, size_t n, size_t k, bool trans_a, bool trans_b,
               Isa isa) {
  Product(a, b, c, m, n, k, trans_a, trans_b, isa, LocalPool());
}
}  // namespace

namespace {
// One past the last value of x[from, s) that `live` accepts, or `from` when
// none does: whole chunks of 16 skipped at a time.
template <typename Live>
size_t LastLive(const float* x, size_t from, size_t s, Live live) {
  size_t end = s;
  while (end >= from + kLanes) {
    bool any = false;
    for (int l = 0; l < kLanes; ++l) any |= live(x[end - kLanes + l]);
    if (any) break;
    end -= kLanes;
  }
  while (end > from && !live(x[end - 1])) --end;
  return end;
}
// The first value of x[0, end) that is not zero, or `end` when none is.
size_t FirstLive(const float* x, size_t end) {
  size_t i = 0;
  while (i < end && x[i] == 0.0f) ++i;
  return i;
}
// Keys a bias row leaves above kSkipBias (the causal mask's -1e9 after the
// query's own slot), and keys a probability row gives weight.
bool Attended(float bias) { return bias > kSkipBias; }
bool Weighted(float p) { return p != 0.0f; }

// The register-tiled AVX-512 or AVX2 products apply (else SmallGemm's).
bool TiledAttention(Isa isa, size_t dh) {
#if CREAM_X86_FUSED
  return (isa == Isa::kAvx512 || isa == Isa::kAvx2Fma) && dh <= kMaxHeadTiled;
#else
  (void)isa;
  (void)dh;
  return false;
#endif
}
}  // namespace

namespace {
// The keys one block of query rows attends: each row's first and one past its
// last (a bias row: up to its last key above kSkipBias; else causal from the
// row's past, or every key; from its start when packed), and the block's
// union [from, used): `from` on a 16-key boundary when `tiled` (the tiled
// products write whole 16-column strips), else 0. A row with no key to attend
// is marked `uniform`: the composed softmax of equal (all masked) scores
// gives it 1/s on every key.
struct BlockKeys {
  static constexpr size_t kMaxRows = 32;
  size_t first[kMaxRows];
  size_t end[kMaxRows];
  bool uniform[kMaxRows];
  size_t from = 0, used = 0;
};

void KeysOfBlock(const AttentionShape& a, const float* bias, size_t bi, size_t r0, size_t rows, bool tiled,
                 BlockKeys* k) {
  k->used = 0;
  k->from = a.s;
  for (size_t r = rows; r-- > 0;) {
    size_t end;
    if (bias != nullptr) {
      end = LastLive(bias + r * a.s, 0, a.s, Attended);
    } else {
      end = a.past == nullptr ? a.s : std::min(a.s, static_cast<size_t>(a.past[bi]) + r0 + r + 1);
    }
    const size_t first = a.starts == nullptr ? 0 : static_cast<size_t>(a.starts[bi * a.t + r0 + r]);
    k->uniform[r] = end == 0;
    k->first[r] = end == 0 ? 0 : first;
    k->end[r] = end == 0 ? a.s : end;
    k->used = std::max(k->used, k->end[r]);
    k->from = std::min(k->from, k->first[r]);
  }
  k->from = tiled ? k->from / 16 * 16 : 0;
}
}  // namespace

void Attention(const float* q, const float* keys, const float* values, const float* mask, float* out, float* probs,
               float* lse, const AttentionShape& a, Isa isa, ThreadPool& pool) {
  const size_t groups = a.hq / a.hkv;
  // Rows of queries per block: a block's products stop at the last key any of
  // its rows may attend (the causal mask makes later keys -1e9), which skips
  // about a third of the work at 128 tokens.
  constexpr size_t kBlockRows = 24;
  static_assert(kBlockRows <= BlockKeys::kMaxRows, "a block's rows fit BlockKeys");
  const bool tiled = TiledAttention(isa, a.dh);
  const size_t padded = (a.s + 15) / 16 * 16;
  const size_t out_ld = a.hq * a.dh;
  const bool merged = a.cos != nullptr;
  ForItems(pool, a.b * a.hq, a.t * a.s * a.dh, [&](size_t item) {
    thread_local std::vector<float> scratch;
    const size_t tiled_size = tiled ? a.dh * padded : 0;
    const size_t need = kBlockRows * (padded + a.dh) + tiled_size + (merged ? (a.t + 2 * a.s) * a.dh : 0);
    if (scratch.size() < need) scratch.resize(need);
    float* scores = scratch.data();                   // [kBlockRows, ld]
    float* weighted = scores + kBlockRows * padded;   // [kBlockRows, dh] (SmallGemm's output)
    float* kt = weighted + kBlockRows * a.dh;         // [dh, padded]: the keys transposed (tiled)
    const size_t bi = item / a.hq, hi = item % a.hq;
    // This task's query head [t, dh] and its kv head's keys and values [s, dh].
    const float *q_head, *k_head, *v_head;
    if (merged) {
      const size_t row_heads = a.hq + 2 * a.hkv, kvi = hi / groups;
      float* gathered = kt + tiled_size;
      GatherHead(q, row_heads, hi, bi, a.t, a.dh, a.cos, a.sin, gathered);
      GatherHead(q, row_heads, a.hq + kvi, bi, a.t, a.dh, a.cos, a.sin, gathered + a.t * a.dh);
      GatherHead(q, row_heads, a.hq + a.hkv + kvi, bi, a.t, a.dh, nullptr, nullptr, gathered + (a.t + a.s) * a.dh);
      q_head = gathered;
      k_head = gathered + a.t * a.dh;
      v_head = k_head + a.s * a.dh;
    } else {
      const size_t kv = (bi * a.hkv + hi / groups) * a.s * a.dh;
      q_head = q + item * a.t * a.dh;
      k_head = keys + kv;
      v_head = values + kv;
    }
    if (tiled) TransposeHead(k_head, kt, a.s, a.dh, padded);
    BlockKeys keys_of;
    for (size_t r0 = 0; r0 < a.t; r0 += kBlockRows) {
      const size_t rows = std::min(kBlockRows, a.t - r0);
      const float* bias = mask == nullptr ? nullptr : mask + (bi * a.t + r0) * a.s;
      const float* q_block = q_head + r0 * a.dh;
      // Keys before the block's first attended one and past its last are left
      // out, and each row's softmax runs over its own keys only.
      KeysOfBlock(a, bias, bi, r0, rows, tiled, &keys_of);
      const size_t from = keys_of.from, width = keys_of.used;
      const size_t ld = tiled ? padded : width;
      if (tiled) {
        ProductTransposed(isa, q_block, a.dh, kt + from, padded, scores + from, ld, rows, width - from, a.dh);
      } else {
        SmallGemm(q_block, k_head, scores, rows, width, a.dh, false, true, isa);
      }
      // The probabilities go where the gradient keeps them (each row whole,
      // zeros outside its keys), else in place of the scores.
      float* p_block = probs == nullptr ? scores : probs + (item * a.t + r0) * a.s;
      const size_t p_ld = probs == nullptr ? ld : a.s;
      const size_t fill_from = probs == nullptr ? from : 0, fill_to = probs == nullptr ? width : a.s;  // each row's span
      for (size_t r = 0; r < rows; ++r) {
        float* p = p_block + r * p_ld;
        const size_t first = keys_of.first[r], end = keys_of.end[r];
        float row_lse = NAN;  // a uniform row's is not read: the gradient knows the row is uniform
        if (keys_of.uniform[r]) {
          std::fill(p + fill_from, p + fill_to, 1.0f / static_cast<float>(a.s));
        } else {
          row_lse = ScaledSoftmax(scores + r * ld + first, bias == nullptr ? nullptr : bias + r * a.s + first, a.scale,
                                  end - first, p + first);
          std::fill(p + fill_from, p + first, 0.0f);
          std::fill(p + end, p + fill_to, 0.0f);
        }
        if (lse != nullptr) lse[item * a.t + r0 + r] = row_lse;
      }
      float* dst = out + ((bi * a.t + r0) * a.hq + hi) * a.dh;
      if (tiled) {
        ProductIntoHead(isa, p_block + from, p_ld, 1, v_head + from * a.dh, a.dh, dst, out_ld, rows, width - from, a.dh, false);
      } else {
        for (size_t r = 0; r < rows && probs != nullptr; ++r) std::memcpy(scores + r * width, p_block + r * p_ld, width * sizeof(float));
        SmallGemm(scores, v_head, weighted, rows, a.dh, width, false, false, isa);
        for (size_t r = 0; r < rows; ++r) std::memcpy(dst + r * out_ld, weighted + r * a.dh, a.dh * sizeof(float));
      }
    }
  });
}

void AttentionGrad(const float* dy, const float* q, const float* keys, const float* values, const float* probs,
                   const float* mask, const float* lse, float* dq, float* dk, float* dv, const AttentionShape& a, Isa isa, ThreadPool& pool) {
  const size_t groups = a.hq / a.hkv;
  // Blocks of query rows cover the keys their rows attend, as in Attention.
  // With the kept probabilities a block stops at the last key its rows weight;
  // else each block's probabilities are computed again from its scores and the
  // rows' log-sum-exp (nothing [t, s] is kept between the passes).
  constexpr size_t kBlockRows = 32;
  static_assert(kBlockRows <= BlockKeys::kMaxRows, "a block's rows fit BlockKeys");
  const bool tiled = TiledAttention(isa, a.dh);
  const size_t padded = (a.s + 15) / 16 * 16;
  const size_t dy_ld = a.hq * a.dh;
  const bool merged = a.cos != nullptr;
  const size_t row_heads = a.hq + 2 * a.hkv;
  // One task per (sequence, kv head): its query heads' dK and dV add up there.
  ForItems(pool, a.b * a.hkv, groups * a.t * a.s * a.dh, [&](size_t item) {
    thread_local std::vector<float> scratch;
    const size_t td = a.t * a.dh, sd = a.s * a.dh, bs = kBlockRows * padded;
    const size_t first_size = std::max(td, a.dh * padded);
    const size_t kt_size = tiled && probs == nullptr ? a.dh * padded : 0;
    // Merged: the gathered k, v and q head, and dk, dv and dq before they are scattered.
    const size_t need = first_size + kt_size + 3 * bs + sd + (merged ? 4 * sd + 2 * td : 0);
    if (scratch.size() < need) scratch.resize(need);
    float* d_out = scratch.data();  // [t, dh] (SmallGemm) or V transposed [dh, padded] (tiled)
    float* kt = d_out + first_size;  // K transposed [dh, padded] (tiled, computing P again)
    float* p_block = kt + kt_size;
    float* d_probs = p_block + bs;
    float* d_scores = d_probs + bs;
    float* part = d_scores + bs;
    float* gathered = part + sd;  // merged: k, v, dk, dv [s, dh]; q, dq [t, dh]
    const size_t bi = item / a.hkv, kvi = item % a.hkv;
    const float* k = merged ? gathered : keys + item * sd;
    const float* v = merged ? gathered + sd : values + item * sd;
    float* dk_item = merged ? gathered + 2 * sd : dk + item * sd;
    float* dv_item = merged ? gathered + 3 * sd : dv + item * sd;
    float* q_head = gathered + 4 * sd;  // merged
    float* dq_head = q_head + td;       // merged
    if (merged) {
      GatherHead(keys, row_heads, a.hq + kvi, bi, a.s, a.dh, a.cos, a.sin, gathered);
      GatherHead(values, row_heads, a.hq + a.hkv + kvi, bi, a.s, a.dh, nullptr, nullptr, gathered + sd);
    }
    std::fill(dk_item, dk_item + sd, 0.0f);
    std::fill(dv_item, dv_item + sd, 0.0f);
    if (tiled) TransposeHead(v, d_out, a.s, a.dh, padded);
    if (kt_size > 0) TransposeHead(k, kt, a.s, a.dh, padded);
    BlockKeys keys_of;
    for (size_t g = 0; g < groups; ++g) {
      const size_t hi = kvi * groups + g;
      const size_t head = bi * a.hq + hi;
      const float* dy_head = dy + (bi * a.t * a.hq + hi) * a.dh;  // rows dy_ld apart
      if (merged) GatherHead(q, row_heads, hi, bi, a.t, a.dh, a.cos, a.sin, q_head);
      const float* q_rows = merged ? q_head : q + head * td;
      float* dq_rows = merged ? dq_head : dq + head * td;
      if (!tiled) {
        for (size_t ti = 0; ti < a.t; ++ti) std::memcpy(d_out + ti * a.dh, dy_head + ti * dy_ld, a.dh * sizeof(float));
      }
      for (size_t r0 = 0; r0 < a.t; r0 += kBlockRows) {
        const size_t rows = std::min(kBlockRows, a.t - r0);
        float* dq_block = dq_rows + r0 * a.dh;
        const float* q_block = q_rows + r0 * a.dh;
        // The block's probabilities P (rows p_ld apart) and the keys they weight, [from, keys_used).
        const float* p = p_block;
        size_t p_ld = 0, from = 0, keys_used = 0;
        if (probs != nullptr) {  // kept: up to the last key any row weights (the forward pass leaves exact zeros past it)
          p = probs + (head * a.t + r0) * a.s;
          p_ld = a.s;
          for (size_t r = rows; r-- > 0;) keys_used = LastLive(p + r * a.s, keys_used, a.s, Weighted);
          // Keys before every row's first weighted one (packed segments), in
          // whole 16-key chunks as the forward pass skips them.
          from = tiled ? keys_used / 16 * 16 : 0;
          for (size_t r = 0; r < rows && from > 0; ++r) from = FirstLive(p + r * a.s, from) / 16 * 16;
          if (keys_used == 0) {
            std::fill(dq_block, dq_block + rows * a.dh, 0.0f);
            continue;
          }
        } else {  // again: the scores of the block's keys, then each row's softmax from its log-sum-exp
          const float* bias = mask == nullptr ? nullptr : mask + (bi * a.t + r0) * a.s;
          KeysOfBlock(a, bias, bi, r0, rows, tiled, &keys_of);
          from = keys_of.from;
          keys_used = keys_of.used;
          p_ld = tiled ? padded : keys_used;
          if (tiled) {
            ProductTransposed(isa, q_block, a.dh, kt + from, padded, p_block + from, p_ld, rows, keys_used - from, a.dh);
          } else {
            SmallGemm(q_block, k, p_block, rows, keys_used, a.dh, false, true, isa);
          }
          for (size_t r = 0; r < rows; ++r) {
            float* row = p_block + r * p_ld;
            const size_t first = keys_of.first[r], end = keys_of.end[r];
            if (keys_of.uniform[r]) {
              std::fill(row + from, row + keys_used, 1.0f / static_cast<float>(a.s));
              continue;
            }
            SoftmaxFromLse(row + first, bias == nullptr ? nullptr : bias + r * a.s + first, a.scale,
                           lse[head * a.t + r0 + r], end - first, row + first);
            std::fill(row + from, row + first, 0.0f);
            std::fill(row + end, row + keys_used, 0.0f);
          }
        }
        if (tiled) {
          const float* dy_block = dy_head + r0 * dy_ld;
          const size_t used = keys_used - from;
          // dV[from:keys] += P^T dO
          ProductIntoHead(isa, p + from, 1, p_ld, dy_block, dy_ld, dv_item + from * a.dh, a.dh, used, rows, a.dh, true);
          // dP = dO V^T; dS = scale * P * (dP - rowsum(dP * P))
          ProductTransposed(isa, dy_block, dy_ld, d_out + from, padded, d_probs + from, padded, rows, used, a.dh);
          for (size_t r = 0; r < rows; ++r) {
            SoftmaxGradRows(p + r * p_ld + from, d_probs + r * padded + from, d_scores + r * padded + from, 0, 1, used, a.scale);
          }
          // dQ = dS K; dK[from:keys] += dS^T Q
          ProductIntoHead(isa, d_scores + from, padded, 1, k + from * a.dh, a.dh, dq_block, a.dh, rows, used, a.dh, false);
          ProductIntoHead(isa, d_scores + from, 1, padded, q_block, a.dh, dk_item + from * a.dh, a.dh, used, rows, a.dh, true);
          continue;
        }
        // The SmallGemm products read P's rows packed keys_used apart.
        for (size_t r = 0; r < rows && probs != nullptr; ++r) std::memcpy(p_block + r * keys_used, p + r * a.s, keys_used * sizeof(float));
        const float* d_out_block = d_out + r0 * a.dh;
        // dV[:keys] += P^T dO
        SmallGemm(p_block, d_out_block, part, keys_used, a.dh, rows, true, false, isa);
        AddRange(dv_item, part, dv_item, 0, keys_used * a.dh);
        // dP = dO V^T; dS = scale * P * (dP - rowsum(dP * P))
        SmallGemm(d_out_block, v, d_probs, rows, keys_used, a.dh, false, true, isa);
        SoftmaxGradRows(p_block, d_probs, d_scores, 0, rows, keys_used, a.scale);
        // dQ = dS K; dK[:keys] += dS^T Q
        SmallGemm(d_scores, k, dq_block, rows, a.dh, keys_used, false, false, isa);
        SmallGemm(d_scores, q_block, part, keys_used, a.dh, rows, true, false, isa);
        AddRange(dk_item, part, dk_item, 0, keys_used * a.dh);
      }
      if (merged) ScatterHead(dq_head, row_heads, hi, bi, a.t, a.dh, a.cos, a.sin, dq);
    }
    if (merged) {
      ScatterHead(dk_item, row_heads, a.hq + kvi, bi, a.s, a.dh, a.cos, a.sin, dk);
      ScatterHead(dv_item, row_heads, a.hq + a.hkv + kvi, bi, a.s, a.dh, nullptr, nullptr, dv);
    }
  });
}

double SumSquaresList(const float* const* spans, const size_t* sizes, size_t count, ThreadPool& pool) {
  constexpr size_t kChunk = 4096;
  struct Chunk {
    const float* x;
    size_t n;
  };
  std::vector<Chunk> chunks;
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) {
    for (size_t c = 0; c < sizes[i]; c += kChunk) chunks.push_back({spans[i] + c, std::min(kChunk, sizes[i] - c)});
    total += sizes[i];
  }
  std::vector<float> sums(chunks.size());
  const size_t parts = total < kParallelValues ? 1 : std::min(pool.size(), chunks.size());
  const auto body = [&](size_t index) {
    const size_t c1 = chunks.size() * (index + 1) / parts;
    for (size_t c = chunks.size() * index / parts; c < c1; ++c) sums[c] = Dot(chunks[c].x, chunks[c].x, chunks[c].n);
  };
  if (parts <= 1) {
    body(0);
  } else {
    pool.Run(parts, body);
  }
  double sum = 0.0;
  for (float value : sums) sum += value;
  return sum;
}

double SumSquares(const float* x, size_t n, ThreadPool& pool) { return SumSquaresList(&x, &n, 1, pool); }

}  // namespace cream
