/*
 * hetee/ckks.h — RNS-CKKS (Cheon–Kim–Kim–Song, full-RNS variant of
 * Cheon–Han–Kim–Kim–Song 2018) over Z[X]/(X^N+1), N = 2^12..2^16, with hybrid
 * key switching (Han–Ki 2020) through one or more special primes.
 *
 * Objects: a checked immutable context built from a literal; opaque secret /
 * public / relinearization / Galois keys; plaintexts and ciphertexts carrying
 * their level, scale, degree, NTT form and the context fingerprint, checked by
 * every operation.
 *
 * Levels: a context with nq ciphertext primes q_0..q_{nq-1} has max level
 * L = nq-1; an object at level l uses primes q_0..q_l. Fresh encryptions are
 * at the level of their plaintext (normally L). Rescale drops one level.
 *
 * Conventions: every fallible function returns 0 or a negative hetee_status,
 * with a detail in hetee_last_error(). Output arguments come last. Unless a
 * function says otherwise, an output ciphertext may alias an input.
 * Objects are not thread-safe for concurrent writes; a context and keys are
 * immutable once built and may be shared read-only between threads.
 *
 * Threading: the context holds no mutable state. Parallelism inside one
 * operation (OpenMP across RNS components) is a property of an evaluator
 * (hetee_ckks_evaluator, below), which also owns the operation's reusable
 * scratch: each thread of the caller uses its own evaluator over the shared
 * context and keys. The context-only functions (hetee_ckks_eval_*, encode,
 * encrypt, decrypt, key generation) run on one thread. Results are
 * bit-identical whatever the thread count.
 */
#ifndef HETEE_CKKS_H
#define HETEE_CKKS_H

#include "hetee/common.h"
#include "hetee/ring.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HETEE_CKKS_MIN_LOGN 12
#define HETEE_CKKS_MAX_LOGN 16
#define HETEE_CKKS_MAX_Q 64 /* ciphertext primes */
#define HETEE_CKKS_MAX_P 8  /* special primes */
#define HETEE_CKKS_FINGERPRINT_BYTES 32

/* ---------------------------------------------------------------------------
 * Parameters
 * ------------------------------------------------------------------------- */

/* The plain literal a user fills in. Primes are generated deterministically
 * from the bit sizes (hetee_primes_generate), so a literal names one exact
 * parameter set. */
typedef struct hetee_ckks_literal {
  int log_n;                       /* 12..16 */
  int nq;                          /* number of ciphertext primes, >= 1 */
  int q_bits[HETEE_CKKS_MAX_Q];    /* q_0 first (largest, holds the result) */
  int np;                          /* number of special primes, >= 1 */
  int p_bits[HETEE_CKKS_MAX_P];    /* special primes for key switching */
  double default_scale;            /* e.g. 2^40; 0 means 2^q_bits[nq-1] */
  int allow_insecure;              /* 1: skip the 128-bit security check
                                      (tests only) */
} hetee_ckks_literal;

typedef struct hetee_ckks_context hetee_ckks_context;

/* Fills *lit with hetee's default parameter set, the one the enclave's
 * default configuration uses: logN 13, q {60, 40, 40}, p {60}, default
 * scale 2^40 (180 bits of the 218 allowed at 128-bit security). */
HETEE_API void hetee_ckks_literal_default(hetee_ckks_literal *lit);

/* Checks the literal and builds the context (primes, NTT tables, encoder
 * tables, key-switching constants, fingerprint).
 * Errors: HETEE_ERR_PARAMS (bad sizes), HETEE_ERR_INSECURE (total
 * log2(Q*P) above the HomomorphicEncryption.org 128-bit bound for N with a
 * ternary secret, and allow_insecure == 0), HETEE_ERR_NOMEM. */
HETEE_API int hetee_ckks_context_new(const hetee_ckks_literal *lit, hetee_ckks_context **out) HETEE_WUR;
HETEE_API void hetee_ckks_context_free(hetee_ckks_context *ctx);

