/*
 * ntt_tables.c — precomputed twiddle tables of the negacyclic NTT for one
 * prime: powers of the minimal primitive 2N-th root psi in bit-reversed
 * order with their Shoup quotients (64-bit, and 52-bit for the AVX-512 IFMA
 * kernels when q < 2^50). Layout follows Longa & Naehrig 2016 / SEAL.
 */
#include "ring_internal.h"
#include "ring_shoup.h"

#include <stdlib.h>

static void tables_release(hetee_ntt_tables *t) {
  hetee_free(t->fwd);
  hetee_free(t->fwd_shoup);
  hetee_free(t->fwd_shoup52);
  hetee_free(t->inv);
  hetee_free(t->inv_shoup);
  hetee_free(t->inv_shoup52);
  free(t);
}

static uint64_t shoup52(uint64_t w, uint64_t q) {
  return (uint64_t)(((unsigned __int128)w << 52) / q);
}

int hetee_ntt_tables_new(int logn, uint64_t q, hetee_ntt_tables **out) {
  int rc;
  hetee_ntt_tables *t = NULL;
  if (!out)
    return hetee_error(HETEE_ERR_INVALID_ARG, "ntt tables: NULL output");
  *out = NULL;
  if (logn < 1 || logn > HETEE_RING_MAX_LOGN)
    return hetee_error(HETEE_ERR_PARAMS, "ntt tables: logN %d out of [1, %d]", logn, HETEE_RING_MAX_LOGN);
  t = calloc(1, sizeof *t);
  if (!t)
    return hetee_error(HETEE_ERR_NOMEM, "ntt tables: out of memory");
  t->logn = logn;
  t->n = (size_t)1 << logn;
  if ((rc = hetee_modulus_init(&t->mod, q)) < 0)
    goto err;
  if ((rc = hetee_primitive_root_2n(q, logn, &t->psi)) < 0)
    goto err;
  size_t bytes = t->n * sizeof(uint64_t);
  int ifma = t->mod.bits <= HETEE_IFMA_MAX_BITS;
  t->fwd = hetee_alloc(bytes);
  t->fwd_shoup = hetee_alloc(bytes);
  t->inv = hetee_alloc(bytes);
  t->inv_shoup = hetee_alloc(bytes);
  if (ifma) {
    t->fwd_shoup52 = hetee_alloc(bytes);
    t->inv_shoup52 = hetee_alloc(bytes);
  }
  if (!t->fwd || !t->fwd_shoup || !t->inv || !t->inv_shoup ||
      (ifma && (!t->fwd_shoup52 || !t->inv_shoup52))) {
    rc = hetee_error(HETEE_ERR_NOMEM, "ntt tables: out of memory");
    goto err;
  }
  const hetee_modulus *m = &t->mod;
  uint64_t psi_inv = hetee_mod_inv(t->psi, m);
  /* powers psi^j, psi^-j for j in [0, N), then scatter to bit-reversed
   * positions */
  uint64_t pw = 1, pwi = 1;
  for (size_t j = 0; j < t->n; j++) {
    uint32_t k = hetee_bitrev((uint32_t)j, logn);
    t->fwd[k] = pw;
    t->inv[k] = pwi;
    pw = hetee_mod_mul(pw, t->psi, m);
    pwi = hetee_mod_mul(pwi, psi_inv, m);
  }
  for (size_t k = 0; k < t->n; k++) {
    t->fwd_shoup[k] = hetee_shoup_prep(t->fwd[k], q);
    t->inv_shoup[k] = hetee_shoup_prep(t->inv[k], q);
    if (ifma) {
      t->fwd_shoup52[k] = shoup52(t->fwd[k], q);
      t->inv_shoup52[k] = shoup52(t->inv[k], q);
    }
  }
  t->ninv = hetee_mod_inv((uint64_t)t->n % q, m);
  t->ninv_shoup = hetee_shoup_prep(t->ninv, q);
  t->ninv_w = hetee_mod_mul(t->ninv, t->inv[1], m);
  t->ninv_w_shoup = hetee_shoup_prep(t->ninv_w, q);
  if (ifma) {
    t->ninv_shoup52 = shoup52(t->ninv, q);
    t->ninv_w_shoup52 = shoup52(t->ninv_w, q);
  }
  *out = t;
  return 0;
err:
  tables_release(t);
  return rc;
}

void hetee_ntt_tables_free(hetee_ntt_tables *t) {
  if (t)
    tables_release(t);
}

void hetee_ntt_inverse_scaled(const hetee_ntt_tables *t, uint64_t *a, uint64_t c) {
  /* a copy of the tables' header (the twiddle arrays are shared) whose
   * last-stage constants carry c; c is public, so the divisions of the
   * Shoup quotients are fine here */
  hetee_ntt_tables s = *t;
  const uint64_t q = t->mod.q;
  s.ninv = hetee_mod_mul(t->ninv, c, &t->mod);
  s.ninv_shoup = hetee_shoup_prep(s.ninv, q);
  s.ninv_w = hetee_mod_mul(t->ninv_w, c, &t->mod);
  s.ninv_w_shoup = hetee_shoup_prep(s.ninv_w, q);
  if (t->inv_shoup52) {
    s.ninv_shoup52 = shoup52(s.ninv, q);
    s.ninv_w_shoup52 = shoup52(s.ninv_w, q);
  }
  hetee_ntt_inverse(&s, a);
}

size_t hetee_ntt_tables_n(const hetee_ntt_tables *t) { return t->n; }

const hetee_modulus *hetee_ntt_tables_modulus(const hetee_ntt_tables *t) { return &t->mod; }
