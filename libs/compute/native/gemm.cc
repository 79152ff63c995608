// Blocked, packed fp32 batched GEMM in the Goto/BLIS shape: op(B) is packed in
// KC x NC blocks of NR-wide panels, op(A) in MC x KC blocks of MR-high panels,
// and a register-blocked MR x NR micro-kernel runs over them. Three
// micro-kernels (AVX-512 12x32, AVX2+FMA 6x16, portable 4x16) live in this one
// object file: the SIMD ones carry target attributes instead of a global
// -march, so the binary loads on any x86-64 and picks its kernel by CPUID.
#include "gemm.h"
#include "tile-avx2.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CREAM_X86 1
#include <immintrin.h>
#else
#define CREAM_X86 0
#endif

namespace cream {
namespace {

// Largest tile of any kernel, for the stack buffer of edge tiles.
constexpr size_t kMaxMr = 12;
constexpr size_t kMaxNr = 32;

// Products with at most this many rows read B in place (an untransposed B
// by the micro-kernel, a transposed one by dot products) instead of packing it: each B value is used so few times that packing
// (one read and one write per value) would cost as much as the product
// (decoding steps, where M is the batch).
constexpr size_t kDirectBMaxRows = 32;

// Untransposed products of at most this many rows go to the row-axpy path
// (the micro-kernels' tiles are 4 to 12 rows high).
constexpr size_t kAxpyMaxRows = 3;

// A single product split by rows across threads packs its whole op(B) once,
// shared, instead of once per task, when the packed copy stays this small.
constexpr size_t kMaxSharedPackedB = size_t{8} << 20;  // floats (32 MiB)

// A single-threaded product packs its whole op(B) up front (see RunTask) only
// when the packed copy stays in L2: it is read once per MC block of rows.
constexpr size_t kMaxDeepPackedB = size_t{256} << 10;  // floats (1 MiB)

// Below this many flops one thread is faster than waking another.
constexpr double kParallelFlops = 2.0 * 64 * 64 * 64;

// a advances by lda floats per depth step: MR for a packed panel, M when a
// transposed A is read in place; b by ldb: NR for a packed panel, N when a
// small-M product reads B in place.
using MicroKernel = void (*)(size_t kc, const float* a, size_t lda, const float* b, size_t ldb, float* c,
                             size_t ldc, bool accumulate);
// A micro-kernel that also copies each depth step's MR values of A to
// `copy`, in packed panel layout.
using CopyingKernel = void (*)(size_t kc, const float* a, size_t lda, float* copy, const float* b, size_t ldb,
                               float* c, size_t ldc, bool accumulate);

struct Plan {
  MicroKernel kernel;
  size_t mr, nr;  // register tile
  size_t kc;      // depth of a packed block: an NR x KC panel of B stays in L1
  size_t mc;      // rows of a packed A block (MC x KC in L2); a multiple of mr
  size_t nc;      // columns of a packed B block (KC x NC in L3); a multiple of nr
  // Whole panels of a transposed A read in place (PackAUnlessInPlace).
  // Measured on AVX2 only (Zen 3); the AVX-512 kernel keeps packing until
  // it is measured on an AVX-512 machine.
  bool trans_a_in_place;
  // Panels of a transposed B are packed by 8 x 8 register transposes (AVX).
  bool transpose_avx;
  // The kernel reading whole panels of an untransposed A in place, row by
  // row (nullptr: such an A is packed).
  MicroKernel rows_kernel;
  // With a transposed A read in place: the kernel that packs each panel
  // while the first column strip uses it, for the later strips to read the
  // packed copy (nullptr: every strip reads it in place).
  CopyingKernel copying_kernel;
};

#if CREAM_X86
// 12 x 32 tile: 24 zmm accumulators, two B vectors, one broadcast (27 of 32
// registers). Per k step: 2 loads + 12 broadcasts feed 24 FMAs, which keeps
// both 512-bit FMA pipes of Zen 4/5 and Skylake-X busy.
__attribute__((target("avx512f"))) void Kernel12x32Avx512(size_t kc, const float* a, size_t lda, const float* b,
                                                          size_t ldb, float* c, size_t ldc, bool accumulate) {
  __m512 acc0[12];
  __m512 acc1[12];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) {
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
  for (size_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = _mm512_loadu_ps(b + 16);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * ldb), _MM_HINT_T0);
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
    a += lda;
    b += ldb;
  }
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      acc0[i] = _mm512_add_ps(acc0[i], _mm512_loadu_ps(row));
      acc1[i] = _mm512_add_ps(acc1[i], _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, acc0[i]);
    _mm512_storeu_ps(row + 16, acc1[i]);
  }
}

// How the 6 x 16 tile reads A.
enum class AvxRead {
  kPanel,      // a depth step's 6 values side by side, steps lda apart
  kRows,       // 6 rows lda apart, each walked along its depth (an untransposed A in place)
  kPanelCopy,  // as kPanel, and each step's 6 values are copied to `copy` (packing A as it is used)
};

// 6 x 16 tile: 12 ymm accumulators, the classic Haswell-to-Zen 3 shape.
template <AvxRead kRead>
__attribute__((target("avx2,fma"), always_inline)) inline void Tile6x16Avx2(size_t kc, const float* a, size_t lda,
                                                                           float* copy, const float* b, size_t ldb,
                                                                           float* c, size_t ldc, bool accumulate) {
  __m256 acc0[6];
  __m256 acc1[6];
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    acc0[i] = _mm256_setzero_ps();
    acc1[i] = _mm256_setzero_ps();
  }
  // The C tile is read (or written) only after the depth loop: asking for
  // its lines now hides the misses behind the loop.
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }
  // Unrolled four times: with a pointer step, a compare and a branch per
  // step beside 12 FMAs, an L1-resident tile ran at 75-78 GFLOP/s on one Zen 3
  // core, unrolled at 83-87 (FMA peak 89-92).
#pragma GCC unroll 4
  for (size_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    if (kRead != AvxRead::kRows) _mm_prefetch(reinterpret_cast<const char*>(a + 16 * lda), _MM_HINT_T0);
    if (kRead == AvxRead::kPanelCopy) {
      std::memcpy(copy, a, 6 * sizeof(float));  // one 16-byte and one 8-byte move
      copy += 6;
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      const __m256 ai = _mm256_broadcast_ss(kRead == AvxRead::kRows ? a + i * lda : a + i);
      acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
    }
    a += kRead == AvxRead::kRows ? 1 : lda;
    b += ldb;
  }
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      acc0[i] = _mm256_add_ps(acc0[i], _mm256_loadu_ps(row));
      acc1[i] = _mm256_add_ps(acc1[i], _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, acc0[i]);
    _mm256_storeu_ps(row + 8, acc1[i]);
  }
}

template <AvxRead kRead>
__attribute__((target("avx2,fma"))) void Kernel6x16Avx2(size_t kc, const float* a, size_t lda, const float* b,
                                                       size_t ldb, float* c, size_t ldc, bool accumulate) {
  Tile6x16Avx2<kRead>(kc, a, lda, nullptr, b, ldb, c, ldc, accumulate);
}