HETEE_API int hetee_ckks_context_log_n(const hetee_ckks_context *ctx);
HETEE_API size_t hetee_ckks_context_n(const hetee_ckks_context *ctx);
HETEE_API size_t hetee_ckks_context_slots(const hetee_ckks_context *ctx); /* N/2 */
HETEE_API int hetee_ckks_context_max_level(const hetee_ckks_context *ctx); /* nq-1 */
HETEE_API double hetee_ckks_context_default_scale(const hetee_ckks_context *ctx);
/* Prime i of the full chain: i < nq gives q_i, nq <= i < nq+np gives p_(i-nq). */
HETEE_API uint64_t hetee_ckks_context_prime(const hetee_ckks_context *ctx, int i);
HETEE_API int hetee_ckks_context_nq(const hetee_ckks_context *ctx);
HETEE_API int hetee_ckks_context_np(const hetee_ckks_context *ctx);
/* SHA-256 fingerprint over (N, all primes, default scale): identifies the
 * parameter set in every serialized object. */
HETEE_API const uint8_t *hetee_ckks_context_fingerprint(const hetee_ckks_context *ctx);
/* Largest total modulus bits log2(Q*P) allowed at 128-bit security for a
 * ternary secret (HomomorphicEncryption.org standard, classical):
 * logN 12:109, 13:218, 14:438, 15:881, 16:1772.
 * Returns 0 for unsupported log_n. */
HETEE_API int hetee_ckks_max_logqp_128(int log_n);

/* ---------------------------------------------------------------------------
 * Keys (opaque). The secret key is wiped on free.
 * ------------------------------------------------------------------------- */
typedef struct hetee_ckks_secret_key hetee_ckks_secret_key;
typedef struct hetee_ckks_public_key hetee_ckks_public_key;
typedef struct hetee_ckks_relin_key hetee_ckks_relin_key;
typedef struct hetee_ckks_galois_keys hetee_ckks_galois_keys;

/* Uniform ternary secret from fresh OS entropy. */
HETEE_API int hetee_ckks_keygen_secret(const hetee_ckks_context *ctx, hetee_ckks_secret_key **out) HETEE_WUR;
HETEE_API int hetee_ckks_keygen_public(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                       hetee_ckks_public_key **out) HETEE_WUR;
HETEE_API int hetee_ckks_keygen_relin(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                      hetee_ckks_relin_key **out) HETEE_WUR;
/* Galois keys for rotations by each of steps[0..nsteps) (any sign; taken
 * modulo N/2; duplicates ignored) and, if `conjugate` is nonzero, for complex
 * conjugation. */
HETEE_API int hetee_ckks_keygen_galois(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                       const int *steps, size_t nsteps, int conjugate,
                                       hetee_ckks_galois_keys **out) HETEE_WUR;
HETEE_API void hetee_ckks_secret_key_free(hetee_ckks_secret_key *k);
HETEE_API void hetee_ckks_public_key_free(hetee_ckks_public_key *k);
HETEE_API void hetee_ckks_relin_key_free(hetee_ckks_relin_key *k);
HETEE_API void hetee_ckks_galois_keys_free(hetee_ckks_galois_keys *k);
/* Whether gk holds a key for rotation by `step` (after reduction mod N/2).
 * A step that reduces to 0 needs no key and answers 1. */
HETEE_API int hetee_ckks_galois_keys_has_step(const hetee_ckks_galois_keys *gk, int step);

/* ---------------------------------------------------------------------------
 * Plaintexts and ciphertexts
 * ------------------------------------------------------------------------- */
typedef struct hetee_ckks_plaintext hetee_ckks_plaintext;
typedef struct hetee_ckks_ciphertext hetee_ckks_ciphertext;

/* Empty objects; encode / encrypt / evaluator calls size them as needed. */
HETEE_API int hetee_ckks_plaintext_new(const hetee_ckks_context *ctx, hetee_ckks_plaintext **out) HETEE_WUR;
HETEE_API void hetee_ckks_plaintext_free(hetee_ckks_plaintext *pt);
HETEE_API int hetee_ckks_plaintext_level(const hetee_ckks_plaintext *pt);
HETEE_API double hetee_ckks_plaintext_scale(const hetee_ckks_plaintext *pt);

