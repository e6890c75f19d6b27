/*
 * keys.c — CKKS key generation: uniform ternary secret (NTT form over Q*P,
 * wiped on free), public key (b = -a s + e over Q*P, a from a 32-byte seed),
 * relinearization key (key switching from s^2) and Galois keys (from
 * s(X^g), g = 5^k mod 2N for a rotation by k, g = 2N-1 for conjugation).
 * The secret key and every buffer derived from it live in locked, guarded
 * memory (secret_alloc below) and are wiped when freed.
 * Errors are centered binomial (k = 21, sigma ~3.24). Key-switching keys
 * follow keyswitch.c (hybrid, Han–Ki 2020).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"

/* Buffers holding the secret key or values derived from it (s^2, s(X^g),
 * the public key's error) come from sodium_malloc: locked in RAM (mlock, so
 * never written to swap; best effort: over RLIMIT_MEMLOCK the pages stay
 * unlocked), excluded from core dumps where the kernel supports
 * MADV_DONTDUMP, surrounded by guard pages, and wiped by sodium_free.
 * sodium_malloc aligns the end of the block, so the size is rounded up to a
 * multiple of 64 to keep the 64-byte alignment of hetee_alloc that the
 * AVX-512 kernels expect. Zero-filled like hetee_alloc. */
static void *secret_alloc(size_t bytes) {
  size_t r = (bytes + 63) & ~(size_t)63;
  if (r < bytes || sodium_init() < 0) return NULL;
  if (r == 0) r = 64;
  void *p = sodium_malloc(r);
  if (p) memset(p, 0, r);
  return p;
}

static void secret_free(void *p) {
  if (p) sodium_free(p); /* wipes the whole block, then unlocks and unmaps it */
}

void hetee_ckks_secret_key_free(hetee_ckks_secret_key *k) {
  if (!k) return;
  secret_free(k->small);
  secret_free(k->s);
  secret_free(atomic_load(&k->derived));
  sodium_memzero(k, sizeof *k);
  free(k);
}

/* Allocates a secret key for ctx and fills s from k->small. */
int ckks_sk_from_small(const hetee_ckks_context *ctx, hetee_ckks_secret_key *k) {
  int primes[CKKS_MAX_PRIMES];
  for (int i = 0; i < ctx->nt; i++) primes[i] = i;
  ckks_small_to_ntt(ctx, k->small, primes, ctx->nt, k->s);
  return 0;
}

int ckks_sk_alloc(const hetee_ckks_context *ctx, hetee_ckks_secret_key **out) {
  hetee_ckks_secret_key *k = calloc(1, sizeof *k);
  if (!k) return hetee_error(HETEE_ERR_NOMEM, "secret key");
  memcpy(k->fp, ctx->fingerprint, sizeof k->fp);
  k->n = ctx->n;
  k->nt = ctx->nt;
  k->small = secret_alloc(ctx->n);
  k->s = secret_alloc((size_t)ctx->nt * ctx->n * 8);
  if (!k->small || !k->s) {
    hetee_ckks_secret_key_free(k);
    return hetee_error(HETEE_ERR_NOMEM, "secret key");
  }
  *out = k;
  return 0;
}

