/*
 * hetee/ring.h — the ring layer: modular arithmetic, prime generation, the
 * negacyclic NTT over Z_q[X]/(X^N+1) (scalar reference + AVX2 + AVX-512/IFMA,
 * picked once at run time), vector operations on residue polynomials, and
 * sampling from a seeded PRG.
 *
 * Representation. A polynomial modulo one prime q is an array of N uint64_t
 * coefficients. An RNS polynomial is k such rows stored back to back
 * (row i is modulo prime i). Unless a function says it is "lazy", inputs and
 * outputs are fully reduced to [0, q).
 *
 * Limits: N = 2^logN with 1 <= logN <= 17 (CKKS uses 12..16); every prime
 * q < 2^61 and q = 1 mod 2N.
 *
 * Thread-safety: tables are immutable after creation and may be shared by
 * threads; functions writing a buffer need exclusive access to that buffer.
 */
#ifndef HETEE_RING_H
#define HETEE_RING_H

#include "hetee/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HETEE_RING_MAX_LOGN 17
#define HETEE_RING_MAX_PRIME_BITS 61

/* ---------------------------------------------------------------------------
 * One prime modulus with its reduction constants.
 * ------------------------------------------------------------------------- */
typedef struct hetee_modulus {
  uint64_t q;          /* the prime, < 2^61 */
  int bits;            /* bit length of q */
  uint64_t barrett_lo; /* floor(2^128 / q), low 64 bits  */
  uint64_t barrett_hi; /* floor(2^128 / q), high 64 bits */
} hetee_modulus;

/* Fills m for prime q (q odd, 2 <= q < 2^61). Returns HETEE_ERR_INVALID_ARG
 * otherwise. */
HETEE_API int hetee_modulus_init(hetee_modulus *m, uint64_t q);

/* x - q if x >= q else x, for x < 2q <= 2^62; branch-free: the sign bit of
 * x - q (read as signed) selects whether q is added back. */
static inline uint64_t hetee_mod_csub(uint64_t x, uint64_t q) {
  uint64_t t = x - q;
  return t + (q & (uint64_t)((int64_t)t >> 63));
}
/* a + b mod q, inputs in [0, q). */
static inline uint64_t hetee_mod_add(uint64_t a, uint64_t b, uint64_t q) {
  return hetee_mod_csub(a + b, q);
}
/* a - b mod q, inputs in [0, q). */
static inline uint64_t hetee_mod_sub(uint64_t a, uint64_t b, uint64_t q) {
  uint64_t d = a - b;
  uint64_t mask = (uint64_t)0 - (uint64_t)(a < b);
  return d + (q & mask);
}
/* Reduces a 128-bit value x < q * 2^64 modulo q (Barrett, constant time). */
static inline uint64_t hetee_mod_reduce128(unsigned __int128 x, const hetee_modulus *m) {
  uint64_t xlo = (uint64_t)x, xhi = (uint64_t)(x >> 64);
  /* quotient estimate = floor(x * floor(2^128/q) / 2^128) */
  unsigned __int128 t1 = (unsigned __int128)xlo * m->barrett_hi;
  unsigned __int128 t2 = (unsigned __int128)xhi * m->barrett_lo;
  unsigned __int128 t3 = ((unsigned __int128)xlo * m->barrett_lo) >> 64;
  unsigned __int128 mid = (t1 >> 0) + t2 + t3; /* no overflow: inputs bounded */
  uint64_t qest = (uint64_t)(mid >> 64) + xhi * m->barrett_hi;
  /* qest is floor(x/q) or one less (floor(2^128/q) misses by < 1 and
   * x < q * 2^64), so r is in [0, 2q) */
  uint64_t r = xlo - qest * m->q;
  return hetee_mod_csub(r, m->q);
}
/* a * b mod q, inputs in [0, q). */
static inline uint64_t hetee_mod_mul(uint64_t a, uint64_t b, const hetee_modulus *m) {
  return hetee_mod_reduce128((unsigned __int128)a * b, m);
}
/* Reduces any 64-bit value modulo q. */
static inline uint64_t hetee_mod_reduce64(uint64_t a, const hetee_modulus *m) {
  return hetee_mod_reduce128((unsigned __int128)a, m);
}
/* Shoup precomputation for a constant w in [0, q): floor(w * 2^64 / q). */
static inline uint64_t hetee_shoup_prep(uint64_t w, uint64_t q) {
  return (uint64_t)(((unsigned __int128)w << 64) / q);
}
/* a * w mod q using w' = hetee_shoup_prep(w, q); a any 64-bit value,
 * result in [0, q). */