__attribute__((target("avx2,fma"))) void Kernel6x16Avx2Copy(size_t kc, const float* a, size_t lda, float* copy,
                                                           const float* b, size_t ldb, float* c, size_t ldc,
                                                           bool accumulate) {
  Tile6x16Avx2<AvxRead::kPanelCopy>(kc, a, lda, copy, b, ldb, c, ldc, accumulate);
}
#endif  // CREAM_X86

// Portable 4 x 16 tile in plain C++; the compiler vectorizes it for the
// baseline ISA (SSE2 on x86-64, NEON on arm64).
void Kernel4x16Generic(size_t kc, const float* a, size_t lda, const float* b, size_t ldb, float* c, size_t ldc,
                       bool accumulate) {
  float acc[4][16] = {};
  for (size_t p = 0; p < kc; ++p) {
    for (int i = 0; i < 4; ++i) {
      const float ai = a[i];
      for (int j = 0; j < 16; ++j) acc[i][j] += ai * b[j];
    }
    a += lda;
    b += ldb;
  }
  for (int i = 0; i < 4; ++i) {
    float* row = c + i * ldc;
    for (int j = 0; j < 16; ++j) row[j] = accumulate ? row[j] + acc[i][j] : acc[i][j];
  }
}

// Few rows against a transposed B (decoding: x . W^T with W in [out, in]
// layout, or one query against the cached keys): every output is the dot
// product of a row of A with a row of B, both contiguous, so B is read in
// place once, four rows at a time, instead of being packed on every call.
// The body is compiled once per instruction set through the wrappers below.
inline __attribute__((always_inline)) void DotRowsBody(const float* a, const float* b, float* c, size_t m, size_t n0,
                                                       size_t n1, size_t k, size_t ldc) {
  constexpr int kLanes = 16;
  size_t j = n0;
  for (; j + 4 <= n1; j += 4) {
    const float* b0 = b + j * k;
    for (size_t i = 0; i < m; ++i) {
      const float* row = a + i * k;
      float acc[4][kLanes] = {};
      size_t p = 0;
      for (; p + kLanes <= k; p += kLanes) {
        for (int l = 0; l < kLanes; ++l) {
          const float x = row[p + l];
          acc[0][l] += x * b0[p + l];
          acc[1][l] += x * b0[k + p + l];
          acc[2][l] += x * b0[2 * k + p + l];
          acc[3][l] += x * b0[3 * k + p + l];
        }
      }
      // Lanes folded in halves (vector adds), not one by one.
#pragma GCC unroll 4
      for (int width = kLanes / 2; width >= 1; width /= 2) {
        for (int q = 0; q < 4; ++q) {
          for (int l = 0; l < width; ++l) acc[q][l] += acc[q][l + width];
        }
      }
      for (int q = 0; q < 4; ++q) {
        float total = acc[q][0];
        for (size_t r = p; r < k; ++r) total += row[r] * b0[q * k + r];
        c[i * ldc + j + q] = total;
      }
    }
  }
  for (; j < n1; ++j) {
    for (size_t i = 0; i < m; ++i) {
      float total = 0.0f;
      for (size_t p = 0; p < k; ++p) total += a[i * k + p] * b[j * k + p];
      c[i * ldc + j] = total;
    }
  }
}

// Both in-place paths: rows [0, m) of A, columns [n0, n1) of C (row stride ldc = n).
using DotRowsKernel = void (*)(const float*, const float*, float*, size_t, size_t, size_t, size_t, size_t);

#if CREAM_X86
// AVX-512: two rows of A against four rows of B in eight zmm accumulators,
// folded with in-register reductions (the generic body's lane arrays go
// through the stack, and its store-to-load forwarding stalls cost more than
// the products).
__attribute__((target("avx512f"))) void DotRowsAvx512(const float* a, const float* b, float* c, size_t m, size_t n0,
                                                      size_t n1, size_t k, size_t ldc) {
  const size_t k16 = k / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (k - k16)) - 1u);
  size_t j = n0;
  for (; j + 4 <= n1; j += 4) {
    const float* b0 = b + j * k;
    size_t i = 0;
    for (; i < m; i += 2) {
      const bool pair = i + 1 < m;
      const float* r0 = a + i * k;
      const float* r1 = pair ? r0 + k : r0;
      __m512 acc[2][4];
      for (int q = 0; q < 4; ++q) acc[0][q] = acc[1][q] = _mm512_setzero_ps();
      for (size_t p = 0; p <= k16; p += 16) {
        const bool last = p == k16;
        if (last && tail == 0) break;
        const __mmask16 mask = last ? tail : static_cast<__mmask16>(0xffff);
        const __m512 x0 = _mm512_maskz_loadu_ps(mask, r0 + p);
        const __m512 x1 = _mm512_maskz_loadu_ps(mask, r1 + p);
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
          const __m512 y = _mm512_maskz_loadu_ps(mask, b0 + q * k + p);
          acc[0][q] = _mm512_fmadd_ps(x0, y, acc[0][q]);
          acc[1][q] = _mm512_fmadd_ps(x1, y, acc[1][q]);
        }
      }
      for (int q = 0; q < 4; ++q) {
        c[i * ldc + j + q] = _mm512_reduce_add_ps(acc[0][q]);
        if (pair) c[(i + 1) * ldc + j + q] = _mm512_reduce_add_ps(acc[1][q]);
      }
    }
  }
  for (; j < n1; ++j) {
    for (size_t i = 0; i < m; ++i) {
      __m512 acc = _mm512_setzero_ps();
      for (size_t p = 0; p < k; p += 16) {
        const __mmask16 mask = p + 16 <= k ? static_cast<__mmask16>(0xffff) : tail;
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + i * k + p), _mm512_maskz_loadu_ps(mask, b + j * k + p), acc);
      }
      c[i * ldc + j] = _mm512_reduce_add_ps(acc);
    }
  }
}
__attribute__((target("avx2,fma"))) void DotRowsAvx2(const float* a, const float* b, float* c, size_t m, size_t n0,
                                                    size_t n1, size_t k, size_t ldc) {
  DotRowsBody(a, b, c, m, n0, n1, k, ldc);
}
#endif
void DotRowsGeneric(const float* a, const float* b, float* c, size_t m, size_t n0, size_t n1, size_t k, size_t ldc) {
  DotRowsBody(a, b, c, m, n0, n1, k, ldc);
}

