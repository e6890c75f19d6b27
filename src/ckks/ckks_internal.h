/*
 * ckks_internal.h — the CKKS layer's private structures: the checked context
 * (one hetee_modulus + NTT table per prime, rescale / key-switching / encoder
 * constants), keys, plaintexts and ciphertexts, and the helpers shared by the
 * files of src/ckks (keyswitch.c, encoder.c, eval*.c, serialize.c).
 *
 * Layout conventions (see docs/ckks.md):
 *  - The full prime chain is q_0..q_{nq-1}, p_0..p_{np-1}; global prime index
 *    i < nq is q_i, nq + k is p_k.
 *  - An object at level l stores l+1 rows of N residues (primes q_0..q_l),
 *    always in NTT form (bit-reversed evaluation order of the ring layer).
 *  - Key-switching keys store all nq+np rows per polynomial; at level l only
 *    rows 0..l and nq..nq+np-1 are used.
 *  - "Extended" buffers of the key switch at level l hold l+1+np rows: rows
 *    0..l are q_0..q_l, rows l+1.. are p_0..p_{np-1} (ext_prime()).
 */
#ifndef HETEE_CKKS_INTERNAL_H
#define HETEE_CKKS_INTERNAL_H

#include <complex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hetee/ckks.h"
#include "hetee/ring.h"

#define CKKS_MAX_PRIMES (HETEE_CKKS_MAX_Q + HETEE_CKKS_MAX_P)

/* Basis-extension constants of one key-switching digit at one level:
 * the digit holds primes first..first+count-1 (global indices) and
 * D = prod of them. For x given by its residues x_i (i in the digit),
 * y_i = x_i * (D/q_i)^-1 mod q_i, and x ~ sum_i y_i * (D/q_i) modulo any
 * other prime t (fast base conversion, error a small multiple of D). */
typedef struct ckks_digit {
  int first, count;
  uint64_t hat_inv[HETEE_CKKS_MAX_P];       /* (D/q_i)^-1 mod q_i */
  uint64_t hat_inv_shoup[HETEE_CKKS_MAX_P];
  uint64_t *hat_mod;                        /* [count][nt]: (D/q_i) mod prime t */
  /* Centered digits: floor(D/2) is added before the conversion and
   * subtracted after, so the extended value lies in (-D/2, D/2) instead of
   * [0, D) (a non-centered digit has a mean that turns into a smooth,
   * low-frequency error concentrated in a few slots). */
  uint64_t hd_src[HETEE_CKKS_MAX_P];        /* floor(D/2) mod q_(first+a) */
  uint64_t *hd_mod;                         /* [nt]: floor(D/2) mod prime t */
  uint64_t *d_mod;                          /* [nt]: D mod prime t (exact conversion) */
} ckks_digit;

typedef struct ckks_level_ks {
  int ndigits;
  ckks_digit *digits; /* [ndigits] */
} ckks_level_ks;

struct hetee_ckks_context {
  hetee_ckks_literal lit;
  int log_n;
  size_t n;
  int nq, np, nt;                /* nt = nq + np */
  int alpha;                     /* primes per digit = np */
  int dnum;                      /* digits at the top level */
  double default_scale;
  hetee_modulus mod[CKKS_MAX_PRIMES];
  hetee_ntt_tables *ntt[CKKS_MAX_PRIMES];
  uint8_t fingerprint[HETEE_CKKS_FINGERPRINT_BYTES];

  /* Rescale: rs_inv[l][i] = q_l^-1 mod q_i (i < l), with Shoup constants;
   * rs_half_mod[l][i] = floor(q_l/2) mod q_i. Row l has l entries. */
  uint64_t **rs_inv, **rs_inv_shoup, **rs_half_mod;

