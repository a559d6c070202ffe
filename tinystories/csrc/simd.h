/* Vectors for the CPU kernels, header only: every function is static inline, so each file that includes it gets its own
   copy, compiled for that file's target. W is the lanes of one vector: 16 floats where the build targets AVX-512, else 8
   (AVX2, or two SSE/NEON registers: the compiler splits what the target cannot hold in one). GCC/Clang vector extensions
   keep one source for every target; no intrinsics. */
#ifndef TINYSTORIES_SIMD_H
#define TINYSTORIES_SIMD_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __AVX512F__
#define W 16
#else
#define W 8
#endif
typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));
typedef float v4 __attribute__((vector_size(16)));

static inline vf load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf splat(float x) { return x - (vf){}; }
static inline vf pick(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }  /* a where m, else b */
static inline float hsum(vf v) {  /* halves added until four lanes are left */
    char *p = (char *)&v;
    for (int n = sizeof v / 2; n >= 16; n /= 2)
        for (int i = 0; i < n; i += 16) { v4 a, b; memcpy(&a, p + i, 16); memcpy(&b, p + n + i, 16); a += b; memcpy(p + i, &a, 16); }
    v4 a; memcpy(&a, p, 16);
    return (a[0] + a[2]) + (a[1] + a[3]);
}

/* 2^x for x <= 0: x = n + r with n an integer and |r| <= 1/2; 2^r by a polynomial of degree 6 (least-squares fit, within
   1e-7 relative on [-1/2, 1/2]), 2^n written straight into the exponent bits. Below -126, 2^-126: nothing beside a row
   sum of at least 1e-10. */
static inline vf vexp2(vf x) {
    x = pick(x < splat(-126.0f), splat(-126.0f), x);
    const vf magic = splat(12582912.0f);  /* 1.5 * 2^23: adding it rounds to an integer, which then sits in the low bits */
    vf t = x + magic, r = x - (t - magic);
    vf p = splat(1.5353362e-4f);
    p = p * r + splat(1.3398875e-3f);
    p = p * r + splat(9.6184369e-3f);
    p = p * r + splat(5.5503324e-2f);
    p = p * r + splat(2.4022648e-1f);
    p = p * r + splat(6.9314718e-1f);
    p = p * r + splat(1.0f);
    vi e = ((vi)t + (127 - 0x4B400000)) << 23;
    return p * (vf)e;
}

/* bf16 is the top half of a float32: widening is a shift */
static inline float from_bf16(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t to_bf16(float f) {  /* to nearest, ties to even, as torch rounds */
    uint32_t u; memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

#endif
