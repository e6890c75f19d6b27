/*
 * infer.c — the host's layer loop of encrypted inference (hetee/engine.h,
 * DESIGN.md "Confidential inference"): per micro-batch and per stage, the
 * host evaluates the linear layer with hemat's coefficient-packed kernel
 * (ct x ct products accumulated in degree 2, encrypted biases added; no
 * key switch at all), hands the degree-2 outputs to the enclave, which
 * decrypts them, applies the stage's non-linear ops and encrypts the next
 * stage's inputs in that stage's layout (refresh); after the last stage the
 * enclave releases each sample's result, sealed to the data provider.
 *
 * The host only ever holds ciphertexts and public layouts. It declares to
 * the enclave what it sends (level, scale, coefficient encoding), and it
 * checks what comes back (count, level, scale, degree) before using it.
 * Counters: products, enclave encryptions / decryptions, bytes and CPU time
 * as the enclave counts them (hetee_enclave_stats), host time.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hemat/engine_internal.h"
#include "host/host_internal.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Enclave counters of the operations the engine uses. */
typedef struct {
  uint64_t cpu_ns, bytes_in, bytes_out;
} enc_counters;

static int enclave_counters(hetee_enclave *e, enc_counters *c) {
  hetee_enclave_op_stats st[32];
  size_t n = 0;
  memset(c, 0, sizeof *c);
  int rc = hetee_enclave_stats(e, st, 32, &n);
  if (rc) return rc;
  for (size_t i = 0; i < n; i++)
    if (st[i].type == HETEE_MSG_REFRESH || st[i].type == HETEE_MSG_RELEASE) {
      c->cpu_ns += st[i].cpu_ns;
      c->bytes_in += st[i].bytes_in;
      c->bytes_out += st[i].bytes_out;
    }
  return 0;
}

static void add_counters(hetee_engine_stage_stats *s, const enc_counters *a, const enc_counters *b) {
  s->enclave_s += (double)(b->cpu_ns - a->cpu_ns) * 1e-9;
  s->bytes_to_enclave += b->bytes_in - a->bytes_in;
  s->bytes_from_enclave += b->bytes_out - a->bytes_out;
}

static void cts_free(hetee_ckks_ciphertext **c, size_t n) {
  if (!c) return;
  for (size_t i = 0; i < n; i++) hetee_ckks_ciphertext_free(c[i]);
  free(c);
}

/* Serializes c[0..n) into blobs (threads: OpenMP). */
static int save_all(const hetee_ckks_context *ctx, hetee_ckks_ciphertext *const *c, size_t n, int threads,
                    uint8_t ***blobs, size_t **lens) {
  *blobs = calloc(n ? n : 1, sizeof **blobs);
  *lens = calloc(n ? n : 1, sizeof **lens);
  if (!*blobs || !*lens) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (size_t i = 0; i < n; i++) {
    int r = hetee_ckks_ciphertext_save(ctx, c[i], &(*blobs)[i], &(*lens)[i]);
    if (r) {
#pragma omp critical
      if (!rc) rc = r;
    }
  }
  return rc ? hetee_error(rc, "cannot serialize a layer output") : 0;
}

/* Loads the enclave's fresh ciphertexts and checks they are what the next
 * stage expects (the host does not take the enclave's word for it either:
 * a wrong count, level or scale would make the kernel fail or misread). */
static int load_fresh(const hetee_ckks_context *ctx, uint8_t *const *blobs, const size_t *lens, size_t n,
                      size_t want, int threads, hetee_ckks_ciphertext ***out) {
  *out = NULL;
  if (n != want)
    return hetee_error(HETEE_ERR_PROTOCOL, "the enclave returned %zu ciphertexts, the next stage needs %zu", n, want);
  hetee_ckks_ciphertext **c = calloc(n ? n : 1, sizeof *c);
  if (!c) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (size_t i = 0; i < n; i++) {
    int r = hetee_ckks_ciphertext_load(ctx, blobs[i], lens[i], &c[i]);
    if (!r) r = engine_check_ct(ctx, c[i], HETEE_ENGINE_IN_SCALE, "refreshed input");
    if (r) {
#pragma omp critical
      if (!rc) rc = r;
    }
  }
  if (rc) {
    cts_free(c, n);
    return engine_wrap(rc, "refreshed ciphertexts refused");
  }
  *out = c;
  return 0;
}