// A row or few of A against an untransposed B (decoding: attention
// probabilities times the cached values): each output row is a sum of rows
// of B scaled by A's values, accumulated in registers 64 columns at a time,
// where the 12-row micro-kernel would compute mostly padding.
inline __attribute__((always_inline)) void AxpyRowsBody(const float* a, const float* b, float* c, size_t m, size_t n0,
                                                        size_t n1, size_t k, size_t n) {
  constexpr size_t kWidth = 64;
  for (size_t i = 0; i < m; ++i) {
    const float* row = a + i * k;
    for (size_t j = n0; j < n1; j += kWidth) {
      const size_t width = std::min(kWidth, n1 - j);
      float acc[kWidth] = {};
      if (width == kWidth) {
        for (size_t p = 0; p < k; ++p) {
          const float x = row[p];
          const float* src = b + p * n + j;
          for (size_t l = 0; l < kWidth; ++l) acc[l] += x * src[l];
        }
      } else {
        for (size_t p = 0; p < k; ++p) {
          const float x = row[p];
          const float* src = b + p * n + j;
          for (size_t l = 0; l < width; ++l) acc[l] += x * src[l];
        }
      }
      std::memcpy(c + i * n + j, acc, width * sizeof(float));
    }
  }
}

#if CREAM_X86
__attribute__((target("avx512f"))) void AxpyRowsAvx512(const float* a, const float* b, float* c, size_t m, size_t n0,
                                                       size_t n1, size_t k, size_t n) {
  for (size_t i = 0; i < m; ++i) {
    const float* row = a + i * k;
    for (size_t j = n0; j < n1; j += 64) {
      const size_t width = std::min<size_t>(64, n1 - j);
      __mmask16 mask[4];
      __m512 acc[4];
      for (size_t q = 0; q < 4; ++q) {
        const size_t lanes = width > 16 * q ? std::min<size_t>(16, width - 16 * q) : 0;
        mask[q] = static_cast<__mmask16>((1u << lanes) - 1u);
        acc[q] = _mm512_setzero_ps();
      }
      for (size_t p = 0; p < k; ++p) {
        const __m512 x = _mm512_set1_ps(row[p]);
        const float* src = b + p * n + j;
#pragma GCC unroll 4
        for (size_t q = 0; q < 4; ++q) acc[q] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(mask[q], src + 16 * q), acc[q]);
      }
      for (size_t q = 0; q < 4; ++q) _mm512_mask_storeu_ps(c + i * n + j + 16 * q, mask[q], acc[q]);
    }
  }
}
__attribute__((target("avx2,fma"))) void AxpyRowsAvx2(const float* a, const float* b, float* c, size_t m, size_t n0,
                                                     size_t n1, size_t k, size_t n) {
  AxpyRowsBody(a, b, c, m, n0, n1, k, n);
}
#endif
void AxpyRowsGeneric(const float* a, const float* b, float* c, size_t m, size_t n0, size_t n1, size_t k, size_t n) {
  AxpyRowsBody(a, b, c, m, n0, n1, k, n);
}

DotRowsKernel AxpyRowsFor(Isa isa) {
  switch (isa) {
#if CREAM_X86
    case Isa::kAvx512:
      return AxpyRowsAvx512;
    case Isa::kAvx2Fma:
      return AxpyRowsAvx2;
#endif
    default:
      return AxpyRowsGeneric;
  }
}

DotRowsKernel DotRowsFor(Isa isa) {
  switch (isa) {
#if CREAM_X86
    case Isa::kAvx512:
      return DotRowsAvx512;
    case Isa::kAvx2Fma:
      return DotRowsAvx2;
#endif
    default:
      return DotRowsGeneric;
  }
}

Plan PlanFor(Isa isa) {
  switch (isa) {
#if CREAM_X86
    case Isa::kAvx512:
      return {Kernel12x32Avx512, 12, 32, 256, 144, 1024, false, true, nullptr, nullptr};
    case Isa::kAvx2Fma:
      return {Kernel6x16Avx2<AvxRead::kPanel>, 6, 16, 256, 144, 1024, true, true, Kernel6x16Avx2<AvxRead::kRows>,
              Kernel6x16Avx2Copy};
#endif
    default:
      return {Kernel4x16Generic, 4, 16, 256, 128, 1024, true, false, nullptr, nullptr};
  }
}

// Packs rows [i0, i0 + mc) and depth [p0, p0 + kc) of op(A) into MR-high
// panels, each laid out [kc][mr], zero-padding a short last panel.
void PackA(const float* a, size_t m, size_t k, bool trans, size_t i0, size_t mc, size_t p0, size_t kc, size_t mr,
           float* out) {
  for (size_t ip = 0; ip < mc; ip += mr) {
    const size_t rows = std::min(mr, mc - ip);
    float* panel = out + ip * kc;
#if CREAM_X86
    if (!trans && rows == mr && mr % 2 == 0) {
      // A is [M, K] and the panel is full: 4 x 4 blocks transposed in SSE
      // registers, and a last pair of rows (MR 6) interleaved two floats at
      // a time (the scalar loop below stores one float at a time with a
      // stride of mr, about a tenth of a product's time).
      size_t p = 0;
      for (; p + 4 <= kc; p += 4) {
        size_t r = 0;
        for (; r + 4 <= mr; r += 4) {
          const float* src = a + (i0 + ip + r) * k + p0 + p;
          __m128 r0 = _mm_loadu_ps(src);
          __m128 r1 = _mm_loadu_ps(src + k);
          __m128 r2 = _mm_loadu_ps(src + 2 * k);
          __m128 r3 = _mm_loadu_ps(src + 3 * k);
          _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
          float* dst = panel + p * mr + r;
          _mm_storeu_ps(dst, r0);
          _mm_storeu_ps(dst + mr, r1);
          _mm_storeu_ps(dst + 2 * mr, r2);
          _mm_storeu_ps(dst + 3 * mr, r3);
        }
        if (r < mr) {
          const float* src = a + (i0 + ip + r) * k + p0 + p;
          const __m128 x = _mm_loadu_ps(src);
          const __m128 y = _mm_loadu_ps(src + k);
          const __m128 low = _mm_unpacklo_ps(x, y);   // x0 y0 x1 y1
          const __m128 high = _mm_unpackhi_ps(x, y);  // x2 y2 x3 y3
          float* dst = panel + p * mr + r;
          _mm_storel_pi(reinterpret_cast<__m64*>(dst), low);
          _mm_storeh_pi(reinterpret_cast<__m64*>(dst + mr), low);
          _mm_storel_pi(reinterpret_cast<__m64*>(dst + 2 * mr), high);
          _mm_storeh_pi(reinterpret_cast<__m64*>(dst + 3 * mr), high);
        }
      }
      for (size_t r = 0; r < mr; ++r) {
        const float* src = a + (i0 + ip + r) * k + p0;
        for (size_t q = p; q < kc; ++q) panel[q * mr + r] = src[q];
      }
      continue;
    }
#endif
    if (!trans) {
      // A is [M, K]: walk each row contiguously.
      for (size_t r = 0; r < rows; ++r) {
        const float* src = a + (i0 + ip + r) * k + p0;
        for (size_t p = 0; p < kc; ++p) panel[p * mr + r] = src[p];
      }
      for (size_t r = rows; r < mr; ++r) {
        for (size_t p = 0; p < kc; ++p) panel[p * mr + r] = 0.0f;
      }
    } else {
      // A is stored [K, M]: each depth step is a contiguous run of rows.
      for (size_t p = 0; p < kc; ++p) {
        const float* src = a + (p0 + p) * m + i0 + ip;
        float* dst = panel + p * mr;
        size_t r = 0;
        for (; r < rows; ++r) dst[r] = src[r];
        for (; r < mr; ++r) dst[r] = 0.0f;
      }
    }
  }
}

