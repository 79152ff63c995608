// The AVX2+FMA register tiles of the products that read an operand in place
// (gemm.cc's packed decoding weights, fused.cc's attention products): R <= 6
// rows of A against a strip of 16 columns of B, 12 ymm accumulators plus two B
// vectors and a broadcast in the 16 registers, the shape of gemm.cc's
// Kernel6x16Avx2; and R <= 4 rows against 24 columns (three B vectors), for a
// head width of 16 j + 8. Their depth loops are unrolled four times, as the
// GEMM's: the loop's own instructions cost about a tenth of a tile's time.
#ifndef CREAM_COMPUTE_TILE_AVX2_H_
#define CREAM_COMPUTE_TILE_AVX2_H_

#include <cstddef>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CREAM_TILE_AVX2 1
#include <immintrin.h>
#else
#define CREAM_TILE_AVX2 0
#endif

namespace cream {
namespace avx2 {

// Rows of A per tile: 6 x 2 accumulators, two B vectors and a broadcast fill
// the 16 ymm registers.
constexpr size_t kTileRows = 6;

#if CREAM_TILE_AVX2

// The first `count` (0 to 8) of 8 lanes, for maskload and maskstore.
__attribute__((target("avx2"))) inline __m256i LeadingLanes(size_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// dst[c * ldd + r] = src[r * lds + c] for r, c < 8: an 8 x 8 block
// transposed in registers (packing a transposed operand, whose scalar copy
// stores one float per instruction with a stride).
__attribute__((target("avx"), always_inline)) inline void Transpose8x8(const float* src, size_t lds, float* dst,
                                                                      size_t ldd) {
  __m256 r[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  __m256 t[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  __m256 u[8];
#pragma GCC unroll 2
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
  }
}

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: 8 x 8 blocks
// transposed in registers, the edges one float at a time.
__attribute__((target("avx"))) inline void TransposeRect(const float* src, size_t lds, float* dst, size_t ldd,
                                                         size_t rows, size_t cols) {
  size_t r = 0;
  for (; r + 8 <= rows; r += 8) {
    size_t c = 0;
    for (; c + 8 <= cols; c += 8) Transpose8x8(src + r * lds + c, lds, dst + c * ldd + r, ldd);
    for (; c < cols; ++c) {
      for (size_t i = r; i < r + 8; ++i) dst[c * ldd + i] = src[i * lds + c];
    }
  }
  for (; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
  }
}

// C[R, cols] (+)= A[R, k] . B[k, cols] for cols <= 16: A's element (r, i) at
// a[r * ars + i * aks] (a transposed A swaps the strides), B rows ldb apart,
// C rows ldc apart. kMaskedB reads B's row only up to cols (B ends there);
// without it all 16 columns of each B row are read (a padded B) and the
// products past cols dropped. C past cols is neither read nor written.
template <int R, bool kMaskedB>
__attribute__((target("avx2,fma"), always_inline)) inline void Tile16(const float* a, size_t ars, size_t aks,
                                                                     const float* b, size_t ldb, float* c, size_t ldc,
                                                                     size_t k, size_t cols, bool accumulate) {
  const __m256i mask0 = LeadingLanes(cols < 8 ? cols : 8);
  const __m256i mask1 = LeadingLanes(cols > 8 ? cols - 8 : 0);
  __m256 lo[R];
  __m256 hi[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    lo[r] = _mm256_setzero_ps();
    hi[r] = _mm256_setzero_ps();
  }
#pragma GCC unroll 4
  for (size_t i = 0; i < k; ++i) {
    const float* row = b + i * ldb;
    const __m256 b0 = kMaskedB ? _mm256_maskload_ps(row, mask0) : _mm256_loadu_ps(row);
    const __m256 b1 = kMaskedB ? _mm256_maskload_ps(row + 8, mask1) : _mm256_loadu_ps(row + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + r * ars + i * aks);
      lo[r] = _mm256_fmadd_ps(x, b0, lo[r]);
      hi[r] = _mm256_fmadd_ps(x, b1, hi[r]);
    }
  }
  const bool whole = cols >= 16;
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    float* out = c + r * ldc;
    if (whole) {
      if (accumulate) {
        lo[r] = _mm256_add_ps(lo[r], _mm256_loadu_ps(out));
        hi[r] = _mm256_add_ps(hi[r], _mm256_loadu_ps(out + 8));
      }
      _mm256_storeu_ps(out, lo[r]);
      _mm256_storeu_ps(out + 8, hi[r]);
    } else {
      if (accumulate) {
        lo[r] = _mm256_add_ps(lo[r], _mm256_maskload_ps(out, mask0));
        hi[r] = _mm256_add_ps(hi[r], _mm256_maskload_ps(out + 8, mask1));
      }
      _mm256_maskstore_ps(out, mask0, lo[r]);
      _mm256_maskstore_ps(out + 8, mask1, hi[r]);
    }
  }
}

// C[m, cols] (+)= A[m, k] . B[k, cols] for cols <= 16, in tiles of kTileRows.
template <bool kMaskedB>
__attribute__((target("avx2,fma"))) inline void Strip16(const float* a, size_t ars, size_t aks, const float* b,
                                                        size_t ldb, float* c, size_t ldc, size_t m, size_t k,
                                                        size_t cols, bool accumulate) {
  size_t r = 0;
  for (; r + kTileRows <= m; r += kTileRows) {
    Tile16<kTileRows, kMaskedB>(a + r * ars, ars, aks, b, ldb, c + r * ldc, ldc, k, cols, accumulate);
  }
  a += r * ars;
  c += r * ldc;
  switch (m - r) {
    case 5: return Tile16<5, kMaskedB>(a, ars, aks, b, ldb, c, ldc, k, cols, accumulate);
    case 4: return Tile16<4, kMaskedB>(a, ars, aks, b, ldb, c, ldc, k, cols, accumulate);
    case 3: return Tile16<3, kMaskedB>(a, ars, aks, b, ldb, c, ldc, k, cols, accumulate);
    case 2: return Tile16<2, kMaskedB>(a, ars, aks, b, ldb, c, ldc, k, cols, accumulate);
    case 1: return Tile16<1, kMaskedB>(a, ars, aks, b, ldb, c, ldc, k, cols, accumulate);
    default: return;
  }
}

// C[R, 24] (+)= A[R, k] . B[k, 24] for R <= 4: 12 ymm accumulators, three B
// vectors and a broadcast, A's element (r, i) at a[r * ars + i * aks]. For a
// head width of 16 j + 8 (40 here), a 24-wide strip and 16-wide ones cover it
// exactly, where 16-wide strips alone end in one half empty.
template <int R>
__attribute__((target("avx2,fma"), always_inline)) inline void Tile24(const float* a, size_t ars, size_t aks,
                                                                     const float* b, size_t ldb, float* c, size_t ldc,
                                                                     size_t k, bool accumulate) {
  __m256 acc[R][3];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    acc[r][0] = _mm256_setzero_ps();
    acc[r][1] = _mm256_setzero_ps();
    acc[r][2] = _mm256_setzero_ps();
  }
#pragma GCC unroll 4
  for (size_t i = 0; i < k; ++i) {
    const float* row = b + i * ldb;
    const __m256 b0 = _mm256_loadu_ps(row);
    const __m256 b1 = _mm256_loadu_ps(row + 8);
    const __m256 b2 = _mm256_loadu_ps(row + 16);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + r * ars + i * aks);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
      acc[r][2] = _mm256_fmadd_ps(x, b2, acc[r][2]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float* out = c + r * ldc;
#pragma GCC unroll 3
    for (int j = 0; j < 3; ++j) {
      if (accumulate) acc[r][j] = _mm256_add_ps(acc[r][j], _mm256_loadu_ps(out + 8 * j));
      _mm256_storeu_ps(out + 8 * j, acc[r][j]);
    }
  }
}

// C[m, 24] (+)= A[m, k] . B[k, 24], in tiles of 4 rows.
__attribute__((target("avx2,fma"))) inline void Strip24(const float* a, size_t ars, size_t aks, const float* b,
                                                        size_t ldb, float* c, size_t ldc, size_t m, size_t k,
                                                        bool accumulate) {
  size_t r = 0;
  for (; r + 4 <= m; r += 4) Tile24<4>(a + r * ars, ars, aks, b, ldb, c + r * ldc, ldc, k, accumulate);
  a += r * ars;
  c += r * ldc;
  switch (m - r) {
    case 3: return Tile24<3>(a, ars, aks, b, ldb, c, ldc, k, accumulate);
    case 2: return Tile24<2>(a, ars, aks, b, ldb, c, ldc, k, accumulate);
    case 1: return Tile24<1>(a, ars, aks, b, ldb, c, ldc, k, accumulate);
    default: return;
  }
}

#endif  // CREAM_TILE_AVX2

}  // namespace avx2
}  // namespace cream

#endif  // CREAM_COMPUTE_TILE_AVX2_H_
