// The AVX-512 level's functions (Isa::avx512: AVX2 + FMA + F16C with AVX-512 F/BW/VL and VNNI).
// Files named *_x86_avx512.cc are compiled with the AVX2 flags like the other x86 files, and only
// their AVX-512 functions carry this target attribute: had a whole file been built with
// -mavx512*, an inline function it instantiates from a shared header (std::, the kernel tables'
// helpers) could be emitted as an AVX-512 copy that the linker then hands to code running on a
// CPU without AVX-512.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define TF_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#else
#define TF_AVX512
#endif

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized and
// -Wuninitialized report at every use in a target-attributed function.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
