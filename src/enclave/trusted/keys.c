/*
 * keys.c — CKKS key custody inside the enclave: the context from the
 * measured configuration, one-time key generation (secret key, public key,
 * relinearization key, the Galois keys the host names, within the configured
 * limit), the public key bundle and its fingerprint (bound into every
 * evidence), and the secret-key export/import used by sealing. The secret key
 * never leaves except inside the sealed blob.
 *
 * Built without the CKKS layer (HETEE_ENCLAVE_HAVE_CKKS undefined) the
 * enclave publishes an empty bundle and refuses key generation with
 * HETEE_ERR_UNSUPPORTED.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/trusted/enclave_internal.h"

int enclave_set_empty_bundle(enclave *e) {
  free(e->bundle);
  e->bundle = malloc(8);
  if (!e->bundle) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  memcpy(e->bundle, "HTKB", 4);
  hetee_le16(e->bundle + 4, 1);
  hetee_le16(e->bundle + 6, 0);
  e->bundle_len = 8;
  hetee_key_bundle_fingerprint(e->bundle, e->bundle_len, e->bundle_fp);
  return 0;
}

#ifdef HETEE_ENCLAVE_HAVE_CKKS

int enclave_keys_init(enclave *e) {
  hetee_ckks_literal lit;
  memset(&lit, 0, sizeof lit);
  lit.log_n = e->cfg.log_n;
  lit.nq = e->cfg.nq;
  for (int i = 0; i < lit.nq; i++) lit.q_bits[i] = e->cfg.q_bits[i];
  lit.np = e->cfg.np;
  for (int i = 0; i < lit.np; i++) lit.p_bits[i] = e->cfg.p_bits[i];
  lit.default_scale = (double)(1ull << e->cfg.scale_bits);
  int rc = hetee_ckks_context_new(&lit, &e->ctx);
  if (rc) return rc;
  return enclave_set_empty_bundle(e);
}

void enclave_keys_free(enclave *e) {
  enclave_work_free(e);
  hetee_ckks_secret_key_free(e->sk);
  hetee_ckks_context_free(e->ctx);
  free(e->bundle);
  free(e->galois_steps);
  e->sk = NULL;
  e->ctx = NULL;
  e->bundle = NULL;
  e->galois_steps = NULL;
}

static void bundle_item(hetee_wbuf *w, int kind, uint8_t *p, size_t n) {
  hetee_wbuf_u16(w, (uint16_t)kind);
  hetee_wbuf_blob(w, p, n);
  free(p);
}

static int make_bundle(enclave *e, const int *steps, size_t nsteps, hetee_wbuf *w) {
  hetee_ckks_public_key *pk = NULL;
  hetee_ckks_relin_key *rlk = NULL;
  hetee_ckks_galois_keys *gk = NULL;
  uint8_t *p;
  size_t n;
  int rc = hetee_ckks_keygen_public(e->ctx, e->sk, &pk);
  if (!rc) rc = hetee_ckks_keygen_relin(e->ctx, e->sk, &rlk);
  if (!rc && nsteps) rc = hetee_ckks_keygen_galois(e->ctx, e->sk, steps, nsteps, 0, &gk);
  if (rc) goto err;
  hetee_wbuf_put(w, "HTKB", 4);
  hetee_wbuf_u16(w, 1);
  hetee_wbuf_u16(w, (uint16_t)(nsteps ? 4 : 3));
  if ((rc = hetee_ckks_literal_save(e->ctx, &p, &n))) goto err;
  bundle_item(w, HETEE_BUNDLE_PARAMS, p, n);
  if ((rc = hetee_ckks_public_key_save(e->ctx, pk, &p, &n))) goto err;
  bundle_item(w, HETEE_BUNDLE_PUBLIC_KEY, p, n);
  if ((rc = hetee_ckks_relin_key_save(e->ctx, rlk, &p, &n))) goto err;
  bundle_item(w, HETEE_BUNDLE_RELIN_KEY, p, n);
  if (nsteps) {
    if ((rc = hetee_ckks_galois_keys_save(e->ctx, gk, &p, &n))) goto err;
    bundle_item(w, HETEE_BUNDLE_GALOIS_KEYS, p, n);
  }
  if (w->err) rc = hetee_error(HETEE_ERR_NOMEM, "no memory for the key bundle");
err:
  hetee_ckks_public_key_free(pk);
  hetee_ckks_relin_key_free(rlk);
  hetee_ckks_galois_keys_free(gk);
  return rc;
}

int enclave_handle_keygen(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  if (e->have_keys) return hetee_error(HETEE_ERR_STATE, "keys already exist (generated or unsealed)");
  uint32_t n = hetee_rbuf_u32(r);
  if (r->err || (size_t)n * 4 != hetee_rbuf_left(r)) return hetee_error(HETEE_ERR_PROTOCOL, "malformed KEYGEN");
  if (n > (uint32_t)e->cfg.max_galois)
    return hetee_error(HETEE_ERR_LIMIT, "%u rotation keys requested, this enclave allows %d", n, e->cfg.max_galois);
  long slots = (long)hetee_ckks_context_slots(e->ctx);
  int *steps = malloc((n ? n : 1) * sizeof *steps);
  if (!steps) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  for (uint32_t i = 0; i < n; i++) {
    steps[i] = (int32_t)hetee_rbuf_u32(r);
    if (steps[i] == 0 || steps[i] <= -slots || steps[i] >= slots) {
      int s = steps[i];
      free(steps);
      return hetee_error(HETEE_ERR_INVALID_ARG, "rotation step %d outside (-%ld, %ld) or zero", s, slots, slots);
    }
  }
  hetee_wbuf b;
  hetee_wbuf_init(&b);
  int rc = hetee_ckks_keygen_secret(e->ctx, &e->sk);
  if (!rc) rc = make_bundle(e, steps, n, &b);
  if (!rc && b.len > HETEE_FRAME_MAX_BODY / 2) /* must fit a frame, and the sealed state with it */
    rc = hetee_error(HETEE_ERR_LIMIT, "key bundle of %zu bytes is too large: ask for fewer rotation keys", b.len);
  if (rc) {
    hetee_ckks_secret_key_free(e->sk);
    e->sk = NULL;
    hetee_wbuf_free(&b);
    free(steps);
    return rc;
  }
  free(e->bundle);
  e->bundle = hetee_wbuf_take(&b, &e->bundle_len);
  hetee_key_bundle_fingerprint(e->bundle, e->bundle_len, e->bundle_fp);
  free(e->galois_steps);
  e->galois_steps = steps;
  e->n_galois = n;
  e->have_keys = 1;
  hetee_wbuf_put(w, e->bundle_fp, 32);
  return 0;
}