// dst [rows, W] = rows of W floats, `ld` apart from src: a copy of known
// width is inlined (a memcpy call per 64-byte row was 4% of a training step).
template <size_t W>
void CopyRows(const float* src, size_t ld, float* dst, size_t rows) {
  for (size_t p = 0; p < rows; ++p) std::memcpy(dst + p * W, src + p * ld, W * sizeof(float));
}


// Packs depth [p0, p0 + kc) and columns [j0, j0 + nc) of op(B) into NR-wide
// panels, each laid out [kc][nr], zero-padding a short last panel.
void PackB(const float* b, size_t n, size_t k, bool trans, size_t j0, size_t nc, size_t p0, size_t kc,
           const Plan& plan, float* out) {
  const size_t nr = plan.nr;
  for (size_t jp = 0; jp < nc; jp += nr) {
    const size_t cols = std::min(nr, nc - jp);
    float* panel = out + jp * kc;
    if (!trans) {
      // B is [K, N]: each depth step copies a contiguous run of columns.
      const float* src = b + p0 * n + j0 + jp;
      if (cols == nr && nr == 16) {
        CopyRows<16>(src, n, panel, kc);
      } else if (cols == nr && nr == 32) {
        CopyRows<32>(src, n, panel, kc);
      } else {
        for (size_t p = 0; p < kc; ++p) {
          float* dst = panel + p * nr;
          std::memcpy(dst, src + p * n, cols * sizeof(float));
          for (size_t j = cols; j < nr; ++j) dst[j] = 0.0f;
        }
      }
    } else {
#if CREAM_X86
      if (plan.transpose_avx && cols == nr) {  // B's rows j0 + jp .. + nr, depth p0 .. + kc
        avx2::TransposeRect(b + (j0 + jp) * k + p0, k, panel, nr, nr, kc);
        continue;
      }
#endif
      // B is stored [N, K]: each output column is a contiguous row of B.
      for (size_t j = 0; j < cols; ++j) {
        const float* src = b + (j0 + jp + j) * k + p0;
        for (size_t p = 0; p < kc; ++p) panel[p * nr + j] = src[p];
      }
      for (size_t j = cols; j < nr; ++j) {
        for (size_t p = 0; p < kc; ++p) panel[p * nr + j] = 0.0f;
      }
    }
  }
}

inline float Activate(float x, Activation activation, float alpha) {
  switch (activation) {
    case Activation::kRelu:
      return x > 0.0f ? x : 0.0f;
    case Activation::kRelu6:
      return std::min(std::max(x, 0.0f), 6.0f);
    case Activation::kSigmoid:
      return 1.0f / (1.0f + std::exp(-x));
    case Activation::kLeakyRelu:
      return x > 0.0f ? x : alpha * x;
    case Activation::kElu:
      return x > 0.0f ? x : std::expm1(x);
    default:
      return x;
  }
}

// Bias and activation over a finished block of C (rows [r0, r1), columns
// [c0, c1)), while it is still in cache.
void Epilogue(const GemmProblem& p, float* c, size_t r0, size_t r1, size_t c0, size_t c1) {
  if (p.bias == nullptr && p.activation == Activation::kLinear) return;
  for (size_t r = r0; r < r1; ++r) {
    float* row = c + r * p.n;
    for (size_t j = c0; j < c1; ++j) {
      float v = row[j];
      if (p.bias != nullptr) v += p.bias[p.bias_len == 1 ? 0 : j];
      row[j] = Activate(v, p.activation, p.leaky_alpha);
    }
  }
}

struct Task {
  size_t batch, m0, m1, n0, n1;
};