  /* Key switching: per level basis extension of each digit, and ModDown
   * constants: phat_inv[k] = (P/p_k)^-1 mod p_k, phat_mod[k][i] = (P/p_k)
   * mod q_i, pinv[i] = P^-1 mod q_i, pmod[i] = P mod q_i. */
  ckks_level_ks *ks;             /* [nq] */
  uint64_t phat_inv[HETEE_CKKS_MAX_P], phat_inv_shoup[HETEE_CKKS_MAX_P];
  uint64_t *phat_mod;            /* [np][nq] */
  uint64_t pinv[HETEE_CKKS_MAX_Q], pinv_shoup[HETEE_CKKS_MAX_Q];
  uint64_t pmod[HETEE_CKKS_MAX_Q];
  /* Rounding ModDown: floor(P/2) mod p_k and mod q_i (the remainder mod P
   * is taken centered, so ModDown rounds instead of flooring). */
  uint64_t hp_p[HETEE_CKKS_MAX_P], hp_q[HETEE_CKKS_MAX_Q];


  /* Encoder: M = 2N, zeta = exp(2 pi i / M); rot5[j] = 5^j mod M for
   * j < N/2; fft_tw[h + j] (h = 1, 2, 4, .., N/4; j < h) =
   * zeta^((5^j mod 8h) * M / 8h), the twiddles of the butterfly stage of
   * half-length h (stage length 2h, CKKS special FFT). */
  uint64_t *rot5;
  double complex *fft_tw;
  uint32_t *bitrev;              /* bit reversal permutation of N/2 */
};

struct hetee_ckks_secret_key {
  uint8_t fp[HETEE_CKKS_FINGERPRINT_BYTES];
  size_t n;
  int nt;
  int8_t *small;   /* N ternary coefficients */
  uint64_t *s;     /* nt rows, NTT form */
  /* derived rows, made on first use by decryption / secret-key encryption
   * (encrypt.c, ckks_sk_derived): CKKS_SKD_TABLES tables of nt rows, NTT
   * form, locked like s; NULL until then */
  uint64_t *_Atomic derived;
};

struct hetee_ckks_public_key {
  uint8_t fp[HETEE_CKKS_FINGERPRINT_BYTES];
  uint8_t seed[HETEE_SEED_BYTES]; /* a = expand(seed), all nt rows */
  uint64_t *b;     /* nt rows (Q and P): -a s + e */
  uint64_t *a;     /* nt rows */
};

/* One key-switching key from s' to s: for digit j,
 * b_j = -a_j s + e_j + P * g_j * s' over all nt primes, a_j = expand(seed, j). */
typedef struct ckks_ksk {
  uint64_t galois;  /* 0 for the relinearization key */
  uint8_t seed[HETEE_SEED_BYTES];
  int dnum;
  uint64_t **b;     /* [dnum] nt rows */
  uint64_t **a;     /* [dnum] nt rows */
  uint32_t *perm;   /* Galois keys: NTT-domain permutation of X -> X^galois */
} ckks_ksk;

struct hetee_ckks_relin_key {
  uint8_t fp[HETEE_CKKS_FINGERPRINT_BYTES];
  ckks_ksk k;
};

struct hetee_ckks_galois_keys {
  uint8_t fp[HETEE_CKKS_FINGERPRINT_BYTES];
  size_t n;        /* ring degree (for step reduction) */
  size_t count;
  ckks_ksk *keys;  /* sorted by galois element */
};

struct hetee_ckks_plaintext {
  uint8_t fp[HETEE_CKKS_FINGERPRINT_BYTES];
  int level;       /* -1: empty */
  double scale;
  size_t n;
  size_t cap_rows; /* allocated rows */
  uint64_t *data;  /* (level+1) rows, NTT form */
};

struct hetee_ckks_ciphertext {
  uint8_t fp[HETEE_CKKS_FINGERPRINT_BYTES];
  int level;       /* -1: empty */
  int size;        /* 2 or 3 */
  double scale;
  size_t n;
  size_t cap_rows; /* allocated rows per polynomial */
  uint64_t *c[3];  /* each (level+1) rows, NTT form */
  int seeded;      /* 1: c[1] = expand(seed) untouched since encrypt_sk */
  uint8_t seed[HETEE_SEED_BYTES];
};

/* The evaluator (evaluator.c): a thread count and reusable 64-byte aligned
 * scratch. A public evaluator (hetee_ckks_evaluator_new) allocates its
 * buffers for the context's top level up front and wipes them on free; the
 * context-only operations run on a temporary one (ckks_ev_temp, one
 * thread) whose buffers are allocated on first use for the operation's level
 * and freed by ckks_ev_release, as the code did before evaluators existed. */