static inline uint64_t hetee_mod_mul_shoup(uint64_t a, uint64_t w, uint64_t wp, uint64_t q) {
  uint64_t hi = (uint64_t)(((unsigned __int128)a * wp) >> 64);
  return hetee_mod_csub(a * w - hi * q, q);
}
/* Lazy variant: result in [0, 2q). */
static inline uint64_t hetee_mod_mul_shoup_lazy(uint64_t a, uint64_t w, uint64_t wp, uint64_t q) {
  uint64_t hi = (uint64_t)(((unsigned __int128)a * wp) >> 64);
  return a * w - hi * q;
}

/* a^e mod q (not constant time in e: for public exponents only). */
HETEE_API uint64_t hetee_mod_pow(uint64_t a, uint64_t e, const hetee_modulus *m);
/* a^-1 mod q for prime q and a != 0 mod q; returns 0 if a == 0 mod q. */
HETEE_API uint64_t hetee_mod_inv(uint64_t a, const hetee_modulus *m);

/* ---------------------------------------------------------------------------
 * Primes.
 * ------------------------------------------------------------------------- */

/* Deterministic Miller–Rabin (exact for all 64-bit inputs). */
HETEE_API int hetee_is_prime(uint64_t n);

/* Generates `count` NTT-friendly primes: for each requested size bits[i]
 * (20 <= bits[i] <= 61) the largest primes q < 2^bits[i] with q = 1 mod 2N,
 * scanning downward, distinct from one another and from exclude[0..nexclude).
 * Deterministic: the same arguments always give the same primes, in the
 * order of `bits`. Returns HETEE_ERR_PARAMS if a size is out of range or
 * not enough primes of that size exist. */
HETEE_API int hetee_primes_generate(int logn, const int *bits, size_t count,
                                    const uint64_t *exclude, size_t nexclude,
                                    uint64_t *out) HETEE_WUR;

/* A primitive 2N-th root of unity mod q (the smallest one, deterministic).
 * Returns HETEE_ERR_PARAMS if q != 1 mod 2N. */
HETEE_API int hetee_primitive_root_2n(uint64_t q, int logn, uint64_t *out) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * NTT. Negacyclic: the forward transform evaluates a(X) at the odd powers of
 * a primitive 2N-th root psi, output in bit-reversed order (the order is
 * internal and consistent between variants; pointwise products of two
 * forward transforms invert to the negacyclic product).
 * ------------------------------------------------------------------------- */
typedef struct hetee_ntt_tables hetee_ntt_tables; /* opaque, immutable */

HETEE_API int hetee_ntt_tables_new(int logn, uint64_t q, hetee_ntt_tables **out) HETEE_WUR;
HETEE_API void hetee_ntt_tables_free(hetee_ntt_tables *t);
HETEE_API size_t hetee_ntt_tables_n(const hetee_ntt_tables *t);
HETEE_API const hetee_modulus *hetee_ntt_tables_modulus(const hetee_ntt_tables *t);

/* In-place forward NTT. Input in [0, q) (coefficients), output in [0, q). */
HETEE_API void hetee_ntt_forward(const hetee_ntt_tables *t, uint64_t *a);
/* In-place inverse NTT, including the 1/N factor. Input/output in [0, q). */
HETEE_API void hetee_ntt_inverse(const hetee_ntt_tables *t, uint64_t *a);
/* out = inverse NTT of in, plus the constant s in [0, q) added to every
 * coefficient, in one pass (the copy and the addition are fused into the
 * transform's first and last stages). in may equal out (in place) but must
 * not partially overlap it. Output in [0, q), bit-identical to
 * copy + hetee_ntt_inverse + hetee_vec_add_scalar. */
HETEE_API void hetee_ntt_inverse_add(const hetee_ntt_tables *t, const uint64_t *in, uint64_t *out, uint64_t s);

/* The reference (scalar) transforms, always built; SIMD variants are tested
 * bit for bit against these. */
HETEE_API void hetee_ntt_forward_ref(const hetee_ntt_tables *t, uint64_t *a);
HETEE_API void hetee_ntt_inverse_ref(const hetee_ntt_tables *t, uint64_t *a);

/* ISA variants. The picker runs once (first table creation or first call)
 * from CPUID; HETEE_ISA=ref|avx2|avx512 pins one (an unavailable choice
 * falls back to the best available, with a warning on stderr) and
 * HETEE_ISA_LOG=1 prints the choice to stderr. */