static void blobs_free(uint8_t **b, size_t *l, size_t n) { hetee_enclave_cts_free(b, l, n); }

/* The enclave's refresh after stage s of a micro-batch: into the next
 * stage's inputs, or (last stage) into the release layout at the top level
 * and the release scale. */
static int refresh(hetee_enclave *e, const hetee_ckks_context *ctx, const hetee_engine_refresh *R,
                   uint8_t *const *blobs, const size_t *lens, uint8_t ***fresh, size_t **flens, size_t *nf) {
  hetee_refresh_spec spec;
  memset(&spec, 0, sizeof spec);
  memcpy(spec.shape, R->in_shape, sizeof spec.shape);
  spec.batch = R->batch;
  spec.in_map = R->in_map;
  spec.in_level = HETEE_ENGINE_LEVEL;
  spec.in_scale = HETEE_ENGINE_OUT_SCALE;
  spec.in_encoding = HETEE_ENC_COEFFS;
  spec.nops = R->nops;
  spec.ops = R->ops;
  spec.out_ncts = R->out_ncts;
  spec.out_n = R->out_n;
  spec.out_dst = R->out_dst;
  spec.out_src = R->out_src;
  spec.out_level = R->release ? hetee_ckks_context_max_level(ctx) : HETEE_ENGINE_LEVEL;
  spec.out_scale = R->release ? hetee_engine_release_scale(ctx) : HETEE_ENGINE_IN_SCALE;
  spec.out_encoding = HETEE_ENC_COEFFS;
  return hetee_enclave_refresh(e, &spec, (const uint8_t *const *)blobs, lens, R->in_ncts, fresh, flens, nf);
}

/* Checks the input against the model before anything is sent anywhere. */
static int check_input(const hetee_engine_model *em, const hetee_engine_input *in) {
  const hetee_engine_plan *p = em->plan;
  if (memcmp(hetee_ckks_context_fingerprint(in->ctx), hetee_ckks_context_fingerprint(em->ctx),
             HETEE_CKKS_FINGERPRINT_BYTES))
    return hetee_error(HETEE_ERR_CONTEXT, "input encrypted under other CKKS parameters than the model");
  if (in->micro_batch != p->micro_batch)
    return hetee_error(HETEE_ERR_SHAPE, "input cut in micro-batches of %u, the model's plan uses %u", in->micro_batch,
                       p->micro_batch);
  size_t want;
  int rc = engine_input_cts(p, in->count, &want);
  if (rc) return rc;
  if (want != in->ncts)
    return hetee_error(HETEE_ERR_SHAPE, "input has %zu ciphertexts, the plan needs %zu for %zu samples", in->ncts, want,
                       in->count);
  for (size_t i = 0; i < in->ncts; i++)
    if ((rc = engine_check_ct(em->ctx, in->cts[i], HETEE_ENGINE_IN_SCALE, "input ciphertext"))) return rc;
  return 0;
}