struct hetee_ckks_evaluator {
  const hetee_ckks_context *ctx;
  int threads;          /* OpenMP threads per operation, >= 1 */
  int wipe;             /* 1: wipe the buffers when they are freed */
  size_t ext_cap, work_cap, aux_cap; /* words allocated */
  uint64_t *ext;        /* ModUp output: extended digits */
  uint64_t *work;       /* ModUp / inner product / ModDown work rows */
  uint64_t *aux;        /* level+1 rows: permuted c1 of a rotation, rescale rows */
  size_t sum_cap;
  uint64_t *sum;        /* rotate_hoisted_sum only (allocated on first use) */
};

/* A temporary one-thread evaluator with no buffers yet. */
void ckks_ev_temp(const hetee_ckks_context *ctx, hetee_ckks_evaluator *ev);
/* Frees (wiping if ev->wipe) the buffers of a temporary evaluator. */
void ckks_ev_release(hetee_ckks_evaluator *ev);
/* Makes ev->ext and ev->work hold the key-switching scratch of level l
 * (no-op when already large enough). HETEE_ERR_NOMEM. */
int ckks_ev_ks_scratch(hetee_ckks_evaluator *ev, int l);
/* Makes ev->aux (ev->sum) hold `words` words. */
int ckks_ev_aux_scratch(hetee_ckks_evaluator *ev, size_t words);
int ckks_ev_sum_scratch(hetee_ckks_evaluator *ev, size_t words);
/* Checks an evaluator argument against the context of the operation. */
int ckks_ev_check(const hetee_ckks_evaluator *ev);

/* The context-only forms: the same code on a temporary one-thread
 * evaluator (buffers allocated for the operation's level, then freed). */