inline size_t RoundUp(size_t value, size_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Where the (jc, pc) block of a fully packed op(B) starts: column blocks of
// NC (the last one padded to NR) follow each other, each holding its depth
// blocks back to back, each laid out as PackB lays out a block.
inline size_t SharedBlockOffset(const GemmProblem& p, const Plan& plan, size_t jc, size_t nc, size_t pc) {
  return jc * p.k + pc * RoundUp(nc, plan.nr);
}

// Packs all of op(B) once into `out` (RoundUp(n, nr) * k floats), the panels
// shared out among the pool's threads.
void PrePackB(const GemmProblem& p, const Plan& plan, ThreadPool& pool, size_t participants, float* out) {
  struct Piece {
    size_t jc, nc, pc, kc, j0, j1;
  };
  std::vector<Piece> pieces;
  for (size_t jc = 0; jc < p.n; jc += plan.nc) {
    const size_t nc = std::min(plan.nc, p.n - jc);
    const size_t panels = (nc + plan.nr - 1) / plan.nr;
    for (size_t pc = 0; pc < p.k; pc += plan.kc) {
      const size_t kc = std::min(plan.kc, p.k - pc);
      for (size_t i = 0; i < participants; ++i) {
        const size_t j0 = std::min(nc, panels * i / participants * plan.nr);
        const size_t j1 = std::min(nc, panels * (i + 1) / participants * plan.nr);
        if (j1 > j0) pieces.push_back({jc, nc, pc, kc, j0, j1});
      }
    }
  }
  std::atomic<size_t> next{0};
  pool.Run(participants, [&](size_t) {
    for (size_t i = next.fetch_add(1); i < pieces.size(); i = next.fetch_add(1)) {
      const Piece& piece = pieces[i];
      float* block = out + SharedBlockOffset(p, plan, piece.jc, piece.nc, piece.pc);
      PackB(p.b, p.n, p.k, p.trans_b, piece.jc + piece.j0, piece.j1 - piece.j0, piece.pc, piece.kc, plan,
            block + piece.j0 * piece.kc);
    }
  });
}

// The macro-kernel: one packed MC x KC block of A against a KC x NC block of
// B (packed NR-wide panels from `b_block`, or, for the first `in_place_cols`
// columns, read in place from `b_in_place` with row stride ldb), into the C
// block at `c_block` (row stride ldc).
// Panels of an operand read where it is stored instead of from the packed
// block: the first `extent` rows (A) or columns (B), whole panels, `ld`
// floats apart per depth step.
// `rows` (A only): the panels' rows are `ld` floats apart and each is read
// along its depth (an untransposed A), by the plan's rows_kernel.
// `copy` (A only): the first column strip packs the panels as it reads
// them (the plan's copying_kernel), and the later strips read the packed copy.
struct InPlace {
  const float* data = nullptr;
  size_t ld = 0;
  size_t extent = 0;
  bool rows = false;
  bool copy = false;
};

void MacroKernel(const Plan& plan, size_t mc, size_t nc, size_t kc, float* pack_a, InPlace a_in_place,
                 const float* b_block, InPlace b_in_place, float* c_block, size_t ldc, bool accumulate) {
  alignas(64) float edge[kMaxMr * kMaxNr];
  for (size_t jr = 0; jr < nc; jr += plan.nr) {
    const size_t nr = std::min(plan.nr, nc - jr);
    const bool b_direct = jr < b_in_place.extent;
    const float* b_panel = b_direct ? b_in_place.data + jr : b_block + jr * kc;
    const size_t panel_ld = b_direct ? b_in_place.ld : plan.nr;
    for (size_t ir = 0; ir < mc; ir += plan.mr) {
      const size_t mr = std::min(plan.mr, mc - ir);
      float* packed_panel = pack_a + ir * kc;
      const bool a_direct = ir < a_in_place.extent && !(a_in_place.copy && jr > 0);
      const float* a_panel =
          a_direct ? a_in_place.data + ir * (a_in_place.rows ? a_in_place.ld : 1) : packed_panel;
      const size_t lda = a_direct ? a_in_place.ld : plan.mr;
      const bool copying = a_direct && a_in_place.copy;
      const MicroKernel kernel = a_direct && a_in_place.rows ? plan.rows_kernel : plan.kernel;
      const bool full = mr == plan.mr && nr == plan.nr;
      // An edge tile is computed whole aside, and its valid part kept.
      float* out = full ? c_block + ir * ldc + jr : edge;
      const size_t ld_out = full ? ldc : plan.nr;
      const bool add = full && accumulate;
      if (copying) {
        plan.copying_kernel(kc, a_panel, lda, packed_panel, b_panel, panel_ld, out, ld_out, add);
      } else {
        kernel(kc, a_panel, lda, b_panel, panel_ld, out, ld_out, add);
      }
      if (!full) {
        float* tile = c_block + ir * ldc + jr;
        for (size_t r = 0; r < mr; ++r) {
          float* dst = tile + r * ldc;
          const float* src = edge + r * plan.nr;
          if (accumulate) {
            for (size_t j = 0; j < nr; ++j) dst[j] += src[j];
          } else {
            std::memcpy(dst, src, nr * sizeof(float));
          }
        }
      }
    }
  }
}

// Whole panels of A are read where A is stored, and only a partial last
// panel is packed, when the plan has the kernels for it (AVX2 here):
// - A transposed (stored [K, M]: weight gradients dY^T . X) holds each depth
//   step's MR rows side by side, M floats apart per step. In the weight
//   gradients N is a layer width, as small as 160: packing A in a pass of its
//   own, read once per product, cost a third as much as the arithmetic on it
//   (AVX2, Zen 3: [864,160,2048] 88.3/80.4 -> 100.9/87.0 GFLOP/s on 2
//   threads). Read in place at every column strip, though, a stride of a
//   multiple of 1 KiB (M = 256, 768, 1536) maps the panel's lines to a few
//   L1 sets, which evict each other: the first strip packs the panels as it
//   reads them, and the later strips read that copy ([1536,256,2048]
//   89.9 -> 111.7 GFLOP/s, [768,256,2048] 101.6 -> 109.7).
// - A untransposed ([M, K]): each of the MR rows is walked along its depth,
//   six streams the prefetcher follows, instead of a packing pass
//   ([2048,256,1536] 111.5 -> 118.0, [2048,256,768] 121.2 -> 128.0).
InPlace PackAUnlessInPlace(const GemmProblem& p, const Plan& plan, const float* a, size_t ic, size_t mc, size_t pc,
                           size_t kc, float* pack_a) {
  const bool in_place = p.trans_a ? plan.trans_a_in_place : plan.rows_kernel != nullptr;
  if (!in_place) {
    PackA(a, p.m, p.k, p.trans_a, ic, mc, pc, kc, plan.mr, pack_a);
    return InPlace{};
  }
  const size_t full_rows = mc / plan.mr * plan.mr;
  if (full_rows < mc) {
    PackA(a, p.m, p.k, p.trans_a, ic + full_rows, mc - full_rows, pc, kc, plan.mr, pack_a + full_rows * kc);
  }
  if (p.trans_a) return InPlace{a + pc * p.m + ic, p.m, full_rows, false, plan.copying_kernel != nullptr};
  return InPlace{a + ic * p.k + pc, p.k, full_rows, true};
}

// `packed_b`, when given, holds all of op(B) packed by PrePackB; the task then
// packs only A, and walks its rows block by block through every depth block,
// so that an MC x NC block of C stays in cache while it accumulates (walking
// depth outside rows would stream all of C through memory once per KC).
void RunTask(const GemmProblem& p, const Plan& plan, const Task& t, float* pack_a, float* pack_b,
             const float* packed_b) {
  const float* a = p.a + (p.batch_a == 1 ? 0 : t.batch) * p.m * p.k;
  const float* b = p.b + (p.batch_b == 1 ? 0 : t.batch) * p.k * p.n;
  float* c = p.c + t.batch * p.m * p.n;
  const size_t ldc = p.n;
  if (p.k == 0) {
    for (size_t r = t.m0; r < t.m1; ++r) std::fill(c + r * ldc + t.n0, c + r * ldc + t.n1, 0.0f);
    Epilogue(p, c, t.m0, t.m1, t.n0, t.n1);
    return;
  }
  if (packed_b != nullptr) {
    for (size_t ic = t.m0; ic < t.m1; ic += plan.mc) {
      const size_t mc = std::min(plan.mc, t.m1 - ic);
      for (size_t jc = t.n0; jc < t.n1; jc += plan.nc) {
        const size_t nc = std::min(plan.nc, t.n1 - jc);
        for (size_t pc = 0; pc < p.k; pc += plan.kc) {
          const size_t kc = std::min(plan.kc, p.k - pc);
          const InPlace a_direct = PackAUnlessInPlace(p, plan, a, ic, mc, pc, kc, pack_a);
          MacroKernel(plan, mc, nc, kc, pack_a, a_direct, packed_b + SharedBlockOffset(p, plan, jc, nc, pc), InPlace{},
                      c + ic * ldc + jc, ldc, pc > 0);
        }
        Epilogue(p, c, ic, ic + mc, jc, jc + nc);
      }
    }
    return;
  }
  const bool direct_b = !p.trans_b && p.m <= kDirectBMaxRows;
  for (size_t jc = t.n0; jc < t.n1; jc += plan.nc) {
    const size_t nc = std::min(plan.nc, t.n1 - jc);
    for (size_t pc = 0; pc < p.k; pc += plan.kc) {
      const size_t kc = std::min(plan.kc, p.k - pc);
      // Full-width panels are read in place on the direct path; only a
      // partial last panel is packed (reading it in place would run past
      // the row, and past the array on the last row).
      const size_t full_cols = direct_b ? (nc / plan.nr) * plan.nr : 0;
      if (full_cols < nc) {
        PackB(b, p.n, p.k, p.trans_b, jc + full_cols, nc - full_cols, pc, kc, plan, pack_b + full_cols * kc);
      }
      for (size_t ic = t.m0; ic < t.m1; ic += plan.mc) {
        const size_t mc = std::min(plan.mc, t.m1 - ic);
        const InPlace a_direct = PackAUnlessInPlace(p, plan, a, ic, mc, pc, kc, pack_a);
        MacroKernel(plan, mc, nc, kc, pack_a, a_direct, pack_b, InPlace{b + pc * p.n + jc, p.n, full_cols},
                    c + ic * ldc + jc, ldc, pc > 0);
      }
    }
    Epilogue(p, c, t.m0, t.m1, jc, jc + nc);
  }
}

// Splits one batch item's [m, n] output into `parts` pieces along its longer
// side, in whole register tiles, so that both threads get work even when
// there is a single batch item.
void SplitBatch(size_t batch, size_t m, size_t n, size_t parts, const Plan& plan, std::vector<Task>& tasks) {
  const bool along_m = m >= n;
  const size_t extent = along_m ? m : n;
  const size_t granule = along_m ? plan.mr : plan.nr;
  const size_t tiles = (extent + granule - 1) / granule;
  parts = std::max<size_t>(1, std::min(parts, tiles));
  size_t start = 0;
  for (size_t i = 0; i < parts; ++i) {
    const size_t end = i + 1 == parts ? extent : std::min(extent, ((tiles * (i + 1)) / parts) * granule);
    if (end <= start) continue;
    if (along_m) {
      tasks.push_back({batch, start, end, 0, n});
    } else {
      tasks.push_back({batch, 0, m, start, end});
    }
    start = end;
  }
}

// The in-place paths for few rows: tasks are (batch item, block of 64
// output columns), shared out among the threads when the product is large enough.
void GemmRowsInPlace(const GemmProblem& p, size_t batches, DotRowsKernel kernel, ThreadPool& pool) {
  constexpr size_t kBlock = 64;  // B rows per task: 64 x k floats stay in L2
  const double flops = 2.0 * static_cast<double>(batches) * p.m * p.n * p.k;
  const size_t blocks = (p.n + kBlock - 1) / kBlock;
  const size_t tasks = batches * blocks;
  const size_t participants = flops < kParallelFlops ? 1 : std::min(pool.size(), tasks);
  std::atomic<size_t> next{0};
  pool.Run(participants, [&](size_t) {
    for (size_t t = next.fetch_add(1); t < tasks; t = next.fetch_add(1)) {
      const size_t item = t / blocks;
      const size_t n0 = (t % blocks) * kBlock;
      const size_t n1 = std::min(p.n, n0 + kBlock);
      const float* a = p.a + (p.batch_a == 1 ? 0 : item) * p.m * p.k;
      const float* b = p.b + (p.batch_b == 1 ? 0 : item) * p.n * p.k;
      float* c = p.c + item * p.m * p.n;
      kernel(a, b, c, p.m, n0, n1, p.k, p.n);
      Epilogue(p, c, 0, p.m, n0, n1);
    }
  });
}

// Rows of A per pass of GemmPacked's kernels: 8 rows x 2 panels is 16 zmm
// accumulators fed by 2 panel loads and 8 broadcasts per depth step.
constexpr size_t kPackedRows = 8;

// GemmPacked splits its panels across threads from this many flops: below
// it (a decoding step at batch 8 of a 256-wide model) the product is a few
// microseconds, and waking and waiting for another thread costs as much.
constexpr double kPackedParallelFlops = 4.0 * 1024 * 1024;

#if CREAM_X86
// C rows [0, R) x panels [p, p + P) of A . W^T: R <= 8 rows of A (row stride
// k), P <= 2 panels (kPanelWidth columns each, the last possibly partial:
// `cols` valid columns in all), C with row stride ldc.
template <int R, int P>
__attribute__((target("avx512f"))) void PackedTileAvx512(const float* a, const float* panels, float* c, size_t k,
                                                         size_t ldc, size_t cols) {
  __m512 acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q) acc[r][q] = _mm512_setzero_ps();
  const size_t panel_stride = k * kPanelWidth;
  for (size_t i = 0; i < k; ++i) {
    __m512 w[P];
    for (int q = 0; q < P; ++q) w[q] = _mm512_loadu_ps(panels + q * panel_stride + i * kPanelWidth);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * k + i]);
      for (int q = 0; q < P; ++q) acc[r][q] = _mm512_fmadd_ps(x, w[q], acc[r][q]);
    }
  }
  for (int q = 0; q < P; ++q) {
    const size_t left = cols - q * kPanelWidth;
    const __mmask16 mask = left >= kPanelWidth ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
    for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(c + r * ldc + q * kPanelWidth, mask, acc[r][q]);
  }
}