/* One micro-batch of bk samples (first sample index first), inputs in[]. */
static int run_micro_batch(hetee_enclave *e, const hetee_engine_model *em, hetee_ckks_ciphertext *const *in,
                           uint32_t bk, size_t first, uint32_t model_id, const uint8_t sid[16], int threads,
                           hetee_engine_refresh *cache, hetee_engine_results *res, hetee_engine_stats *st) {
  const hetee_engine_plan *p = em->plan;
  const hetee_ckks_context *ctx = em->ctx;
  hetee_ckks_ciphertext **cur = (hetee_ckks_ciphertext **)in, **own = NULL, **outs = NULL;
  size_t nown = 0, nouts = 0;
  uint8_t **blobs = NULL, **fresh = NULL;
  size_t *lens = NULL, *flens = NULL, nblobs = 0, nf = 0;
  hetee_engine_refresh tmp;
  memset(&tmp, 0, sizeof tmp);
  int rc = 0;
  for (size_t s = 0; s < p->nstages && !rc; s++) {
    hetee_engine_stage_stats *ss = &st->stage[s];
    double t0 = now();
    hetee_hemat_layout L;
    if ((rc = hetee_engine_plan_layout(p, s, bk, &L))) break;
    /* refresh maps: cached for full micro-batches, fresh for a short one */
    hetee_engine_refresh *R = &cache[s];
    if (bk != p->micro_batch) {
      hetee_engine_refresh_free(&tmp);
      R = &tmp;
    }
    if (!R->in_map && (rc = hetee_engine_plan_refresh(p, s, bk, R))) break;
    nouts = L.n_out_cts;
    outs = calloc(nouts, sizeof *outs);
    if (!outs) {
      rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
      break;
    }
    for (size_t i = 0; i < nouts && !rc; i++) rc = hetee_ckks_ciphertext_new(ctx, &outs[i]);
    if (!rc)
      rc = hetee_hemat_conv_eval(ctx, &L, (const hetee_ckks_ciphertext *const *)cur,
                                 (const hetee_ckks_ciphertext *const *)em->w[s],
                                 (const hetee_ckks_ciphertext *const *)em->bias[s], threads, outs);
    if (rc) {
      rc = engine_wrap(rc, "stage %zu (%s): host kernel", s, p->st[s].names);
      break;
    }
    ss->products += L.n_products;
    /* this stage's inputs are consumed */
    cts_free(own, nown);
    own = NULL;
    nown = 0;
    cur = NULL;
    nblobs = nouts;
    rc = save_all(ctx, outs, nouts, threads, &blobs, &lens);
    cts_free(outs, nouts);
    outs = NULL;
    if (rc) break;
    double t1 = now();
    ss->host_s += t1 - t0;
    enc_counters c0, c1;
    if ((rc = enclave_counters(e, &c0))) break;
    rc = refresh(e, ctx, R, blobs, lens, &fresh, &flens, &nf);
    if (rc) {
      rc = engine_wrap(rc, "stage %zu (%s): refresh", s, p->st[s].names);
      break;
    }
    ss->enclave_decryptions += R->in_ncts;
    ss->enclave_encryptions += R->out_ncts;
    if (R->release && nf != R->out_ncts) {
      rc = hetee_error(HETEE_ERR_PROTOCOL, "the enclave returned %zu release ciphertexts, expected %u", nf,
                       R->out_ncts);
      break;
    }
    if (R->release) {
      /* one release per sample, from the release ciphertext holding it */
      uint32_t *map = malloc(R->n_final * sizeof *map);
      if (!map) {
        rc = hetee_error(HETEE_ERR_NOMEM, "no memory");
        break;
      }
      hetee_release_spec rs;
      memset(&rs, 0, sizeof rs);
      rs.in_level = hetee_ckks_context_max_level(ctx);
      rs.in_scale = hetee_engine_release_scale(ctx);
      rs.in_encoding = HETEE_ENC_COEFFS;
      rs.map = map;
      rs.n = R->n_final;
      for (uint32_t b = 0; b < bk && !rc; b++) {
        size_t ct = b / R->release_cap, idx = first + b;
        for (size_t j = 0; j < R->n_final; j++) map[j] = (uint32_t)((b % R->release_cap) * R->n_final + j);
        rc = hetee_enclave_release(e, model_id, sid, &rs, (const uint8_t *const *)fresh + ct, flens + ct, 1,
                                   &res->sealed[idx], &res->lens[idx]);
        if (rc) rc = engine_wrap(rc, "release of sample %zu", idx);
        ss->enclave_decryptions++;
      }
      free(map);
      if (rc) break;
    }
    if ((rc = enclave_counters(e, &c1))) break;
    add_counters(ss, &c0, &c1);
    double t2 = now();
    st->wall_enclave_s += t2 - t1;
    blobs_free(blobs, lens, nblobs);
    blobs = NULL;
    lens = NULL;
    nblobs = 0;
    if (!R->release) {
      rc = load_fresh(ctx, fresh, flens, nf, R->out_ncts, threads, &own);
      nown = R->out_ncts;
      blobs_free(fresh, flens, nf);
      fresh = NULL;
      flens = NULL;
      nf = 0;
      if (rc) {
        own = NULL;
        nown = 0;
        break;
      }
      cur = own;
      ss->host_s += now() - t2;
    } else {
      blobs_free(fresh, flens, nf);
      fresh = NULL;
      flens = NULL;
      nf = 0;
    }
    ss->wall_s += now() - t0;
  }
  cts_free(own, nown);
  cts_free(outs, nouts);
  blobs_free(blobs, lens, nblobs);
  blobs_free(fresh, flens, nf);
  hetee_engine_refresh_free(&tmp);
  return rc;
}