#define CKKS_ON_TEMP_EV(ctx, call)                                                  \
  do {                                                                         \
    if (!(ctx)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");    \
    hetee_ckks_evaluator ev_;                                                  \
    ckks_ev_temp((ctx), &ev_);                                                 \
    int rc_ = (call);                                                          \
    ckks_ev_release(&ev_);                                                     \
    return rc_;                                                                \
  } while (0)

/* OpenMP parallel for over RNS rows with a thread count from the evaluator;
 * every iteration writes disjoint rows, so the result does not depend on it. */
#define CKKS_PRAGMA(x) _Pragma(#x)
#define CKKS_OMP_FOR(threads) CKKS_PRAGMA(omp parallel for if ((threads) > 1) num_threads(threads))

/* PRG domains (the nonce of the ChaCha20 stream). */
#define CKKS_DOMAIN_CT_A 0x0000000000000001ULL  /* a of a symmetric ciphertext */
#define CKKS_DOMAIN_PK_A 0x0000000000000002ULL  /* a of the public key */
#define CKKS_DOMAIN_KSK_A 0x0000000000000100ULL /* + digit index: a_j of a ksk */

/* ---- helpers (internal, hidden visibility) ---- */

static inline uint64_t *ckks_row(uint64_t *p, size_t n, int i) { return p + (size_t)i * n; }

/* Global prime index of row r of an extended buffer at level l. */
static inline int ckks_ext_prime(const hetee_ckks_context *ctx, int l, int r) {
  return r <= l ? r : ctx->nq + (r - l - 1);
}

/* Reduces a full 128-bit value modulo m (two Barrett steps). */
static inline uint64_t ckks_reduce_u128(unsigned __int128 x, const hetee_modulus *m) {
  uint64_t hi = hetee_mod_reduce64((uint64_t)(x >> 64), m);
  return hetee_mod_reduce128(((unsigned __int128)hi << 64) | (uint64_t)x, m);
}

/* x mod q for any 64-bit x with one multiply-high (Barrett with
 * floor(2^64/q) = barrett_hi): r = x - floor(x * floor(2^64/q) / 2^64) q is
 * in [0, 2q) for q < 2^63; one branch-free correction. */
static inline uint64_t ckks_reduce64(uint64_t x, const hetee_modulus *m) {
  uint64_t qe = (uint64_t)(((unsigned __int128)x * m->barrett_hi) >> 64);
  uint64_t r = x - qe * m->q;
  uint64_t t = r - m->q;
  uint64_t mask = (uint64_t)0 - (uint64_t)(r >= m->q);
  return (t & mask) | (r & ~mask);
}

/* Uninitialised 64-byte aligned scratch (freed with hetee_free / free). */
static inline uint64_t *ckks_scratch(size_t words) {
  size_t bytes = (words * 8 + 63) & ~(size_t)63;
  return (uint64_t *)aligned_alloc(64, bytes ? bytes : 64);
}

/* Signed 64-bit value modulo q (branch-free: masks, no data-dependent
 * branch, so it may see secret values). */
static inline uint64_t ckks_from_i64(int64_t v, const hetee_modulus *m) {
  uint64_t sign = (uint64_t)0 - ((uint64_t)v >> 63);      /* all ones if v < 0 */
  uint64_t mag = ((uint64_t)v ^ sign) - sign;             /* |v|, also for INT64_MIN */
  uint64_t r = ckks_reduce64(mag, m);
  uint64_t neg = sign & ((uint64_t)0 - (uint64_t)(r != 0));
  return ((m->q - r) & neg) | (r & ~neg);
}

int ckks_check_ctx(const hetee_ckks_context *ctx, const uint8_t *fp, const char *what);
int ckks_ct_reserve(const hetee_ckks_context *ctx, hetee_ckks_ciphertext *ct, int level, int size);
/* Fresh noise and `a` seeds from one draw of OS entropy (encrypt.c). */
int ckks_seeds_random(uint8_t eseed[HETEE_SEED_BYTES], uint8_t aseed[HETEE_SEED_BYTES]);
/* s^2 (nt rows) then -s (nt rows) of sk, NTT form, made on first use
 * (encrypt.c); NULL if there was no memory for them. */
/* Tables of a key's derived rows (nt rows each): s^2, and the Shoup
 * quotients floor(x 2^64 / q) of s and of s^2 (ring/ring_shoup.h). */
#define CKKS_SKD_SQ 0
#define CKKS_SKD_S_SHOUP 1
#define CKKS_SKD_SQ_SHOUP 2
#define CKKS_SKD_TABLES 3
const uint64_t *ckks_sk_derived(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk);
int ckks_pt_reserve(const hetee_ckks_context *ctx, hetee_ckks_plaintext *pt, int level);
void ckks_ct_set_fp(const hetee_ckks_context *ctx, hetee_ckks_ciphertext *ct);

/* Expands a uniform polynomial (rows of the given global primes, in order)
 * from (seed, domain). Deterministic: the same rows come out for any prefix
 * of prime indices listed in the same order. */
void ckks_expand_uniform(const hetee_ckks_context *ctx, const uint8_t seed[HETEE_SEED_BYTES], uint64_t domain,
                         const int *primes, int nrows, uint64_t *out);

/* Small signed polynomial (N int8 coefficients) to NTT form on the given
 * global primes. */
void ckks_small_to_ntt(const hetee_ckks_context *ctx, const int8_t *v, const int *primes, int nrows,
                       uint64_t *out);

/* The common exit of encryption and key generation (encrypt.c): wipes the
 * noise PRG and its seed, wipes and frees the sampled small coefficients
 * (small_bytes, malloc'd) and the secure scratch (words 64-bit words,
 * hetee_alloc'd); NULL buffers are skipped. */
void ckks_noise_free(hetee_prg *prg, uint8_t seed[HETEE_SEED_BYTES], int8_t *small, size_t small_bytes,
                     uint64_t *scratch, size_t words);

/* Secret-key encryption with given seeds (encrypt.c; the public functions
 * draw fresh ones): e from the CBD stream of eseed, a from aseed. The
 * coefficient form rounds v as ckks_coeffs_round into c0 and takes one
 * NTT per row; with the same seeds it gives exactly the ciphertext of
 * encode_coeffs(_bounded) + ckks_encrypt_sk_seeded (tests/ckks/test_encrypt.c).
 * Arguments are not checked here. On error out is left empty. */
int ckks_encrypt_sk_seeded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                           const hetee_ckks_plaintext *pt, const uint8_t eseed[HETEE_SEED_BYTES],
                           const uint8_t aseed[HETEE_SEED_BYTES], hetee_ckks_ciphertext *out);
int ckks_encrypt_sk_coeffs_seeded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const double *v,
                                  size_t n, double scale, int level, int bounded, double vmax,
                                  const uint8_t eseed[HETEE_SEED_BYTES], const uint8_t aseed[HETEE_SEED_BYTES],
                                  hetee_ckks_ciphertext *out);