int enclave_keys_export(enclave *e, hetee_wbuf *w) {
  if (!e->have_keys) {
    hetee_wbuf_blob(w, NULL, 0);
    hetee_wbuf_blob(w, e->bundle, e->bundle_len);
    return 0;
  }
  uint8_t *p;
  size_t n;
  int rc = hetee_ckks_secret_key_save(e->ctx, e->sk, &p, &n);
  if (rc) return rc;
  hetee_wbuf_blob(w, p, n);
  sodium_memzero(p, n);
  free(p);
  hetee_wbuf_blob(w, e->bundle, e->bundle_len);
  return 0;
}

int enclave_keys_import(enclave *e, hetee_rbuf *r) {
  size_t skn, bn;
  const uint8_t *skb = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &skn);
  const uint8_t *bb = hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &bn);
  if (r->err) return hetee_error(HETEE_ERR_FORMAT, "sealed keys malformed");
  hetee_ckks_secret_key *sk = NULL;
  if (skn) {
    int rc = hetee_ckks_secret_key_load(e->ctx, skb, skn, &sk);
    if (rc) return rc;
  }
  uint8_t *nb = malloc(bn ? bn : 1);
  if (!nb) {
    hetee_ckks_secret_key_free(sk);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  memcpy(nb, bb, bn);
  hetee_ckks_secret_key_free(e->sk);
  e->sk = sk;
  e->have_keys = sk != NULL;
  free(e->bundle);
  e->bundle = nb;
  e->bundle_len = bn;
  hetee_key_bundle_fingerprint(e->bundle, e->bundle_len, e->bundle_fp);
  return 0;
}

#else /* built without the CKKS layer */

int enclave_keys_init(enclave *e) { return enclave_set_empty_bundle(e); }
void enclave_keys_free(enclave *e) {
  enclave_work_free(e);
  free(e->bundle);
  e->bundle = NULL;
}
int enclave_handle_keygen(enclave *e, hetee_rbuf *r, hetee_wbuf *w) {
  return hetee_error(HETEE_ERR_UNSUPPORTED, "this enclave was built without the CKKS layer");
}
int enclave_keys_export(enclave *e, hetee_wbuf *w) {
  hetee_wbuf_blob(w, NULL, 0);
  hetee_wbuf_blob(w, e->bundle, e->bundle_len);
  return 0;
}
int enclave_keys_import(enclave *e, hetee_rbuf *r) {
  size_t skn, bn;
  (void)hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &skn);
  (void)hetee_rbuf_blob(r, HETEE_FRAME_MAX_BODY, &bn);
  if (r->err || skn) return hetee_error(HETEE_ERR_UNSUPPORTED, "sealed keys need the CKKS layer");
  return 0;
}

#endif
