/*
 * ckks_arena.h — internal (enclave hot path): a per-thread scratch arena and
 * the fused per-ciphertext operations the enclave's refresh runs.
 *
 * Arena. A thread that owns a block of (locked) memory may hand it to the
 * CKKS layer with ckks_arena_set: until ckks_arena_set(NULL, 0), the
 * temporaries of decryption, decoding, encoding and secret-key encryption on
 * that thread (CRT rows, FFT vectors, rounded coefficients, sampled noise)
 * are carved out of it (stack order) instead of malloc'd, and are NOT wiped
 * when released: the owner wipes the whole block once (the enclave: after
 * every request, refresh.c). Without an arena nothing changes: temporaries
 * are malloc'd and wiped before free, as before. A request that does not
 * fit the arena falls back to malloc (and wiping).
 *
 * Fused operations (no plaintext object, nothing allocated with an arena):
 *  - ckks_decrypt_decode_real: hetee_ckks_decrypt + hetee_ckks_decode_real
 *    at the given scale, the same values (the same residues and the same
 *    CRT / FFT code);
 *  - ckks_encrypt_sk_real_bounded: hetee_ckks_encode_real_bounded +
 *    hetee_ckks_encrypt_sk with fresh seeds; the rounded message goes to
 *    c0 in coefficient form and the noise is added there (to the rounded
 *    integers before the per-prime reduction on the AVX-512 one-word path),
 *    so each row takes one forward NTT instead of two (NTT(m) + NTT(e) =
 *    NTT(m + e) exactly): with the same seeds, the same ciphertext as
 *    encode + encrypt.
 */
#ifndef HETEE_CKKS_ARENA_H
#define HETEE_CKKS_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "hetee/ckks.h"

/* Bytes of arena one thread needs for any of the operations above at the
 * context's top level (a bound: with it, nothing falls back to malloc). */
size_t ckks_arena_bytes(const hetee_ckks_context *ctx);
/* Sets (base != NULL) or clears the calling thread's arena. base must be
 * 64-byte aligned. Returns the most bytes the previous arena had in use at
 * once (what its owner must wipe: [base, base + that)). */
size_t ckks_arena_set(void *base, size_t bytes);

/* Temporaries: from the arena when one is set and has room (not wiped on
 * release: the arena's owner wipes it), else aligned_alloc'd (wiped and
 * freed on release when wipe = 1). Released in reverse order of
 * allocation. NULL on allocation failure. */
void *ckks_tmp_alloc(size_t bytes);
void ckks_tmp_free(void *p, size_t bytes, int wipe);

/* A serialized ciphertext parsed in place (ckks_ciphertext_view): its
 * metadata and where its rows lie in the caller's buffer (little-endian
 * words, any alignment, not yet range-checked). */
typedef struct ckks_ct_view {
  int level, size;
  double scale;
  const uint8_t *c[3]; /* c[0] NULL: c0 is given at listed coefficients (c0at) */
  const uint8_t *c0at; /* NULL, or nc0 little-endian words (not yet range-checked) */
  size_t nc0;
} ckks_ct_view;
/* Parses buf as hetee_ckks_ciphertext_load_into does (header, fingerprint,
 * flags, level, size, scale, body size: the same errors) without copying
 * the rows; returns 1 for a seeded ciphertext (its c1 must be expanded:
 * load it instead). Also takes the form of ckks_ciphertext_save_c0_at
 * (level 0 only, HETEE_ERR_LEVEL otherwise), which no loader takes. */
int ckks_ciphertext_view(const hetee_ckks_context *ctx, const uint8_t *buf, size_t len, ckks_ct_view *v);
/* "c0 at listed coefficients": a level-0 ciphertext whose c0 is sent only
 * at the coefficients idx[0..n) (in that order) that its decryptor reads,
 * in the coefficient domain (one inverse NTT here), c1 (and c2) in full
 * (NTT form). Decrypting it with those indices (ckks_decrypt_coeffs_view)
 * gives the same doubles as the full ciphertext. Format (docs/ckks.md):
 * the ciphertext header with flag 2 | u32 level (0) | u32 size | f64 scale
 * | u32 n | n x u64 c0 coefficients | (size - 1) rows. Bytes: _size. */
int ckks_ciphertext_save_c0_at(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, const uint32_t *idx,
                               size_t n, uint8_t *buf, size_t cap, size_t *len);
typedef struct ckks_coset ckks_coset; /* encoder.c, "decryption of one coset" (below) */
/* The same bytes as hetee_ckks_evaluator_rescale of ct (at level 1) then
 * ckks_ciphertext_save_c0_at, without changing ct: c1 (, c2) rescaled as
 * the evaluator does (2 NTTs each), c0 taken to level 0 in the
 * coefficient domain directly (2 inverse NTTs instead of the rescale's 2
 * and the serializer's third). */