/* Decryption (encrypt.c): the checks of hetee_ckks_decrypt (keys and
 * ciphertext of ctx, non-empty, size 2 or 3; pointers not NULL), and row i
 * of m = c0 + c1 s (+ c2 s^2) in NTT form into o (N words). */
int ckks_decrypt_check(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                       const hetee_ckks_ciphertext *ct);
void ckks_decrypt_row(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const hetee_ckks_ciphertext *ct,
                      int i, uint64_t *o);

/* Key switching (keyswitch.c). */
int ckks_ksk_gen(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const uint64_t *sprime,
                 uint64_t galois, ckks_ksk *out);
int ckks_ksk_expand(const hetee_ckks_context *ctx, ckks_ksk *k); /* fills a from seed */
int ckks_ksk_alloc(const hetee_ckks_context *ctx, ckks_ksk *k);
void ckks_ksk_free(ckks_ksk *k);

/* ModUp: d (level l, NTT form, l+1 rows) -> ext[j] for each digit j, each
 * (l+1+np) rows in NTT form. ext must hold ndigits * (l+1+np) * N words.
 * The rows of a digit's own primes are not written: the inner product reads
 * them from d, which must stay unchanged until then. */
void ckks_modup(const hetee_ckks_context *ctx, int l, const uint64_t *d, uint64_t *ext, uint64_t *tmp,
                int threads);
/* Inner product of the extended digits (own-prime rows from d; all
 * optionally permuted by perm) with key k, then ModDown: out0 = base0 +
 * result0, out1 = base1 + result1 (l+1 rows each, NTT form; a NULL base
 * means zero; a base may alias its out). */
void ckks_ks_inner_moddown(const hetee_ckks_context *ctx, int l, const uint64_t *ext, const uint64_t *d,
                           const uint32_t *perm, const ckks_ksk *k, const uint64_t *base0, uint64_t *out0,
                           const uint64_t *base1, uint64_t *out1, uint64_t *work, int threads);
/* ModDown by P of acc (l+1+np rows, ext layout, NTT form; clobbered):
 * out rows 0..l = base + round(acc / P) (base NULL: zero; may alias out).
 * ybuf: np rows, conv: l+1 rows of scratch. */
void ckks_moddown(const hetee_ckks_context *ctx, int l, uint64_t *acc, const uint64_t *base, uint64_t *out,
                  uint64_t *ybuf, uint64_t *conv, int threads);
/* Key switches d (level l, NTT form) with k: out0 = base0 + ks0,
 * out1 = base1 + ks1 (bases as above), in ev's scratch and threads
 * (eval.c). d must not lie in ev's scratch. */
int ckks_keyswitch_add(hetee_ckks_evaluator *ev, int l, const uint64_t *d, const ckks_ksk *k,
                       const uint64_t *base0, uint64_t *out0, const uint64_t *base1, uint64_t *out1);
/* Words of scratch the two functions above need at level l. */
size_t ckks_ks_ext_words(const hetee_ckks_context *ctx, int l);
size_t ckks_ks_work_words(const hetee_ckks_context *ctx, int l);

/* Keys (keys.c). */
int ckks_sk_alloc(const hetee_ckks_context *ctx, hetee_ckks_secret_key **out);
int ckks_sk_from_small(const hetee_ckks_context *ctx, hetee_ckks_secret_key *k);
int ckks_pk_alloc(const hetee_ckks_context *ctx, hetee_ckks_public_key **out);
void ckks_pk_expand(const hetee_ckks_context *ctx, hetee_ckks_public_key *k);
uint64_t ckks_galois_elt(size_t n, int step);
/* Fills k->perm for k->galois. */
int ckks_ksk_set_perm(const hetee_ckks_context *ctx, ckks_ksk *k);
const ckks_ksk *ckks_galois_find(const hetee_ckks_galois_keys *gk, uint64_t g);
/* The automorphism X -> X^g of a size-2 ciphertext, key switched back to s
 * (eval_rotate.c; g odd, a key for g in gk unless g == 1). */