template <int P>
__attribute__((target("avx512f"))) void PackedRowsAvx512(const float* a, const float* panels, float* c, size_t rows,
                                                         size_t k, size_t ldc, size_t cols) {
  switch (rows) {
    case 1: return PackedTileAvx512<1, P>(a, panels, c, k, ldc, cols);
    case 2: return PackedTileAvx512<2, P>(a, panels, c, k, ldc, cols);
    case 3: return PackedTileAvx512<3, P>(a, panels, c, k, ldc, cols);
    case 4: return PackedTileAvx512<4, P>(a, panels, c, k, ldc, cols);
    case 5: return PackedTileAvx512<5, P>(a, panels, c, k, ldc, cols);
    case 6: return PackedTileAvx512<6, P>(a, panels, c, k, ldc, cols);
    case 7: return PackedTileAvx512<7, P>(a, panels, c, k, ldc, cols);
    default: return PackedTileAvx512<8, P>(a, panels, c, k, ldc, cols);
  }
}

#endif

// Any ISA: the same walk in plain C++ over one panel at a time.
void PackedRowsGeneric(const float* a, const float* panel, float* c, size_t rows, size_t k, size_t ldc, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    float acc[kPanelWidth] = {};
    const float* x = a + r * k;
    for (size_t i = 0; i < k; ++i) {
      const float* w = panel + i * kPanelWidth;
      for (size_t j = 0; j < kPanelWidth; ++j) acc[j] += x[i] * w[j];
    }
    for (size_t j = 0; j < cols; ++j) c[r * ldc + j] = acc[j];
  }
}

// A^T . B with a depth far larger than the output (weight gradients X^T . dY:
// the depth is the batch's tokens, m and n are layer widths). Split by rows
// of the output, every thread would read all of the depth of the other
// operand; split by depth, each thread reads its own rows of A and B (both
// [k, .] row-major, so a depth range is a contiguous block of each) into its
// own partial C, and the partials are summed after.
constexpr size_t kDeepSplitRatio = 2;