int ckks_ciphertext_save_c0_at_rescaled(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                        const uint32_t *idx, size_t n, uint8_t *buf, size_t cap, size_t *len);
/* The same bytes; when every index lies in the coset cs (cs may be NULL),
 * c0's two rows are taken to the coefficient domain only at that coset
 * (ckks_coset_coeffs: a pass of products, sums of d words and an inverse
 * NTT of size N/d per row, instead of two inverse NTTs of size N). */
int ckks_ciphertext_save_c0_at_rescaled_cs(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct,
                                           const ckks_coset *cs, const uint32_t *idx, size_t n, uint8_t *buf,
                                           size_t cap, size_t *len);
/* Bytes of either form for n listed coefficients (ct at level 0, or at
 * level 1 for _rescaled). */
int ckks_ciphertext_c0_at_size(const hetee_ckks_context *ctx, const hetee_ckks_ciphertext *ct, size_t n, size_t *len);
/* Tables to decrypt only the coefficients r + d t (d = 2^logd, t < N/d)
 * of a ciphertext: per prime one pass of products by public weights, sums
 * of d values and an inverse NTT of size N/d instead of size N (encoder.c,
 * "decryption of one coset"). Immutable once made; shared by threads. */
/* Smallest size of the small transform: N/d >= 2^CKKS_COSET_MIN_LOGS. */
#define CKKS_COSET_MIN_LOGS 4
/* 1 and the largest coset (logd >= 1, N/d >= 2^CKKS_COSET_MIN_LOGS) that
 * holds all n indices (public), or 0 when there is none. */
int ckks_coset_fit(const hetee_ckks_context *ctx, const uint32_t *idx, size_t n, int *logd, uint32_t *r);
int ckks_coset_new(const hetee_ckks_context *ctx, int logd, uint32_t r, ckks_coset **out);
void ckks_coset_free(ckks_coset *c);
/* Makes the coset's products with sk (what a c0-at-coefficients
 * decryption with sk makes on its first use, ckks_decrypt_coeffs_view),
 * e.g. when a model is registered rather than in its first job.
 * HETEE_ERR_NOMEM without memory for them (the decryption then multiplies
 * by the weights as before); nothing to do if they exist. */
int ckks_coset_key(const hetee_ckks_context *ctx, const ckks_coset *cs, const hetee_ckks_secret_key *sk);
/* 1 if every one of the n indices is in the coset (public indices). */
int ckks_coset_holds(const ckks_coset *cs, const uint32_t *idx, size_t n);
/* N/d: the words of scratch ckks_coset_coeffs needs. */
size_t ckks_coset_small_words(const ckks_coset *cs);
/* Prime i's row of a polynomial in NTT form (N words, clobbered) in, its
 * coefficients r + d t (fully reduced, the inverse NTT's) out at those
 * places of row; the other words are left meaningless. small: N/d words
 * of scratch. Branch-free on the values. */
void ckks_coset_coeffs(const hetee_ckks_context *ctx, const ckks_coset *cs, int i, uint64_t *row, uint64_t *small);

/* hetee_ckks_decrypt_coeffs of a view: the rows are read (and checked
 * < q: HETEE_ERR_RANGE otherwise, on the host's public bytes) in the
 * decryption's own pass, the same doubles out as loading + decrypting.
 * A view with c0 at listed coefficients: n must be its nc0 (else
 * HETEE_ERR_FORM), c0's j-th value is added to coefficient idx[j] (each
 * checked < q_0).
 * With cs (may be NULL) and every index in its coset, only that coset's
 * coefficients are computed (the same residues, the same doubles).
 * Returns 1 (nothing done) if the key has no precomputed products. */
int ckks_decrypt_coeffs_view(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const ckks_ct_view *v,
                             double scale, const ckks_coset *cs, const uint32_t *idx, size_t n, double *out);

int ckks_decrypt_decode_real(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                             const hetee_ckks_ciphertext *ct, double scale, double *out, size_t n);
int ckks_encrypt_sk_real_bounded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const double *v,
                                 size_t n, double scale, int level, double vmax, hetee_ckks_ciphertext *out);
/* The same with given seeds (tests: the ciphertext of
 * hetee_ckks_encode_real_bounded + ckks_encrypt_sk_seeded, byte for byte). */
int ckks_encrypt_sk_real_bounded_seeded(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                                        const double *v, size_t n, double scale, int level, double vmax,
                                        const uint8_t eseed[32], const uint8_t aseed[32], hetee_ckks_ciphertext *out);

#endif