typedef enum hetee_isa {
  HETEE_ISA_REF = 0,
  HETEE_ISA_AVX2 = 1,
  HETEE_ISA_AVX512 = 2 /* AVX-512F/DQ/VL, with IFMA52 when present */
} hetee_isa;
/* ISA the dispatching functions use. */
HETEE_API hetee_isa hetee_ring_isa(void);
/* Name of a variant: "ref", "avx2", "avx512", "avx512ifma". */
HETEE_API const char *hetee_ring_isa_name(void);
/* Whether this CPU (and build) can run variant `isa`. */
HETEE_API int hetee_ring_isa_supported(hetee_isa isa);
/* Runs one specific variant (for tests/benchmarks); returns
 * HETEE_ERR_UNSUPPORTED if the CPU lacks it. */
HETEE_API int hetee_ntt_forward_isa(hetee_isa isa, const hetee_ntt_tables *t, uint64_t *a);
HETEE_API int hetee_ntt_inverse_isa(hetee_isa isa, const hetee_ntt_tables *t, uint64_t *a);

/* ---------------------------------------------------------------------------
 * Vector operations on one residue row of length n modulo m->q. Inputs in
 * [0, q) unless stated; outputs in [0, q). The output may alias any input.
 * Dispatch to SIMD variants when available.
 * ------------------------------------------------------------------------- */