HETEE_API int hetee_ckks_ciphertext_new(const hetee_ckks_context *ctx, hetee_ckks_ciphertext **out) HETEE_WUR;
HETEE_API void hetee_ckks_ciphertext_free(hetee_ckks_ciphertext *ct);
HETEE_API int hetee_ckks_ciphertext_copy(const hetee_ckks_ciphertext *src, hetee_ckks_ciphertext *dst) HETEE_WUR;
HETEE_API int hetee_ckks_ciphertext_level(const hetee_ckks_ciphertext *ct);
HETEE_API double hetee_ckks_ciphertext_scale(const hetee_ckks_ciphertext *ct);
/* Number of polynomials: 2 (fresh / relinearized) or 3 (after mul). */
HETEE_API int hetee_ckks_ciphertext_size(const hetee_ckks_ciphertext *ct);
/* Overrides the recorded scale (for callers that track scales themselves,
 * e.g. after a multiplication by an integer constant). */
HETEE_API int hetee_ckks_ciphertext_set_scale(hetee_ckks_ciphertext *ct, double scale);

/* ---------------------------------------------------------------------------
 * Encoder: canonical embedding with the special FFT (slot j <-> root
 * psi^(5^j)). Up to N/2 complex values; fewer values are zero-padded.
 * Errors: HETEE_ERR_INVALID_ARG (n > slots), HETEE_ERR_SCALE (scale <= 0 or
 * values * scale do not fit the level's modulus), HETEE_ERR_LEVEL.
 * ------------------------------------------------------------------------- */
HETEE_API int hetee_ckks_encode_real(const hetee_ckks_context *ctx, const double *v, size_t n,
                                     double scale, int level, hetee_ckks_plaintext *out) HETEE_WUR;
/* v holds n complex values as interleaved (re, im) pairs: 2n doubles. */
HETEE_API int hetee_ckks_encode_complex(const hetee_ckks_context *ctx, const double *v, size_t n,
                                        double scale, int level, hetee_ckks_plaintext *out) HETEE_WUR;
/* Encoding for callers that must not reveal anything about the values (the
 * enclave's refresh): each value is saturated at +-vmax (branch-free; NaN
 * becomes -vmax) and the rounding path is chosen from the public bound
 * vmax * scale, never from the data, so neither the result code nor the
 * time depends on the values. Errors depend on the arguments only:
 * those of encode_real, and HETEE_ERR_SCALE when vmax is not finite and
 * > 0, vmax * scale > 2^1000, or vmax * scale does not fit Q_level / 4.
 * (hetee_ckks_encode_real keeps its behaviour for ordinary callers encoding
 * their own data: it refuses values that do not fit, and its speed path
 * follows the largest coefficient.) */
HETEE_API int hetee_ckks_encode_real_bounded(const hetee_ckks_context *ctx, const double *v, size_t n,
                                             double scale, int level, double vmax,
                                             hetee_ckks_plaintext *out) HETEE_WUR;
/* Decodes the first n slots (real parts). */
HETEE_API int hetee_ckks_decode_real(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt,
                                     double *out, size_t n) HETEE_WUR;
/* Decodes the first n slots as interleaved (re, im) pairs (2n doubles). */
HETEE_API int hetee_ckks_decode_complex(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt,
                                        double *out, size_t n) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Coefficient encoding: the plaintext polynomial's coefficients themselves
 * carry the values, coefficient k = round(v[k] * scale). No FFT: a product
 * of two such plaintexts (or ciphertexts) is the negacyclic convolution of
 * their coefficient vectors scaled by the product of the scales, which is
 * what hetee's linear layers use (docs/hemat.md): matrix products and
 * convolutions come out of one ct x ct product without any rotation.
 * Errors as for the slot encoder; n <= N (not N/2).
 * ------------------------------------------------------------------------- */
HETEE_API int hetee_ckks_encode_coeffs(const hetee_ckks_context *ctx, const double *v, size_t n, double scale,
                                       int level, hetee_ckks_plaintext *out) HETEE_WUR;
/* Coefficient encoding for callers that must not reveal the values (the
 * enclave), as hetee_ckks_encode_real_bounded: values saturated at +-vmax
 * (branch-free), rounding path from vmax * scale, never a value-dependent
 * failure. */
