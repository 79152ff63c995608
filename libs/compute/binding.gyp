# node-gyp build of the native fp32 GEMM addon. One binary serves every x86-64
# CPU: the AVX-512 and AVX2+FMA kernels carry target attributes in the source and
# are chosen at run time by CPUID, so no -march flag here.
{
  "targets": [
    {
      "target_name": "cream_compute",
      "sources": ["native/addon.cc", "native/fused.cc", "native/gemm.cc", "native/thread-pool.cc"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fno-trapping-math", "-fexceptions"],
      "cflags": ["-O3"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