int ckks_rotate_galois(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk, const hetee_ckks_ciphertext *a,
                       uint64_t g, hetee_ckks_ciphertext *out);

/* Encoder internals (encoder.c): special FFT on N/2 complex values. */
void ckks_fft_special(const hetee_ckks_context *ctx, double complex *v);
void ckks_fft_special_inv(const hetee_ckks_context *ctx, double complex *v);
/* One specific FFT variant (simd = 0: portable; 1: AVX-512, only when
 * ckks_fft_has_simd()), for tests comparing them. */
void ckks_fft_special_variant(const hetee_ckks_context *ctx, double complex *z, int simd);
void ckks_fft_special_inv_variant(const hetee_ckks_context *ctx, double complex *z, int simd);
int ckks_fft_has_simd(void);
/* Rounds real coefficients to residues on primes 0..level (coefficient
 * form). HETEE_ERR_SCALE if a value does not fit Q_level / 2. */
int ckks_round_to_rns(const hetee_ckks_context *ctx, const double *coef, int level, uint64_t *out);
/* Bounded version: saturates coef (clobbered) at +-cmax, path from cmax
 * only (public), never fails on a value. HETEE_ERR_SCALE if cmax does not
 * fit Q_level / 4. */
int ckks_round_to_rns_bounded(const hetee_ckks_context *ctx, double *coef, int level, double cmax, uint64_t *out);
/* Coefficient encoding without the NTT (encoder.c): the argument checks of
 * encode_coeffs (bounded = 0) or encode_coeffs_bounded (bounded = 1, with
 * vmax), and rows 0..level of out (coefficient form) = the rounded
 * v[k] * scale (k < n; zero beyond), saturated at +-vmax when bounded. */
int ckks_coeffs_check(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                      int bounded, double vmax);
/* ckks_coeffs_round (bounded) with the noise e[0..N) (|e| <= HETEE_CBD_K)
 * added before the reduction, on the one-pass AVX-512 path only: 1 when
 * rows 0..level of out hold round(v scale) + e, 0 when that path does not
 * apply (nothing written), < 0 on error (no memory). */
int ckks_coeffs_round_noise(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level,
                            double vmax, const int8_t *e, uint64_t *out);
int ckks_coeffs_round(const hetee_ckks_context *ctx, const double *v, size_t n, double scale, int level, int bounded,
                      double vmax, uint64_t *out);
/* ckks_round_to_rns_bounded (coef clobbered) with the noise e[0..N) added
 * before the reduction, on the one-pass AVX-512 path only (cmax + K <
 * 2^62): 1 when rows 0..level of out hold round(clamp(coef, cmax)) + e, 0
 * when that path does not apply (nothing written), < 0 on error. */
int ckks_round_noise_scaled(const hetee_ckks_context *ctx, double *coef, int level, double cmax, const int8_t *e,
                            uint64_t *out);
/* Secret-key encryption (encrypt.c) of N coefficients already multiplied by
 * the scale (coef, clobbered), saturated at +-cmax and rounded as
 * ckks_round_to_rns_bounded: with the same seeds, the ciphertext of that
 * rounding, NTT and ckks_encrypt_sk_seeded. out reserved by the caller. */
int ckks_encrypt_sk_scaled(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, double *coef, int level,
                           double scale, double cmax, const uint8_t eseed[HETEE_SEED_BYTES],
                           const uint8_t aseed[HETEE_SEED_BYTES], hetee_ckks_ciphertext *out);
/* Scalar version for constants. */
int ckks_const_to_rns(const hetee_ckks_context *ctx, double v, int level, uint64_t *res);

/* Fingerprint compare (constant time not needed: public). */
static inline int ckks_fp_eq(const uint8_t *a, const uint8_t *b) {
  return memcmp(a, b, HETEE_CKKS_FINGERPRINT_BYTES) == 0;
}

#endif