int hetee_ckks_keygen_secret(const hetee_ckks_context *ctx, hetee_ckks_secret_key **out) {
  if (!ctx || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  hetee_ckks_secret_key *k = NULL;
  uint8_t seed[HETEE_SEED_BYTES];
  hetee_prg prg;
  int rc = ckks_sk_alloc(ctx, &k);
  if (rc) return rc;
  if ((rc = hetee_seed_random(seed))) goto err;
  hetee_prg_init(&prg, seed, 0);
  hetee_sample_ternary(&prg, k->small, ctx->n);
  hetee_prg_wipe(&prg);
  ckks_sk_from_small(ctx, k);
  *out = k;
  k = NULL;
err:
  sodium_memzero(seed, sizeof seed);
  hetee_ckks_secret_key_free(k);
  return rc;
}

void hetee_ckks_public_key_free(hetee_ckks_public_key *k) {
  if (!k) return;
  hetee_free(k->a);
  hetee_free(k->b);
  free(k);
}

int ckks_pk_alloc(const hetee_ckks_context *ctx, hetee_ckks_public_key **out) {
  hetee_ckks_public_key *k = calloc(1, sizeof *k);
  if (!k) return hetee_error(HETEE_ERR_NOMEM, "public key");
  memcpy(k->fp, ctx->fingerprint, sizeof k->fp);
  k->a = hetee_alloc((size_t)ctx->nt * ctx->n * 8);
  k->b = hetee_alloc((size_t)ctx->nt * ctx->n * 8);
  if (!k->a || !k->b) {
    hetee_ckks_public_key_free(k);
    return hetee_error(HETEE_ERR_NOMEM, "public key");
  }
  *out = k;
  return 0;
}

void ckks_pk_expand(const hetee_ckks_context *ctx, hetee_ckks_public_key *k) {
  int primes[CKKS_MAX_PRIMES];
  for (int i = 0; i < ctx->nt; i++) primes[i] = i;
  ckks_expand_uniform(ctx, k->seed, CKKS_DOMAIN_PK_A, primes, ctx->nt, k->a);
}

int hetee_ckks_keygen_public(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                             hetee_ckks_public_key **out) {
  if (!ctx || !sk || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  int rc = ckks_check_ctx(ctx, sk->fp, "secret key");
  if (rc) return rc;
  size_t n = ctx->n;
  hetee_ckks_public_key *k = NULL;
  uint8_t eseed[HETEE_SEED_BYTES];
  hetee_prg prg;
  int8_t *e = secret_alloc(n);
  uint64_t *ent = secret_alloc((size_t)ctx->nt * n * 8);
  int primes[CKKS_MAX_PRIMES];
  memset(&prg, 0, sizeof prg);
  for (int i = 0; i < ctx->nt; i++) primes[i] = i;
  if (!e || !ent) {
    rc = hetee_error(HETEE_ERR_NOMEM, "public key buffers");
    goto err;
  }
  if ((rc = ckks_pk_alloc(ctx, &k))) goto err;
  if ((rc = hetee_seed_random(k->seed)) || (rc = hetee_seed_random(eseed))) goto err;
  ckks_pk_expand(ctx, k);
  hetee_prg_init(&prg, eseed, 0);
  hetee_sample_cbd(&prg, e, n);
  ckks_small_to_ntt(ctx, e, primes, ctx->nt, ent);
  for (int i = 0; i < ctx->nt; i++) {
    const hetee_modulus *m = &ctx->mod[i];
    const uint64_t *a = k->a + (size_t)i * n, *s = sk->s + (size_t)i * n, *er = ent + (size_t)i * n;
    uint64_t *b = k->b + (size_t)i * n;
    for (size_t c = 0; c < n; c++) b[c] = hetee_mod_sub(er[c], hetee_mod_mul(a[c], s[c], m), m->q);
  }
  *out = k;
  k = NULL;
err:
  hetee_prg_wipe(&prg);
  sodium_memzero(eseed, sizeof eseed);
  secret_free(e);
  secret_free(ent);
  hetee_ckks_public_key_free(k);
  return rc;
}

void hetee_ckks_relin_key_free(hetee_ckks_relin_key *k) {
  if (!k) return;
  ckks_ksk_free(&k->k);
  free(k);
}

int hetee_ckks_keygen_relin(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk,
                            hetee_ckks_relin_key **out) {
  if (!ctx || !sk || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  int rc = ckks_check_ctx(ctx, sk->fp, "secret key");
  if (rc) return rc;
  size_t words = (size_t)ctx->nt * ctx->n;
  hetee_ckks_relin_key *k = calloc(1, sizeof *k);
  uint64_t *s2 = secret_alloc(words * 8);
  if (!k || !s2) {
    rc = hetee_error(HETEE_ERR_NOMEM, "relinearization key");
    goto err;
  }
  memcpy(k->fp, ctx->fingerprint, sizeof k->fp);
  for (int i = 0; i < ctx->nt; i++)
    hetee_vec_mul(&ctx->mod[i], sk->s + (size_t)i * ctx->n, sk->s + (size_t)i * ctx->n, s2 + (size_t)i * ctx->n,
                  ctx->n);
  if ((rc = ckks_ksk_gen(ctx, sk, s2, 0, &k->k))) goto err;
  *out = k;
  k = NULL;
err:
  secret_free(s2);
  hetee_ckks_relin_key_free(k);
  return rc;
}

void hetee_ckks_galois_keys_free(hetee_ckks_galois_keys *k) {
  if (!k) return;
  for (size_t i = 0; i < k->count; i++) ckks_ksk_free(&k->keys[i]);
  free(k->keys);
  free(k);
}

/* Galois element of a left rotation by `step` slots: 5^(step mod N/2) mod 2N. */
uint64_t ckks_galois_elt(size_t n, int step) {
  size_t slots = n / 2;
  long long s = step % (long long)slots;
  if (s < 0) s += (long long)slots;
  uint64_t m = 2 * n, g = 1, b = 5;
  for (unsigned long long e = (unsigned long long)s; e; e >>= 1) {
    if (e & 1) g = g * b % m;
    b = b * b % m;
  }
  return g;
}

const ckks_ksk *ckks_galois_find(const hetee_ckks_galois_keys *gk, uint64_t g) {
  size_t lo = 0, hi = gk->count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (gk->keys[mid].galois == g) return &gk->keys[mid];
    if (gk->keys[mid].galois < g) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

int hetee_ckks_keygen_galois(const hetee_ckks_context *ctx, const hetee_ckks_secret_key *sk, const int *steps,
                             size_t nsteps, int conjugate, hetee_ckks_galois_keys **out) {
  if (!ctx || !sk || !out || (!steps && nsteps)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *out = NULL;
  int rc = ckks_check_ctx(ctx, sk->fp, "secret key");
  if (rc) return rc;
  size_t n = ctx->n, words = (size_t)ctx->nt * n;
  uint64_t *elts = malloc((nsteps + 1) * sizeof(uint64_t));
  uint32_t *perm = malloc(n * sizeof(uint32_t));
  uint64_t *sg = secret_alloc(words * 8);
  hetee_ckks_galois_keys *k = calloc(1, sizeof *k);
  if (!elts || !perm || !sg || !k) {
    rc = hetee_error(HETEE_ERR_NOMEM, "Galois keys");
    goto err;
  }
  memcpy(k->fp, ctx->fingerprint, sizeof k->fp);
  k->n = n;
  size_t ne = 0;
  for (size_t i = 0; i < nsteps; i++) {
    uint64_t g = ckks_galois_elt(n, steps[i]);
    if (g != 1) elts[ne++] = g;
  }
  if (conjugate) elts[ne++] = 2 * n - 1;
  qsort(elts, ne, sizeof *elts, cmp_u64);
  size_t u = 0;
  for (size_t i = 0; i < ne; i++)
    if (u == 0 || elts[u - 1] != elts[i]) elts[u++] = elts[i];
  k->keys = calloc(u ? u : 1, sizeof(ckks_ksk));
  if (!k->keys) {
    rc = hetee_error(HETEE_ERR_NOMEM, "Galois keys");
    goto err;
  }
  for (size_t e = 0; e < u; e++) {
    if ((rc = hetee_galois_perm_ntt(ctx->log_n, elts[e], perm))) goto err;
    for (int i = 0; i < ctx->nt; i++) hetee_vec_permute(perm, sk->s + (size_t)i * n, sg + (size_t)i * n, n);
    k->count = e + 1;
    if ((rc = ckks_ksk_gen(ctx, sk, sg, elts[e], &k->keys[e]))) goto err;
    if ((rc = ckks_ksk_set_perm(ctx, &k->keys[e]))) goto err;
  }
  *out = k;
  k = NULL;
err:
  free(elts);
  free(perm);
  secret_free(sg);
  hetee_ckks_galois_keys_free(k);
  return rc;
}

int ckks_ksk_set_perm(const hetee_ckks_context *ctx, ckks_ksk *k) {
  k->perm = malloc(ctx->n * sizeof(uint32_t));
  if (!k->perm) return hetee_error(HETEE_ERR_NOMEM, "Galois permutation");
  return hetee_galois_perm_ntt(ctx->log_n, k->galois, k->perm);
}

int hetee_ckks_galois_keys_has_step(const hetee_ckks_galois_keys *gk, int step) {
  if (!gk) return 0;
  uint64_t g = ckks_galois_elt(gk->n, step);
  if (g == 1) return 1; /* rotation by 0 (mod N/2) needs no key */
  return ckks_galois_find(gk, g) != NULL;
}
