// The AVX2+FMA register tile of the products that read an operand in place
// (gemm.cc's packed decoding weights, fused.cc's attention products), over V
// vectors of 8 columns: R <= 6 rows of A against a strip of 16 columns of B
// (V = 2: 12 ymm accumulators plus two B vectors and a broadcast in the 16
// registers, the shape of gemm.cc's Kernel6x16Avx2), or R <= 4 rows against
// 24 columns (V = 3) for a head width of 16 j + 8.
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

// The lanes of vector v (8 floats) of a row `cols` floats wide.
__attribute__((target("avx2"))) inline __m256i VectorLanes(size_t cols, int v) {
  const size_t begin = static_cast<size_t>(v) * 8;
  return LeadingLanes(cols > begin ? (cols - begin < 8 ? cols - begin : 8) : 0);
}

// C[R, cols] (+)= A[R, k] . B[k, cols] for cols <= 8 V: R x V accumulators, V
// B vectors and a broadcast (12 + V + 1 of the 16 registers at R = 12 / V).
// A's element (r, i) at a[r * ars + i * aks] (a transposed A swaps the
// strides), B rows ldb apart, C rows ldc apart. kMaskedB reads B's row only
// up to cols (B ends there); without it all 8 V columns of each B row are
// read (a padded B) and the products past cols dropped. C past cols is
// neither read nor written. The depth loop is unrolled four times, as the
// GEMM's: the loop's own instructions cost about a tenth of a tile's time.
template <int R, int V, bool kMaskedB>
__attribute__((target("avx2,fma"), always_inline)) inline void TileVectors(const float* a, size_t ars, size_t aks,
                                                                          const float* b, size_t ldb, float* c,
                                                                          size_t ldc, size_t k, size_t cols,
                                                                          bool accumulate) {
  __m256i load_mask[V];
#pragma GCC unroll 3
  for (int v = 0; v < V; ++v) load_mask[v] = kMaskedB ? VectorLanes(cols, v) : _mm256_setzero_si256();
  __m256 acc[R][V];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_ps();
  }
#pragma GCC unroll 4
  for (size_t i = 0; i < k; ++i) {
    const float* row = b + i * ldb;
    __m256 bv[V];
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) bv[v] = kMaskedB ? _mm256_maskload_ps(row + 8 * v, load_mask[v]) : _mm256_loadu_ps(row + 8 * v);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + r * ars + i * aks);
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(x, bv[v], acc[r][v]);
    }
  }
  const bool whole = cols >= static_cast<size_t>(8 * V);
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    float* out = c + r * ldc;
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) {
      if (whole) {
        if (accumulate) acc[r][v] = _mm256_add_ps(acc[r][v], _mm256_loadu_ps(out + 8 * v));
        _mm256_storeu_ps(out + 8 * v, acc[r][v]);
      } else {
        const __m256i lanes = VectorLanes(cols, v);
        if (accumulate) acc[r][v] = _mm256_add_ps(acc[r][v], _mm256_maskload_ps(out + 8 * v, lanes));
        _mm256_maskstore_ps(out + 8 * v, lanes, acc[r][v]);
      }
    }
  }
}

// The last m rows (0 <= m <= R) of a strip, one tile of exactly m rows.
template <int R, int V, bool kMaskedB>
__attribute__((target("avx2,fma"), always_inline)) inline void RemainderTile(size_t m, const float* a, size_t ars,
                                                                            size_t aks, const float* b, size_t ldb,
                                                                            float* c, size_t ldc, size_t k, size_t cols,
                                                                            bool accumulate) {
  if constexpr (R > 0) {
    if (m == R) return TileVectors<R, V, kMaskedB>(a, ars, aks, b, ldb, c, ldc, k, cols, accumulate);
    RemainderTile<R - 1, V, kMaskedB>(m, a, ars, aks, b, ldb, c, ldc, k, cols, accumulate);
  }
}

// C[m, cols] (+)= A[m, k] . B[k, cols] for cols <= 8 V, in tiles of 12 / V
// rows (12 accumulators: 6 rows of 16 columns, 4 of 24).
template <int V, bool kMaskedB>
__attribute__((target("avx2,fma"))) inline void StripVectors(const float* a, size_t ars, size_t aks, const float* b,
                                                             size_t ldb, float* c, size_t ldc, size_t m, size_t k,
                                                             size_t cols, bool accumulate) {
  constexpr int kRows = 12 / V;
  size_t r = 0;
  for (; r + kRows <= m; r += kRows) {
    TileVectors<kRows, V, kMaskedB>(a + r * ars, ars, aks, b, ldb, c + r * ldc, ldc, k, cols, accumulate);
  }
  RemainderTile<kRows - 1, V, kMaskedB>(m - r, a + r * ars, ars, aks, b, ldb, c + r * ldc, ldc, k, cols, accumulate);
}

// C[m, cols] (+)= A[m, k] . B[k, cols] for cols <= 16, in tiles of kTileRows.
template <bool kMaskedB>
__attribute__((target("avx2,fma"))) inline void Strip16(const float* a, size_t ars, size_t aks, const float* b,
                                                        size_t ldb, float* c, size_t ldc, size_t m, size_t k,
                                                        size_t cols, bool accumulate) {
  static_assert(12 / 2 == kTileRows, "16-column tiles are kTileRows high");
  StripVectors<2, kMaskedB>(a, ars, aks, b, ldb, c, ldc, m, k, cols, accumulate);
}

// C[m, 24] (+)= A[m, k] . B[k, 24], in tiles of 4 rows: for a head width of
// 16 j + 8 (40 here), a 24-wide strip and 16-wide ones cover it exactly,
// where 16-wide strips alone end in one half empty.
__attribute__((target("avx2,fma"))) inline void Strip24(const float* a, size_t ars, size_t aks, const float* b,
                                                        size_t ldb, float* c, size_t ldc, size_t m, size_t k,
                                                        bool accumulate) {
  StripVectors<3, false>(a, ars, aks, b, ldb, c, ldc, m, k, 24, accumulate);
}

#endif  // CREAM_TILE_AVX2

}  // namespace avx2
}  // namespace cream

#endif  // CREAM_COMPUTE_TILE_AVX2_H_