HETEE_API int hetee_ckks_encode_coeffs_bounded(const hetee_ckks_context *ctx, const double *v, size_t n,
                                               double scale, int level, double vmax,
                                               hetee_ckks_plaintext *out) HETEE_WUR;
/* Decodes coefficients idx[0..n) (each < N; idx NULL: coefficients 0..n-1)
 * as centred value / plaintext scale into out[0..n). The indices are public:
 * every coefficient costs the same whatever its value. Errors:
 * HETEE_ERR_INVALID_ARG (an index >= N), HETEE_ERR_LEVEL (empty plaintext). */
HETEE_API int hetee_ckks_decode_coeffs(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt,
                                       const uint32_t *idx, size_t n, double *out) HETEE_WUR;
/* The same as decode_coeffs with the scale given by the caller instead of
 * the plaintext's recorded one (the enclave decodes with the scale a
 * registered plan declares, never with metadata the host can rewrite). */
HETEE_API int hetee_ckks_decode_coeffs_scaled(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt,
                                              double scale, const uint32_t *idx, size_t n,
                                              double *out) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Encryption
 * ------------------------------------------------------------------------- */
/* Public-key encryption: (v*pk0 + e0, v*pk1 + e1) computed over Q*P, v
 * ternary, divided by P (rounding) and then + (m, 0): the fresh noise is
 * about that of secret-key encryption. The ciphertext has pt's level and
 * scale. Errors: HETEE_ERR_CONTEXT, HETEE_ERR_LEVEL (empty plaintext),
 * HETEE_ERR_CRYPTO (no OS entropy), HETEE_ERR_NOMEM. */
HETEE_API int hetee_ckks_encrypt_pk(const hetee_ckks_context *ctx, const hetee_ckks_public_key *pk,
                                    const hetee_ckks_plaintext *pt, hetee_ckks_ciphertext *out) HETEE_WUR;
/* Symmetric encryption: (-a*s + e + m, a) with a expanded from a fresh
 * 32-byte seed; the ciphertext remembers the seed until modified, so its
 * serialization is half size. */
HETEE_API int hetee_ckks_encrypt_sk(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                    const hetee_ckks_plaintext *pt, hetee_ckks_ciphertext *out) HETEE_WUR;
/* Coefficient encoding and symmetric encryption in one step: the same
 * ciphertext distribution as hetee_ckks_encode_coeffs(_bounded) followed by
 * hetee_ckks_encrypt_sk (level `level`, scale `scale`, seeded), computed
 * with one forward NTT per prime instead of two (the CBD noise is added to
 * the rounded coefficients before the transform) and without a plaintext
 * object. Given the same random seeds the two paths give identical
 * ciphertexts (tests/ckks/test_encrypt.c). Arguments and errors as the
 * encoder's (plus HETEE_ERR_CONTEXT for a key of other parameters,
 * HETEE_ERR_CRYPTO without OS entropy); the _bounded form saturates values
 * at +-vmax and picks its rounding path from vmax * scale alone, never
 * failing on a value (the enclave's refresh). On any error out is left
 * empty (level -1). */
HETEE_API int hetee_ckks_encrypt_sk_coeffs(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                           const double *v, size_t n, double scale, int level,
                                           hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_encrypt_sk_coeffs_bounded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                                   const double *v, size_t n, double scale, int level, double vmax,
                                                   hetee_ckks_ciphertext *out) HETEE_WUR;
/* Decrypts a ciphertext of size 2 or 3 (plaintext at the ciphertext's level
 * and scale). */
HETEE_API int hetee_ckks_decrypt(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                 const hetee_ckks_ciphertext *ct, hetee_ckks_plaintext *out) HETEE_WUR;

/* Decryption and coefficient decoding in one step: out[j] = centred
 * coefficient idx[j] (idx NULL: 0..n-1) of the decryption of ct (size 2 or
 * 3) divided by `scale` (the caller's, not the ciphertext's recorded
 * scale), without a plaintext object. The same doubles as
 * hetee_ckks_decrypt + hetee_ckks_decode_coeffs_scaled; errors as theirs.
 * The indices are public: every coefficient costs the same whatever its
 * value. */