int hetee_engine_run(hetee_enclave *e, const hetee_engine_model *em, const hetee_engine_input *in, uint32_t model_id,
                     const uint8_t dp_session[16], int threads, hetee_engine_results *out, hetee_engine_stats *stats) {
  if (!e || !em || !in || !dp_session || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  if (threads < 1 || threads > 64) return hetee_error(HETEE_ERR_INVALID_ARG, "threads %d (1..64)", threads);
  int rc = check_input(em, in);
  if (rc) return rc;
  const hetee_engine_plan *p = em->plan;
  hetee_engine_stats local, *st = stats ? stats : &local;
  memset(st, 0, sizeof *st);
  st->nstages = p->nstages;
  out->sealed = calloc(in->count, sizeof *out->sealed);
  out->lens = calloc(in->count, sizeof *out->lens);
  hetee_engine_refresh *cache = calloc(p->nstages, sizeof *cache);
  if (!out->sealed || !out->lens || !cache) {
    free(cache);
    hetee_engine_results_clear(out);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  out->n = in->count;
  double t0 = now();
  size_t nmb = (in->count + p->micro_batch - 1) / p->micro_batch, off = 0;
  for (size_t k = 0; k < nmb && !rc; k++) {
    uint32_t bk = engine_mb_size(in->count, p->micro_batch, k);
    hetee_hemat_layout L0;
    if ((rc = hetee_engine_plan_layout(p, 0, bk, &L0))) break;
    rc = run_micro_batch(e, em, in->cts + off, bk, k * p->micro_batch, model_id, dp_session, threads, cache, out, st);
    off += L0.n_in_cts;
    st->micro_batches++;
  }
  for (size_t s = 0; s < p->nstages; s++) hetee_engine_refresh_free(&cache[s]);
  free(cache);
  st->total_s = now() - t0;
  if (rc) {
    hetee_engine_results_clear(out);
    return rc;
  }
  st->images = in->count;
  for (size_t s = 0; s < p->nstages; s++) {
    const hetee_engine_stage_stats *ss = &st->stage[s];
    st->products += ss->products;
    st->enclave_encryptions += ss->enclave_encryptions;
    st->enclave_decryptions += ss->enclave_decryptions;
    st->bytes_to_enclave += ss->bytes_to_enclave;
    st->bytes_from_enclave += ss->bytes_from_enclave;
    st->host_s += ss->host_s;
    st->enclave_s += ss->enclave_s;
  }
  st->keyswitches = 0;
  return 0;
}