// dst [cols, rows] = src [rows, cols] transposed, split by rows of dst across the pool.
void TransposeInto(const float* src, size_t rows, size_t cols, float* dst, ThreadPool& pool) {
  constexpr size_t kBlock = 32;
  const size_t blocks = (cols + kBlock - 1) / kBlock;
  std::atomic<size_t> next{0};
  pool.Run(std::min(pool.size(), blocks), [&](size_t) {
    for (size_t block = next.fetch_add(1); block < blocks; block = next.fetch_add(1)) {
      const size_t c0 = block * kBlock, c1 = std::min(cols, c0 + kBlock);
      for (size_t r0 = 0; r0 < rows; r0 += kBlock) {
        const size_t r1 = std::min(rows, r0 + kBlock);
        for (size_t c = c0; c < c1; ++c) {
          for (size_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
        }
      }
    }
  });
}

void GemmSplitDepth(const GemmProblem& p, const Plan& plan, size_t parts, ThreadPool& pool) {
  const size_t pack_floats = plan.mc * plan.kc + plan.nc * plan.kc;
  const size_t c_floats = p.m * p.n;
  std::vector<float*> scratch(parts);
  for (size_t i = 0; i < parts; ++i) scratch[i] = pool.Scratch(i, pack_floats + (i == 0 ? 0 : c_floats));
  pool.Run(parts, [&](size_t index) {
    // Depth boundaries on whole KC blocks, so each part packs full blocks.
    const size_t blocks = (p.k + plan.kc - 1) / plan.kc;
    const size_t k0 = std::min(p.k, blocks * index / parts * plan.kc);
    const size_t k1 = index + 1 == parts ? p.k : std::min(p.k, blocks * (index + 1) / parts * plan.kc);
    GemmProblem part = p;
    part.k = k1 - k0;
    part.a = p.a + k0 * p.m;
    part.b = p.b + k0 * p.n;
    part.c = index == 0 ? p.c : scratch[index] + pack_floats;
    float* pack_a = scratch[index];
    RunTask(part, plan, Task{0, 0, p.m, 0, p.n}, pack_a, pack_a + plan.mc * plan.kc, nullptr);
  });
  pool.Run(parts, [&](size_t index) {
    const size_t r0 = p.m * index / parts, r1 = p.m * (index + 1) / parts;
    for (size_t i = 1; i < parts; ++i) {
      const float* partial = scratch[i] + pack_floats;
      for (size_t x = r0 * p.n; x < r1 * p.n; ++x) p.c[x] += partial[x];
    }
  });
}

}  // namespace

size_t PackedPanelsSize(size_t n, size_t k) { return (n + kPanelWidth - 1) / kPanelWidth * kPanelWidth * k; }

void PackPanels(const float* w, size_t n, size_t k, float* out) {
  const size_t panels = (n + kPanelWidth - 1) / kPanelWidth;
  for (size_t p = 0; p < panels; ++p) {
    float* panel = out + p * k * kPanelWidth;
    for (size_t j = 0; j < kPanelWidth; ++j) {
      const size_t row = p * kPanelWidth + j;
      if (row < n) {
        const float* src = w + row * k;
        for (size_t i = 0; i < k; ++i) panel[i * kPanelWidth + j] = src[i];
      } else {
        for (size_t i = 0; i < k; ++i) panel[i * kPanelWidth + j] = 0.0f;
      }
    }
  }
}

void GemmPacked(const float* a, const float* packed, float* c, size_t m, size_t n, size_t k, Isa isa, ThreadPool& pool) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::fill(c, c + m * n, 0.0f);
    return;
  }
  // Tasks are blocks of 4 panels (64 columns) over every row: a block's
  // panels (64 x k values) are read from memory once and then stay in cache
  // for each group of rows.
  constexpr size_t kBlockPanels = 4;
  const size_t panels = (n + kPanelWidth - 1) / kPanelWidth;
  const size_t blocks = (panels + kBlockPanels - 1) / kBlockPanels;
  const double flops = 2.0 * static_cast<double>(m) * n * k;
  const size_t participants = flops < kPackedParallelFlops ? 1 : std::min(pool.size(), blocks);
  std::atomic<size_t> next{0};
  pool.Run(participants, [&](size_t) {
    for (size_t block = next.fetch_add(1); block < blocks; block = next.fetch_add(1)) {
      const size_t p0 = block * kBlockPanels;
      const size_t p1 = std::min(panels, p0 + kBlockPanels);
      const size_t row_step = isa == Isa::kAvx2Fma ? avx2::kTileRows : kPackedRows;
      for (size_t r0 = 0; r0 < m; r0 += row_step) {
        const size_t rows = std::min(row_step, m - r0);
        const float* x = a + r0 * k;
        for (size_t p = p0; p < p1;) {
          const size_t col = p * kPanelWidth;
          float* out = c + r0 * n + col;
          const float* panel = packed + p * k * kPanelWidth;
#if CREAM_X86
          if (isa == Isa::kAvx512) {
            if (p + 2 <= p1) {
              PackedRowsAvx512<2>(x, panel, out, rows, k, n, std::min(2 * kPanelWidth, n - col));
              p += 2;
            } else {
              PackedRowsAvx512<1>(x, panel, out, rows, k, n, std::min(kPanelWidth, n - col));
              p += 1;
            }
            continue;
          }
          if (isa == Isa::kAvx2Fma) {
            avx2::Strip16<false>(x, k, 1, panel, kPanelWidth, out, n, rows, k, std::min(kPanelWidth, n - col), false);
            p += 1;
            continue;
          }
#endif
          PackedRowsGeneric(x, panel, out, rows, k, n, std::min(kPanelWidth, n - col));
          p += 1;
        }
      }
    }
  });
}

// Register-only FMA chains, enough of them to cover the FMA latency on
// every core here (4 or 5 cycles, 2 pipes): 2 x lanes x chains FLOPs per
// iteration. The values stay finite (x -> x * 0.999 + 0.001 tends to 1).
#if CREAM_X86
__attribute__((target("avx512f"), noinline)) float FmaChainsAvx512(size_t iterations) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 scale = _mm512_set1_ps(0.999f), shift = _mm512_set1_ps(0.001f);
  for (size_t t = 0; t < iterations; ++t) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], scale, shift);
  }
  float sum = 0.0f;
  for (int i = 0; i < 16; ++i) sum += _mm512_reduce_add_ps(acc[i]);
  return sum;
}

__attribute__((target("avx2,fma"), noinline)) float FmaChainsAvx2(size_t iterations) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 scale = _mm256_set1_ps(0.999f), shift = _mm256_set1_ps(0.001f);
  for (size_t t = 0; t < iterations; ++t) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], scale, shift);
  }
  alignas(32) float lanes[8];
  float sum = 0.0f;
  for (int i = 0; i < 12; ++i) {
    _mm256_store_ps(lanes, acc[i]);
    for (float x : lanes) sum += x;
  }
  return sum;
}
#endif

// The portable kernel's arithmetic: separate multiplies and adds over
// 32 lanes, which the compiler vectorizes for the baseline ISA.
__attribute__((noinline)) float MulAddChainsGeneric(size_t iterations) {
  float acc[32];
  for (int i = 0; i < 32; ++i) acc[i] = static_cast<float>(i);
  for (size_t t = 0; t < iterations; ++t) {
    for (int i = 0; i < 32; ++i) acc[i] = acc[i] * 0.999f + 0.001f;
  }
  float sum = 0.0f;
  for (float x : acc) sum += x;
  return sum;
}