HETEE_API void hetee_vec_add(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
HETEE_API void hetee_vec_sub(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
HETEE_API void hetee_vec_neg(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n);
/* c = a * b (pointwise). */
HETEE_API void hetee_vec_mul(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
/* c = c + a * b (pointwise). */
HETEE_API void hetee_vec_muladd(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n);
/* c = a * s for a scalar s in [0, q). */
HETEE_API void hetee_vec_mul_scalar(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
/* c = a + s for a scalar s in [0, q). */
HETEE_API void hetee_vec_add_scalar(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c, size_t n);
/* c = a mod q for arbitrary 64-bit inputs a (e.g. residues of another prime). */
HETEE_API void hetee_vec_reduce(const hetee_modulus *m, const uint64_t *a, uint64_t *c, size_t n);
/* c = (a mod q) + s mod q for arbitrary 64-bit a and s in [0, q) (basis
 * conversion of another prime's residues plus a constant, one pass). */
HETEE_API void hetee_vec_reduce_add_scalar(const hetee_modulus *m, const uint64_t *a, uint64_t s, uint64_t *c,
                                           size_t n);
/* c = (a - b) * s + base mod q (base may be NULL: c = (a - b) * s), for a
 * scalar s in [0, q): the last step of a rescale / ModDown in one pass.
 * c may alias a, b or base. */
HETEE_API void hetee_vec_sub_mul_scalar_add(const hetee_modulus *m, const uint64_t *a, const uint64_t *b, uint64_t s,
                                            const uint64_t *base, uint64_t *c, size_t n);
/* Inner product of k row pairs: c[i] = sum_{j<k} a[j][i] * b[j][i] mod q,
 * with products summed unreduced and reduced once per few terms (the key
 * switching inner product). c may alias a[j] or b[j] (each index is read
 * before it is written). */
HETEE_API void hetee_vec_dot(const hetee_modulus *m, const uint64_t *const *a, const uint64_t *const *b, size_t k,
                             uint64_t *c, size_t n);
/* Two inner products sharing the left rows (one pass over a), the left rows
 * optionally read through a permutation (perm NULL: identity):
 * c0[i] = sum_j a[j][p(i)] * b0[j][i], c1[i] = sum_j a[j][p(i)] * b1[j][i]
 * mod q with p(i) = perm[i] (< n). c0 and c1 must be distinct; they may
 * alias rows of b0/b1, and rows of a only when perm is NULL. */
HETEE_API void hetee_vec_dot2(const hetee_modulus *m, const uint64_t *const *a, const uint32_t *perm,
                              const uint64_t *const *b0, const uint64_t *const *b1, size_t k, uint64_t *c0,
                              uint64_t *c1, size_t n);
/* Degree-2 product of (a0, a1) and (b0, b1): c0 = a0 b0, c1 = a0 b1 + a1 b0,
 * c2 = a1 b1 (pointwise); with acc != 0 the products are added to the
 * previous c0, c1, c2 (in [0, q)). One reduction per output coefficient.
 * The c's may alias the a's and b's (each index is read before written),
 * but must be distinct from one another. */
HETEE_API void hetee_vec_tensor2(const hetee_modulus *m, const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                                 const uint64_t *b1, uint64_t *c0, uint64_t *c1, uint64_t *c2, size_t n, int acc);

/* Applies the Galois automorphism X -> X^g (g odd, in [1, 2N)) to a
 * polynomial in NTT form (bit-reversed evaluation order as produced by
 * hetee_ntt_forward): out[i] = in[perm[i]]. out must not alias in. */
HETEE_API int hetee_galois_perm_ntt(int logn, uint64_t g, uint32_t *perm);
HETEE_API void hetee_vec_permute(const uint32_t *perm, const uint64_t *in, uint64_t *out, size_t n);
/* Same automorphism on coefficient form: coefficient j goes to j*g mod 2N,
 * negated when j*g mod 2N >= N. out must not alias in. */
HETEE_API void hetee_galois_apply_coeff(const hetee_modulus *m, int logn, uint64_t g, const uint64_t *in, uint64_t *out);

/* ---------------------------------------------------------------------------
 * PRG and samplers. The PRG is ChaCha20 (libsodium crypto_stream_chacha20)
 * keyed by a 32-byte seed, with a 64-bit domain separator as nonce, so a
 * (seed, domain) pair always expands to the same stream: seeded ciphertexts
 * and keys store only the seed.
 * ------------------------------------------------------------------------- */
#define HETEE_SEED_BYTES 32

typedef struct hetee_prg {
  uint8_t key[HETEE_SEED_BYTES];
  uint8_t nonce[8];
  uint64_t block;     /* next 64-byte block counter */
  uint8_t buf[4096];  /* buffered keystream */
  size_t pos, len;
} hetee_prg;

/* Fills seed with OS entropy (libsodium randombytes_buf). Returns
 * HETEE_ERR_CRYPTO if libsodium cannot be initialised. */
HETEE_API int hetee_seed_random(uint8_t seed[HETEE_SEED_BYTES]) HETEE_WUR;
/* Starts the stream of (seed, domain): byte i of the stream is byte i of
 * crypto_stream_chacha20(key = seed, nonce = little-endian domain). */
HETEE_API void hetee_prg_init(hetee_prg *p, const uint8_t seed[HETEE_SEED_BYTES], uint64_t domain);
/* Next len bytes of the stream (any read sizes give the same bytes). */
HETEE_API void hetee_prg_bytes(hetee_prg *p, void *out, size_t len);
/* Wipes the PRG state (sodium_memzero). */
HETEE_API void hetee_prg_wipe(hetee_prg *p);

/* Uniform residues in [0, q) by rejection sampling on ceil(log2 q)-bit words
 * (no modulo bias): each candidate is the next ceil(bitlen(q) / 8) stream
 * bytes read as a little-endian word, masked to bitlen(q) bits, kept if < q
 * (5 bytes for a 40-bit prime, 8 for a 60-bit one). This is a wire
 * format (seeded objects store only the seed): docs/ring.md, tests/ring/
 * test_prg.c. The rejection only depends on public random bits. */
HETEE_API void hetee_sample_uniform(hetee_prg *p, const hetee_modulus *m, uint64_t *out, size_t n);

/* Secret-distribution samplers write SIGNED small integers as int8_t; the
 * caller maps them to every prime with hetee_vec_from_small (branch-free). */
/* Uniform ternary {-1, 0, 1}, each with probability 1/3 (one stream byte x
 * per try, x = 255 rejected, output x mod 3 - 1). Branch-free in the output
 * value. */
HETEE_API void hetee_sample_ternary(hetee_prg *p, int8_t *out, size_t n);
/* Centered binomial distribution with k = 21 (sum of 21 coin differences):
 * variance 10.5, sigma ~= 3.24, support [-21, 21]. Six stream bytes per
 * output (little-endian 48-bit w: popcount of bits 0..20 minus popcount of
 * bits 21..41). Branch-free (table-free popcount). */
HETEE_API void hetee_sample_cbd(hetee_prg *p, int8_t *out, size_t n);
#define HETEE_CBD_K 21
/* out[i] = v[i] mod q (v[i] signed, |v[i]| < q), branch-free. */
HETEE_API void hetee_vec_from_small(const hetee_modulus *m, const int8_t *v, uint64_t *out, size_t n);

/* ---------------------------------------------------------------------------
 * Aligned allocation for coefficient buffers (64-byte aligned, zeroed).
 * hetee_free_secure wipes `bytes` bytes before freeing.
 * ------------------------------------------------------------------------- */
HETEE_API void *hetee_alloc(size_t bytes);
HETEE_API void hetee_free(void *p);
HETEE_API void hetee_free_secure(void *p, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