HETEE_API int hetee_ckks_decrypt_coeffs(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                        const hetee_ckks_ciphertext *ct, double scale, const uint32_t *idx,
                                        size_t n, double *out) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Evaluation, context-only forms (one thread; the evaluator forms below add
 * threads and reusable scratch). Binary operations need equal levels (use
 * drop_level) and, for add/sub, scales equal within a relative 2^-20;
 * otherwise HETEE_ERR_LEVEL / HETEE_ERR_SCALE. Objects from another context: HETEE_ERR_CONTEXT.
 * ------------------------------------------------------------------------- */
HETEE_API int hetee_ckks_eval_add(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                  const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_eval_sub(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                  const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_eval_negate(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                     hetee_ckks_ciphertext *out) HETEE_WUR;
/* Plaintext operands may be at a level >= the ciphertext's (their extra
 * primes are ignored). */
HETEE_API int hetee_ckks_eval_add_plain(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                        const hetee_ckks_plaintext *p, hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_eval_sub_plain(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                        const hetee_ckks_plaintext *p, hetee_ckks_ciphertext *out) HETEE_WUR;
/* out scale = a.scale * p.scale. */
HETEE_API int hetee_ckks_eval_mul_plain(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                        const hetee_ckks_plaintext *p, hetee_ckks_ciphertext *out) HETEE_WUR;
/* Multiplies every slot by the real constant c, encoded as round(c * cscale);
 * out scale = a.scale * cscale. */
HETEE_API int hetee_ckks_eval_mul_const(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                        double c, double cscale, hetee_ckks_ciphertext *out) HETEE_WUR;
/* Adds the real constant c to every slot (encoded at a's scale). */
HETEE_API int hetee_ckks_eval_add_const(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                        double c, hetee_ckks_ciphertext *out) HETEE_WUR;
/* ct x ct product to degree 2 (size-2 inputs); out scale = product. */
HETEE_API int hetee_ckks_eval_mul(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                  const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *out) HETEE_WUR;
/* acc += a * b kept in degree 2 (lazy accumulation: relinearize once at the
 * end). An empty acc (fresh from ciphertext_new) is initialised. acc must not
 * alias a or b. */
HETEE_API int hetee_ckks_eval_mul_acc(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                      const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *acc) HETEE_WUR;
/* Size-3 -> size-2 with the relinearization key (hybrid key switching).
 * HETEE_ERR_NO_KEY if rk is NULL, HETEE_ERR_FORM if a is not of size 3. */
HETEE_API int hetee_ckks_eval_relin(const hetee_ckks_context *ctx, const hetee_ckks_relin_key *rk,
                                    const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_eval_mul_relin(const hetee_ckks_context *ctx, const hetee_ckks_relin_key *rk,
                                        const hetee_ckks_ciphertext *a, const hetee_ckks_ciphertext *b,
                                        hetee_ckks_ciphertext *out) HETEE_WUR;
/* Divides by the last prime of the current level: level - 1, scale / q_l.
 * HETEE_ERR_LEVEL at level 0. */
HETEE_API int hetee_ckks_eval_rescale(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                      hetee_ckks_ciphertext *out) HETEE_WUR;
/* Drops primes without dividing: new level `level` <= current level. */
HETEE_API int hetee_ckks_eval_drop_level(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *a,
                                         int level, hetee_ckks_ciphertext *out) HETEE_WUR;
/* Rotates slots left by `step` (slot i of out = slot i+step of a); negative
 * steps rotate right. HETEE_ERR_NO_KEY if gk is NULL or has no key for
 * step; HETEE_ERR_FORM if a has size 3 (relinearize first). */
HETEE_API int hetee_ckks_eval_rotate(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *gk,
                                     const hetee_ckks_ciphertext *a, int step,
                                     hetee_ckks_ciphertext *out) HETEE_WUR;
/* Hoisted rotations: one key-switch decomposition of a shared by all
 * steps[i]; outs[i] receives the rotation by steps[i] (outs[i] must be
 * distinct objects and must not alias a). Cost: one decomposition + n inner
 * products instead of n full key switches. */
HETEE_API int hetee_ckks_eval_rotate_hoisted(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *gk,
                                             const hetee_ckks_ciphertext *a, const int *steps, size_t n,
                                             hetee_ckks_ciphertext *const *outs) HETEE_WUR;
/* Coefficient expansion into `lanes` ciphertexts (a power of two in
 * [2, N/2]; src/ckks/expand.c): for a size-2 ciphertext of
 * m = sum_e m_e X^e, outs[q] (q < lanes) encrypts
 * lanes * sum_{e = q mod lanes} m_e X^(e - q): lane q's coefficients moved
 * to the multiples of `lanes`, every other coefficient 0, everything times
 * `lanes` (encode at scale / lanes to read the lanes back at scale). Same
 * level and scale. Cost: lanes - 1 automorphisms with key switching, plus
 * additions and monomial products. gk must hold the rotation steps that
 * hetee_ckks_expand_steps names. outs must be distinct and not alias a.
 * Errors: HETEE_ERR_INVALID_ARG (lanes, NULL, aliasing), HETEE_ERR_FORM
 * (size 3), HETEE_ERR_LEVEL (empty), HETEE_ERR_NO_KEY (a key missing),
 * HETEE_ERR_CONTEXT (objects of another context). */
HETEE_API int hetee_ckks_eval_expand(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *gk,
                                     const hetee_ckks_ciphertext *a, int lanes,
                                     hetee_ckks_ciphertext *const *outs) HETEE_WUR;
/* The rotation steps (log2(lanes) of them, into steps[0..cap)) whose Galois
 * keys an expansion into `lanes` needs; *count receives their number even
 * when cap is too small (HETEE_ERR_LIMIT). */
HETEE_API int hetee_ckks_expand_steps(const hetee_ckks_context *ctx, int lanes, int *steps, size_t cap,
                                      size_t *count) HETEE_WUR;
/* The same for ring dimension n (a power of two): the steps depend on n
 * and lanes only, so a plan names them without a context. */
HETEE_API int hetee_ckks_expand_steps_n(size_t n, int lanes, int *steps, size_t cap, size_t *count) HETEE_WUR;
HETEE_API int hetee_ckks_eval_conjugate(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *gk,
                                        const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Evaluator object. Naming: hetee_ckks_evaluator_<verb>(ev, ...) is the
 * evaluator form of hetee_ckks_eval_<verb>(ctx, ...), with the same
 * arguments after the first, the same checks, errors and aliasing rules and
 * bit-identical results; the context is the evaluator's. The evaluator adds:
 *  - a thread count: OpenMP threads used inside each of its operations
 *    (across RNS primes; results do not depend on it);
 *  - reusable 64-byte aligned scratch sized for the context's top level
 *    (key-switching ModUp digits and work rows, rotation / rescale rows), so
 *    key switching, rotations and rescale allocate no polynomial-sized
 *    memory (the context-only forms allocate it per call). The scratch is
 *    wiped when the evaluator is freed.
 * An evaluator is used by one thread at a time (it is written by every
 * operation); any number of evaluators may share one context and one set
 * of keys concurrently. The context must outlive its evaluators.
 * ------------------------------------------------------------------------- */
typedef struct hetee_ckks_evaluator hetee_ckks_evaluator;

/* threads: 1..1024. Errors: HETEE_ERR_INVALID_ARG, HETEE_ERR_NOMEM. */
HETEE_API int hetee_ckks_evaluator_new(const hetee_ckks_context *ctx, int threads,
                                       hetee_ckks_evaluator **out) HETEE_WUR;
HETEE_API void hetee_ckks_evaluator_free(hetee_ckks_evaluator *ev);
HETEE_API int hetee_ckks_evaluator_threads(const hetee_ckks_evaluator *ev);
/* Bytes of scratch the evaluator holds. */
HETEE_API size_t hetee_ckks_evaluator_scratch_bytes(const hetee_ckks_evaluator *ev);

HETEE_API int hetee_ckks_evaluator_mul(hetee_ckks_evaluator *ev, const hetee_ckks_ciphertext *a,
                                       const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_evaluator_mul_acc(hetee_ckks_evaluator *ev, const hetee_ckks_ciphertext *a,
                                           const hetee_ckks_ciphertext *b, hetee_ckks_ciphertext *acc) HETEE_WUR;
HETEE_API int hetee_ckks_evaluator_relin(hetee_ckks_evaluator *ev, const hetee_ckks_relin_key *rk,
                                         const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_evaluator_mul_relin(hetee_ckks_evaluator *ev, const hetee_ckks_relin_key *rk,
                                             const hetee_ckks_ciphertext *a, const hetee_ckks_ciphertext *b,
                                             hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_evaluator_rescale(hetee_ckks_evaluator *ev, const hetee_ckks_ciphertext *a,
                                           hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_evaluator_rotate(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                          const hetee_ckks_ciphertext *a, int step,
                                          hetee_ckks_ciphertext *out) HETEE_WUR;
HETEE_API int hetee_ckks_evaluator_rotate_hoisted(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                                  const hetee_ckks_ciphertext *a, const int *steps, size_t n,
                                                  hetee_ckks_ciphertext *const *outs) HETEE_WUR;
/* hetee_ckks_eval_expand on the evaluator's threads and scratch. */
HETEE_API int hetee_ckks_evaluator_expand(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                          const hetee_ckks_ciphertext *a, int lanes,
                                          hetee_ckks_ciphertext *const *outs) HETEE_WUR;
HETEE_API int hetee_ckks_evaluator_conjugate(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                             const hetee_ckks_ciphertext *a, hetee_ckks_ciphertext *out) HETEE_WUR;
/* Evaluator only: out = sum over i of rot(a, steps[i]) (n >= 1 steps, any
 * sign, repeats and 0 allowed), the building block of baby-step
 * giant-step sums ("double hoisting"): one ModUp of a shared by all steps
 * (as rotate_hoisted), the key-switched terms summed in the extended basis
 * Q*P and divided by P once (2 ModDowns in all instead of 2 per step). The
 * result equals the sum of single rotations up to rounding (one rounding
 * instead of n), not bit for bit. out may alias a. The first call
 * allocates (and keeps) 2(L+1+np)+(L+1) rows of extra scratch. Errors as
 * rotate_hoisted; HETEE_ERR_INVALID_ARG if n == 0. */
HETEE_API int hetee_ckks_evaluator_rotate_hoisted_sum(hetee_ckks_evaluator *ev, const hetee_ckks_galois_keys *gk,
                                                      const hetee_ckks_ciphertext *a, const int *steps, size_t n,
                                                      hetee_ckks_ciphertext *out) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Serialization. Every object starts with a fixed little-endian header:
 *   magic "HETE" | u16 header size | u16 format version | u16 object type |
 *   u16 flags | u64 total size | 32-byte parameter fingerprint
 * followed by the object's body. Loaders validate the header, that the object
 * fits the context (N, level, degree, every residue < its prime) and the
 * exact size; they never abort on bad bytes.
 * save: *buf is malloc'd (free with free()); *len its size.
 * load errors: HETEE_ERR_FORMAT (bad magic / type / fields), HETEE_ERR_VERSION,
 * HETEE_ERR_TRUNCATED (shorter than announced), HETEE_ERR_CONTEXT
 * (fingerprint of other parameters), HETEE_ERR_RANGE (residue >= prime).
 * ------------------------------------------------------------------------- */
typedef enum hetee_ckks_obj_type {
  HETEE_OBJ_PARAMS = 1,
  HETEE_OBJ_SECRET_KEY = 2,
  HETEE_OBJ_PUBLIC_KEY = 3,
  HETEE_OBJ_RELIN_KEY = 4,
  HETEE_OBJ_GALOIS_KEYS = 5,
  HETEE_OBJ_PLAINTEXT = 6,
  HETEE_OBJ_CIPHERTEXT = 7
} hetee_ckks_obj_type;

HETEE_API int hetee_ckks_literal_save(const hetee_ckks_context *ctx, uint8_t **buf, size_t *len) HETEE_WUR;
/* Rebuilds the context from a saved literal and checks primes and
 * fingerprint (HETEE_ERR_FORMAT on mismatch). Loaded parameters always pass
 * the 128-bit check (HETEE_ERR_INSECURE otherwise), whatever the saved
 * allow_insecure flag says. */
HETEE_API int hetee_ckks_context_load(const uint8_t *buf, size_t len, hetee_ckks_context **out) HETEE_WUR;

HETEE_API int hetee_ckks_secret_key_save(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *k,
                                         uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_secret_key_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                         hetee_ckks_secret_key **out) HETEE_WUR;
HETEE_API int hetee_ckks_public_key_save(const hetee_ckks_context *ctx, const hetee_ckks_public_key *k,
                                         uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_public_key_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                         hetee_ckks_public_key **out) HETEE_WUR;
HETEE_API int hetee_ckks_relin_key_save(const hetee_ckks_context *ctx, const hetee_ckks_relin_key *k,
                                        uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_relin_key_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                        hetee_ckks_relin_key **out) HETEE_WUR;
HETEE_API int hetee_ckks_galois_keys_save(const hetee_ckks_context *ctx, const hetee_ckks_galois_keys *k,
                                          uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_galois_keys_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                          hetee_ckks_galois_keys **out) HETEE_WUR;
HETEE_API int hetee_ckks_plaintext_save(const hetee_ckks_context *ctx, const hetee_ckks_plaintext *pt,
                                        uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_plaintext_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                        hetee_ckks_plaintext **out) HETEE_WUR;
/* A ciphertext fresh from encrypt_sk (unmodified) is saved seeded: c1 is
 * replaced by its 32-byte seed. */
HETEE_API int hetee_ckks_ciphertext_save(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                         uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_ciphertext_load(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                         hetee_ckks_ciphertext **out) HETEE_WUR;
/* Buffer-reusing variants (the enclave serializes every ciphertext of a
 * refresh; a host loads and saves one per layer output):
 * save_size: the exact byte count hetee_ckks_ciphertext_save produces;
 * save_to:   the same bytes written into buf[0..cap) (*len = bytes
 *            written), HETEE_ERR_LIMIT if cap is smaller than save_size;
 * load_into: the same checks and result as hetee_ckks_ciphertext_load, into
 *            an existing object (made by hetee_ckks_ciphertext_new), whose
 *            row storage is reused when large enough, so a loop loading
 *            ciphertexts of one level allocates nothing. On error ct is left
 *            empty (level -1; its storage kept). */
HETEE_API int hetee_ckks_ciphertext_save_size(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                              size_t *len) HETEE_WUR;
/* save_size of every ciphertext fresh from encrypt_sk / encrypt_sk_coeffs
 * at `level` (seeded: c0 in full, c1 as its seed), known before encrypting
 * (the enclave lays out its reply from it). HETEE_ERR_LEVEL outside
 * [0, L]. */
HETEE_API int hetee_ckks_ciphertext_seeded_size(const hetee_ckks_context *ctx, int level, size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_ciphertext_save_to(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                            uint8_t *buf, size_t cap, size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_ciphertext_load_into(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len,
                                              hetee_ckks_ciphertext *ct) HETEE_WUR;
/* The packed form (flag 4, docs/ckks.md "Packed ciphertexts"): each
 * residue mod q_i stored in bitlen(q_i) bits instead of 64 (a level-1
 * ciphertext under q {60, 40, ...}: 22% fewer bytes), seeded or not, for
 * uploads (the providers' encrypted models and inputs). hetee_ckks_ciphertext_load
 * and _load_into take both forms (every unpacked value checked < q_i, the
 * padding bits zero); the same object saves back to the same packed bytes.
 * _size and _to as for the unpacked form. */
HETEE_API int hetee_ckks_ciphertext_save_packed(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                                uint8_t **buf, size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_ciphertext_save_packed_size(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                                     size_t *len) HETEE_WUR;
HETEE_API int hetee_ckks_ciphertext_save_packed_to(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                                   uint8_t *buf, size_t cap, size_t *len) HETEE_WUR;

#ifdef __cplusplus
}
#endif
#endif