double MeasurePeakGflops(Isa isa, ThreadPool& pool, double seconds) {
  double flops_per_iteration = 2.0 * 32;
  float (*chains)(size_t) = MulAddChainsGeneric;
#if CREAM_X86
  if (isa == Isa::kAvx512) {
    chains = FmaChainsAvx512;
    flops_per_iteration = 2.0 * 16 * 16;
  } else if (isa == Isa::kAvx2Fma) {
    chains = FmaChainsAvx2;
    flops_per_iteration = 2.0 * 12 * 8;
  }
#endif
  const size_t threads = pool.size();
  std::atomic<float> sink{0.0f};
  const auto pass = [&](size_t iterations) {
    const auto start = std::chrono::steady_clock::now();
    pool.Run(threads, [&](size_t) { sink.store(chains(iterations), std::memory_order_relaxed); });
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // Calibrate the iteration count to about `seconds` a pass, then take the best of three.
  size_t iterations = 1 << 16;
  double elapsed = pass(iterations);
  while (elapsed < seconds / 8 && iterations < (size_t{1} << 40)) {
    iterations *= 4;
    elapsed = pass(iterations);
  }
  iterations = static_cast<size_t>(static_cast<double>(iterations) * seconds / std::max(elapsed, 1e-9)) + 1;
  double best = 0.0;
  for (int i = 0; i < 3; ++i) {
    const double t = pass(iterations);
    best = std::max(best, static_cast<double>(threads) * static_cast<double>(iterations) * flops_per_iteration / t / 1e9);
  }
  return best;
}

Isa DetectIsa() {
#if CREAM_X86
  __builtin_cpu_init();
  // GCC's cpu model also checks XGETBV, so these say the OS saves the state.
  if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2Fma;
#endif
  return Isa::kGeneric;
}

bool IsaSupported(Isa isa) { return static_cast<int>(isa) <= static_cast<int>(DetectIsa()); }

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512f";
    case Isa::kAvx2Fma:
      return "avx2+fma";
    default:
      return "generic";
  }
}

void Gemm(const GemmProblem& problem, Isa isa, ThreadPool& pool) {
  GemmProblem p = problem;
  const size_t batch = std::max(p.batch_a, p.batch_b);
  if (batch == 0 || p.m == 0 || p.n == 0) return;
  size_t batches = batch;
  // A batched, untransposed A against one shared B is one tall GEMM: B is
  // packed once instead of once per batch item.
  if (p.batch_b == 1 && p.batch_a > 1 && !p.trans_a) {
    p.m *= p.batch_a;
    p.batch_a = 1;
    batches = 1;
  }
  if (p.trans_b && !p.trans_a && p.m <= kDirectBMaxRows && p.k > 0) {
    GemmRowsInPlace(p, batches, DotRowsFor(isa), pool);
    return;
  }
  if (!p.trans_b && !p.trans_a && p.m <= kAxpyMaxRows && p.k > 0) {
    GemmRowsInPlace(p, batches, AxpyRowsFor(isa), pool);
    return;
  }
  const Plan plan = PlanFor(isa);
  const double flops = 2.0 * static_cast<double>(batches) * p.m * p.n * p.k;
  const size_t threads = flops < kParallelFlops ? 1 : pool.size();
  if (batches == 1 && threads > 1 && p.trans_a && !p.trans_b && p.bias == nullptr &&
      p.activation == Activation::kLinear && p.k >= kDeepSplitRatio * std::max(p.m, p.n) && p.k >= threads * plan.kc) {
    if (p.m >= p.n) {
      GemmSplitDepth(p, plan, threads, pool);
      return;
    }
    // Wider than tall: C^T = B^T . A (the same two [k, .] operands, roles
    // swapped) has the narrower operand as its packed B, whose KC-deep block
    // then stays in L2 across the row blocks; C is its transpose.
    float* ct = pool.Scratch(pool.size(), p.m * p.n);
    GemmProblem q = p;
    q.a = p.b;
    q.b = p.a;
    q.m = p.n;
    q.n = p.m;
    q.c = ct;
    GemmSplitDepth(q, plan, threads, pool);
    TransposeInto(ct, p.n, p.m, p.c, pool);
    return;
  }

  // Two tasks per thread let the faster thread take up the slack.
  std::vector<Task> tasks;
  const size_t wanted = threads == 1 ? 1 : threads * 2;
  if (batches >= wanted) {
    tasks.reserve(batches);
    for (size_t i = 0; i < batches; ++i) tasks.push_back({i, 0, p.m, 0, p.n});
  } else {
    size_t parts = (wanted + batches - 1) / batches;
    // One product split by rows shares one packed op(B) (below), so a task
    // costs only its own rows' packing: tasks of about MC rows then let a
    // thread that falls behind (another process on its core) hand work over.
    if (batches == 1 && threads > 1 && p.m >= p.n) parts = std::max(parts, (p.m + plan.mc - 1) / plan.mc);
    for (size_t i = 0; i < batches; ++i) SplitBatch(i, p.m, p.n, parts, plan, tasks);
  }

  // Packing buffers are taken on this thread, before any worker runs, so an
  // allocation failure throws here and not inside a worker.
  const size_t pack_a_floats = plan.mc * plan.kc;
  const size_t pack_b_floats = plan.nc * plan.kc;
  const size_t participants = std::min(threads, tasks.size());
  std::vector<float*> scratch(participants);
  for (size_t i = 0; i < participants; ++i) scratch[i] = pool.Scratch(i, pack_a_floats + pack_b_floats);

  // One product split by rows: every task would pack the same op(B), so it
  // is packed once, shared (row splits are what SplitBatch makes when m >= n).
  float* packed_b = nullptr;
  const bool direct_b = !p.trans_b && p.m <= kDirectBMaxRows;
  const size_t shared_floats = RoundUp(p.n, plan.nr) * p.k;
  // One thread packs it whole too when the depth spans several KC blocks and
  // the rows several MC blocks: RunTask then keeps each block of C in cache
  // across the depth blocks.
  // The pre-packed blocks are laid out from column 0 (SharedBlockOffset), so
  // only tasks over whole rows of C may read them: a product split by
  // columns (wider than tall) packs its own B per task.
  const bool whole_rows = tasks.size() == 1 || p.m >= p.n;
  const bool shared_split = participants > 1 && tasks.size() > 1 && p.m >= p.n;
  const bool deep = p.k > plan.kc && p.m > plan.mc && shared_floats <= kMaxDeepPackedB;
  if (batches == 1 && whole_rows && (shared_split || deep) && !direct_b && p.k > 0 &&
      shared_floats <= kMaxSharedPackedB) {
    packed_b = pool.Scratch(pool.size(), shared_floats);
    PrePackB(p, plan, pool, participants, packed_b);
  }

  TaskShares shares(tasks.size(), participants);
  pool.Run(participants, [&](size_t index) {
    float* pack_a = scratch[index];
    float* pack_b = pack_a + pack_a_floats;
    size_t t;
    while (shares.Next(index, &t)) RunTask(p, plan, tasks[t], pack_a, pack_b, packed_b);
  });
}

}  // namespace cream
