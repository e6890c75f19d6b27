/*
 * refine_plan.c — refining (issue #11): the plan (forward, weight-gradient
 * and transposed layouts per dense layer), plain weights taken from a
 * hetee_nn model, the data order, and the plaintext twin of the whole
 * training step (the reference the encrypted refining is tested against).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hemat/refine_internal.h"

static int act_of(hetee_nn_kind k) {
  switch (k) {
    case HETEE_NN_RELU: return HETEE_REFINE_ACT_RELU;
    case HETEE_NN_TANH: return HETEE_REFINE_ACT_TANH;
    case HETEE_NN_SIGMOID: return HETEE_REFINE_ACT_SIGMOID;
    default: return -1;
  }
}

void hetee_refine_weights_clear(hetee_refine_weights *w) {
  if (!w) return;
  for (int l = 0; l < HETEE_REFINE_MAX_LAYERS; l++) {
    free(w->w[l]);
    free(w->b[l]);
    free(w->vw[l]);
    free(w->vb[l]);
  }
  memset(w, 0, sizeof *w);
}

static int weights_alloc(hetee_refine_weights *w) {
  for (int l = 0; l < w->nl; l++) {
    size_t mk = (size_t)w->m[l] * (size_t)w->k[l];
    w->w[l] = calloc(mk, sizeof(float));
    w->b[l] = calloc((size_t)w->m[l], sizeof(float));
    w->vw[l] = calloc(mk, sizeof(float));
    w->vb[l] = calloc((size_t)w->m[l], sizeof(float));
    if (!w->w[l] || !w->b[l] || !w->vw[l] || !w->vb[l]) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  return 0;
}

int hetee_refine_weights_from_model(const hetee_nn_model *m, hetee_refine_weights *out) {
  if (!m || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  memset(out, 0, sizeof *out);
  hetee_refine_weights w;
  memset(&w, 0, sizeof w);
  size_t nlay = hetee_nn_model_num_layers(m);
  const float *src_w[HETEE_REFINE_MAX_LAYERS], *src_b[HETEE_REFINE_MAX_LAYERS];
  int prev = 0; /* 0: start, 1: after dense, 2: after activation, 3: after softmax */
  for (size_t i = 0; i < nlay; i++) {
    hetee_nn_layer_info li;
    if (hetee_nn_model_layer(m, i, &li)) return hetee_error(HETEE_ERR_INVALID_ARG, "bad layer %zu", i);
    if (li.n_inputs != 1 || li.inputs[0] != (int)i - 1)
      return hetee_error(HETEE_ERR_UNSUPPORTED, "node '%s' (%s): refining runs chains of single-input layers",
                         li.name, hetee_nn_kind_name(li.kind));
    if (prev == 3) return hetee_error(HETEE_ERR_UNSUPPORTED, "node '%s': softmax must be last", li.name);
    if (li.kind == HETEE_NN_RESHAPE && prev == 0) continue;
    if (li.kind == HETEE_NN_DENSE) {
      if (w.nl == HETEE_REFINE_MAX_LAYERS) return hetee_error(HETEE_ERR_LIMIT, "more than %d dense layers", HETEE_REFINE_MAX_LAYERS);
      size_t in = 1, outd = 1;
      for (size_t d = 0; d < li.in_rank; d++) in *= li.in_dims[d];
      for (size_t d = 0; d < li.out_rank; d++) outd *= li.out_dims[d];
      if (li.weight_len != in * outd || in > 65536 || outd > 65536)
        return hetee_error(HETEE_ERR_SHAPE, "node '%s': dense weight size", li.name);
      if (w.nl > 0 && (size_t)w.m[w.nl - 1] != in) return hetee_error(HETEE_ERR_SHAPE, "node '%s': chain", li.name);
      w.k[w.nl] = (int)in;
      w.m[w.nl] = (int)outd;
      w.act[w.nl] = HETEE_REFINE_ACT_NONE;
      src_w[w.nl] = li.weight;
      src_b[w.nl] = li.bias && li.bias_len == outd ? li.bias : NULL;
      w.nl++;
      prev = 1;
      continue;
    }
    if (act_of(li.kind) >= 0 && prev == 1) {
      w.act[w.nl - 1] = act_of(li.kind);
      prev = 2;
      continue;
    }
    if (li.kind == HETEE_NN_SOFTMAX && prev >= 1) {
      prev = 3;
      continue;
    }
    return hetee_error(HETEE_ERR_UNSUPPORTED,
                       "node '%s' (%s): refining supports dense layers with ReLU / tanh / sigmoid only%s", li.name,
                       hetee_nn_kind_name(li.kind),
                       li.kind == HETEE_NN_CONV ? " (convolutions are not refined)" : "");
  }
  if (w.nl == 0) return hetee_error(HETEE_ERR_UNSUPPORTED, "model has no dense layer");
  if (w.act[w.nl - 1] != HETEE_REFINE_ACT_NONE)
    return hetee_error(HETEE_ERR_UNSUPPORTED, "the last dense layer must give the logits (no activation after it)");
  int rc = weights_alloc(&w);
  if (rc) {
    hetee_refine_weights_clear(&w);
    return rc;
  }
  for (int l = 0; l < w.nl; l++) {
    memcpy(w.w[l], src_w[l], (size_t)w.m[l] * (size_t)w.k[l] * sizeof(float));
    if (src_b[l]) memcpy(w.b[l], src_b[l], (size_t)w.m[l] * sizeof(float));
  }
  *out = w;
  return 0;
}

int hetee_refine_weights_copy(const hetee_refine_weights *src, hetee_refine_weights *dst) {
  memset(dst, 0, sizeof *dst);
  dst->nl = src->nl;
  memcpy(dst->k, src->k, sizeof dst->k);
  memcpy(dst->m, src->m, sizeof dst->m);
  memcpy(dst->act, src->act, sizeof dst->act);
  int rc = weights_alloc(dst);
  if (rc) {
    hetee_refine_weights_clear(dst);
    return rc;
  }
  for (int l = 0; l < src->nl; l++) {
    size_t mk = (size_t)src->m[l] * (size_t)src->k[l];
    memcpy(dst->w[l], src->w[l], mk * sizeof(float));
    memcpy(dst->b[l], src->b[l], (size_t)src->m[l] * sizeof(float));
    if (src->vw[l]) memcpy(dst->vw[l], src->vw[l], mk * sizeof(float));
    if (src->vb[l]) memcpy(dst->vb[l], src->vb[l], (size_t)src->m[l] * sizeof(float));
  }
  return 0;
}

/* The weight-gradient packing: enumerate (cb, mb) with one "sample", cost
 * = weight polynomials (layer inputs: enclave-encrypted, or DP-encrypted for
 * layer 0) + delta ciphertexts (enclave) + products + the output (the
 * gradient: degree-2 ciphertexts the enclave receives and decrypts once per
 * update, i.e. amortised over `accumulate` steps; 259 us each measured in
 * the enclave process, transfer included). */
static int choose_grad(const hetee_hemat_shape *s, size_t n, int from_client, uint32_t accumulate,
                       hetee_hemat_layout *out) {
  const double t_prod = 46e-6, t_enc = 295e-6 * 4, t_cli = 775e-6, t_dec = 259e-6 * 4 / (double)accumulate;
  double best = INFINITY;
  hetee_hemat_pack bp = {0, 0, 0, 0};
  for (int cb = 1; cb <= s->c; cb++) {
    for (int mb = 1; mb <= s->co; mb++) {
      hetee_hemat_pack p = {cb, mb, 1, 0};
      hetee_hemat_layout L;
      hetee_error_clear();
      if (hetee_hemat_layout_init(s, &p, 1, n, &L)) break; /* T grows with mb */
      double cost = (double)L.n_w_cts * (from_client ? t_cli : t_enc) + (double)L.n_in_cts * t_enc +
                    (double)L.n_products * t_prod + (double)L.n_out_cts * t_dec;
      if (cost < best) {
        best = cost;
        bp = p;
      }
    }
  }
  hetee_error_clear();
  if (bp.cb == 0) return hetee_error(HETEE_ERR_SHAPE, "no weight-gradient packing fits N = %zu", n);
  return hetee_hemat_layout_init(s, &bp, 1, n, out);
}

/* The weight of the trusted side's seconds against the host's in the
 * forward packing (hemat's default is 4): the enclave is the scarce
 * resource, and in refining each output ciphertext it decrypts is also a
 * degree-2 transfer of 2 x 196 KiB into it. 16 halves the frozen layer 0
 * of mlp_small's output ciphertexts at B = 64 (32 -> 16) with fewer products
 * (800 -> 784); the data provider encrypts 49 inputs instead of 25. */
#ifndef REFINE_ENCLAVE_WEIGHT
#define REFINE_ENCLAVE_WEIGHT 16.0
#endif

/* The forward packing: hemat's planner; for a layer that trains, its weight
 * ciphertexts are also decrypted and re-encrypted by the trusted side once
 * per update, so budgets of weight ciphertexts are tried and that cost,
 * amortised over `accumulate` steps, is added. */
static int choose_forward(const hetee_hemat_shape *s, const hetee_refine_config *cfg, size_t n, int from_client,
                          int trains, hetee_hemat_pack *out) {
  hetee_hemat_costs c;
  hetee_hemat_costs_default(&c);
  c.enclave_weight = REFINE_ENCLAVE_WEIGHT;
  double cost;
  int rc = hetee_hemat_choose(s, cfg->batch, n, from_client, &c, out, &cost);
  if (rc || !trains) return rc;
  hetee_hemat_layout L;
  if ((rc = hetee_hemat_layout_init(s, out, cfg->batch, n, &L))) return rc;
  const double per_wct = c.enclave_weight * (c.t_enclave_dec + c.t_enclave_enc) / (double)cfg->accumulate;
  double best = cost + per_wct * (double)L.n_w_cts;
  for (size_t budget = L.n_w_cts / 2; budget >= 8; budget /= 2) {
    hetee_hemat_pack p;
    c.max_weight_cts = budget;
    hetee_error_clear();
    if (hetee_hemat_choose(s, cfg->batch, n, from_client, &c, &p, &cost)) break;
    if (hetee_hemat_layout_init(s, &p, cfg->batch, n, &L)) break;
    double tot = cost + per_wct * (double)L.n_w_cts;
    if (tot < best) {
      best = tot;
      *out = p;
    }
  }
  hetee_error_clear();
  return 0;
}

int hetee_refine_plan_build(const hetee_refine_weights *w, const hetee_refine_config *cfg, size_t n,
                            hetee_refine_plan *out) {
  if (!w || !cfg || !out || w->nl < 1) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (cfg->batch < 1 || cfg->batch > 1024) return hetee_error(HETEE_ERR_INVALID_ARG, "batch %u outside [1, 1024]", cfg->batch);
  if (cfg->accumulate < 1 || cfg->accumulate > 1024) return hetee_error(HETEE_ERR_INVALID_ARG, "accumulate outside [1, 1024]");
  if (cfg->loss != HETEE_REFINE_LOSS_XENT && cfg->loss != HETEE_REFINE_LOSS_MSE)
    return hetee_error(HETEE_ERR_INVALID_ARG, "unknown loss");
  if (!(cfg->lr > 0 && cfg->lr < 10) || !(cfg->momentum >= 0 && cfg->momentum < 1) ||
      !(cfg->weight_decay >= 0 && cfg->weight_decay < 1))
    return hetee_error(HETEE_ERR_INVALID_ARG, "hyper-parameters out of range");
  if (cfg->train_layers < 0 || cfg->train_layers > w->nl)
    return hetee_error(HETEE_ERR_INVALID_ARG, "train_layers %d outside [0, %d]", cfg->train_layers, w->nl);
  memset(out, 0, sizeof *out);
  out->cfg = *cfg;
  out->n = n ? n : 8192;
  out->nl = w->nl;
  out->classes = w->m[w->nl - 1];
  out->first_train = cfg->train_layers == 0 ? 0 : w->nl - cfg->train_layers;
  if ((size_t)cfg->batch * (size_t)out->classes > out->n)
    return hetee_error(HETEE_ERR_LIMIT, "batch x classes above N (labels ciphertext)");
  for (int l = 0; l < w->nl; l++) {
    hetee_refine_layer *Ly = &out->L[l];
    Ly->k = w->k[l];
    Ly->m = w->m[l];
    Ly->act = w->act[l];
    Ly->trains = l >= out->first_train;
    Ly->has_back = l > out->first_train;
    Ly->need_z = l >= out->first_train && l < w->nl - 1;
    hetee_hemat_shape fs = {Ly->k, 1, 1, Ly->m, 1, 1, 1, 1};
    hetee_hemat_pack pk;
    int rc = choose_forward(&fs, cfg, out->n, l == 0, Ly->trains, &pk);
    if (!rc) rc = hetee_hemat_layout_init(&fs, &pk, cfg->batch, out->n, &Ly->F);
    if (rc) return rc;
    if (Ly->trains) {
      hetee_hemat_shape gs = {(int)cfg->batch, 1, Ly->m, Ly->k + 1, 1, 1, 1, 1};
      rc = choose_grad(&gs, out->n, l == 0, cfg->accumulate, &Ly->G);
      if (rc) return rc;
    }
    if (Ly->has_back) {
      hetee_hemat_shape ts = {Ly->m, 1, 1, Ly->k, 1, 1, 1, 1};
      rc = hetee_hemat_choose(&ts, cfg->batch, out->n, 0, NULL, &pk, NULL);
      if (!rc) rc = hetee_hemat_layout_init(&ts, &pk, cfg->batch, out->n, &Ly->T);
      if (rc) return rc;
    }
  }
  return 0;
}

static void print_layout(FILE *f, const char *what, const hetee_hemat_layout *L) {
  fprintf(f, "    %-4s c=%d w=%d co=%d batch=%u  cb=%d mb=%d nimg=%d  in %zu, weight %zu, out %zu cts, %zu products\n",
          what, L->shape.c, L->shape.w, L->shape.co, L->batch, L->pack.cb, L->pack.mb, L->pack.nimg, L->n_in_cts,
          L->n_w_cts, L->n_out_cts, L->n_products);
}

void hetee_refine_plan_print(const hetee_refine_plan *p, void *file) {
  FILE *f = file ? (FILE *)file : stdout;
  fprintf(f, "refine plan: batch %u, accumulate %u, %d dense layers, training %d..%d, N %zu\n", p->cfg.batch,
          p->cfg.accumulate, p->nl, p->first_train, p->nl - 1, p->n);
  for (int l = 0; l < p->nl; l++) {
    const hetee_refine_layer *L = &p->L[l];
    fprintf(f, "  layer %d: dense %d -> %d, act %d, %s\n", l, L->k, L->m, L->act, L->trains ? "trains" : "frozen");
    print_layout(f, "F", &L->F);
    if (L->trains) print_layout(f, "G", &L->G);
    if (L->has_back) print_layout(f, "T", &L->T);
  }
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void hetee_refine_order(uint64_t seed, uint32_t epoch, uint32_t count, uint32_t *perm) {
  uint64_t s = seed ^ (0x5851f42d4c957f2dull * (uint64_t)(epoch + 1));
  for (uint32_t i = 0; i < count; i++) perm[i] = i;
  for (uint32_t i = count; i > 1; i--) {
    uint32_t j = (uint32_t)(splitmix(&s) % i);
    uint32_t t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
}

static double act_f(int a, double z) {
  switch (a) {
    case HETEE_REFINE_ACT_RELU: return z > 0 ? z : 0;
    case HETEE_REFINE_ACT_TANH: return tanh(z);
    case HETEE_REFINE_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    default: return z;
  }
}

static double act_d(int a, double z) {
  switch (a) {
    case HETEE_REFINE_ACT_RELU: return z > 0 ? 1.0 : 0.0;
    case HETEE_REFINE_ACT_TANH: {
      double t = tanh(z);
      return 1 - t * t;
    }
    case HETEE_REFINE_ACT_SIGMOID: {
      double s = 1.0 / (1.0 + exp(-z));
      return s * (1 - s);
    }
    default: return 1.0;
  }
}

/* exported for the trusted side (same formulas on both sides) */
double hetee_refine_act_f(int a, double z) { return act_f(a, z); }
double hetee_refine_act_d(int a, double z) { return act_d(a, z); }

int hetee_refine_plain_forward(const hetee_refine_weights *w, const float *x, size_t count, float *y) {
  int maxw = 0;
  for (int l = 0; l < w->nl; l++) maxw = w->k[l] > maxw ? w->k[l] : maxw, maxw = w->m[l] > maxw ? w->m[l] : maxw;
  double *a = malloc((size_t)maxw * sizeof *a), *b = malloc((size_t)maxw * sizeof *b);
  if (!a || !b) {
    free(a);
    free(b);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  for (size_t s = 0; s < count; s++) {
    for (int j = 0; j < w->k[0]; j++) a[j] = x[s * (size_t)w->k[0] + (size_t)j];
    for (int l = 0; l < w->nl; l++) {
      for (int i = 0; i < w->m[l]; i++) {
        const float *row = w->w[l] + (size_t)i * (size_t)w->k[l];
        double acc = w->b[l][i];
        for (int j = 0; j < w->k[l]; j++) acc += (double)row[j] * a[j];
        b[i] = act_f(w->act[l], acc);
      }
      double *t = a;
      a = b;
      b = t;
    }
    int c = w->m[w->nl - 1];
    for (int i = 0; i < c; i++) y[s * (size_t)c + (size_t)i] = (float)a[i];
  }
  free(a);
  free(b);
  return 0;
}

double hetee_refine_plain_accuracy(const hetee_refine_weights *w, const float *x, const float *labels, size_t count) {
  int c = w->m[w->nl - 1];
  size_t ok = 0, chunk = 1000;
  float *y = malloc(chunk * (size_t)c * sizeof *y);
  if (!y) return -1;
  for (size_t s0 = 0; s0 < count; s0 += chunk) {
    size_t nn = count - s0 < chunk ? count - s0 : chunk;
    if (hetee_refine_plain_forward(w, x + s0 * (size_t)w->k[0], nn, y)) {
      free(y);
      return -1;
    }
    for (size_t s = 0; s < nn; s++) {
      int best = 0;
      for (int i = 1; i < c; i++)
        if (y[s * (size_t)c + (size_t)i] > y[s * (size_t)c + (size_t)best]) best = i;
      ok += best == (int)labels[s0 + s];
    }
  }
  free(y);
  return (double)ok / (double)count;
}

int hetee_refine_plain_init(hetee_refine_plain *t, const hetee_refine_plan *p, hetee_refine_weights *w) {
  memset(t, 0, sizeof *t);
  t->plan = p;
  t->w = w;
  for (int l = p->first_train; l < p->nl; l++) {
    t->gacc[l] = calloc((size_t)p->L[l].m * (size_t)(p->L[l].k + 1), sizeof(double));
    if (!t->gacc[l]) {
      hetee_refine_plain_clear(t);
      return hetee_error(HETEE_ERR_NOMEM, "no memory");
    }
  }
  return 0;
}

void hetee_refine_plain_clear(hetee_refine_plain *t) {
  for (int l = 0; l < HETEE_REFINE_MAX_LAYERS; l++) free(t->gacc[l]);
  memset(t, 0, sizeof *t);
}

/* Loss gradient (sum form: the division by the number of samples happens at
 * the update): cross-entropy softmax(z) - onehot, MSE 2 (z - onehot). */
void hetee_refine_loss_grad(int loss, const double *z, int c, int label, double *d) {
  if (loss == HETEE_REFINE_LOSS_MSE) {
    for (int i = 0; i < c; i++) d[i] = 2.0 * (z[i] - (i == label ? 1.0 : 0.0));
    return;
  }
  double mx = z[0], sum = 0;
  for (int i = 1; i < c; i++) mx = z[i] > mx ? z[i] : mx;
  for (int i = 0; i < c; i++) sum += exp(z[i] - mx);
  for (int i = 0; i < c; i++) d[i] = exp(z[i] - mx) / sum - (i == label ? 1.0 : 0.0);
}

/* The first largest of z[0..c-1]. z is secret in the enclave (decrypted
 * logits, label rows): the scan keeps the running maximum itself, selected
 * with masks, reads every entry once in order and never indexes by the
 * position found so far. */
int refine_argmax(const double *z, int c) {
  uint32_t am = 0;
  uint64_t best;
  memcpy(&best, &z[0], sizeof best);
  for (int i = 1; i < c; i++) {
    uint64_t zi;
    double bd;
    memcpy(&zi, &z[i], sizeof zi);
    memcpy(&bd, &best, sizeof bd);
    uint64_t gt = (uint64_t)0 - (uint64_t)(z[i] > bd);
    best = (best & ~gt) | (zi & gt);
    am = (am & ~(uint32_t)gt) | ((uint32_t)i & (uint32_t)gt);
  }
  return (int)am;
}

double refine_sample_loss(int loss, const double *z, int c, int label, int *correct) {
  *correct = refine_argmax(z, c) == label;
  if (loss == HETEE_REFINE_LOSS_MSE) {
    double s = 0;
    for (int i = 0; i < c; i++) {
      double e = z[i] - (i == label ? 1.0 : 0.0);
      s += e * e;
    }
    return s;
  }
  double mx = z[0], sum = 0, zl = 0;
  for (int i = 1; i < c; i++) mx = z[i] > mx ? z[i] : mx;
  for (int i = 0; i < c; i++) {
    sum += exp(z[i] - mx);
    zl += i == label ? z[i] : 0.0;
  }
  return log(sum) + mx - zl;
}

int hetee_refine_plain_eval(const hetee_refine_plan *p, const hetee_refine_weights *w, const float *x,
                            const float *labels, size_t count, double *loss, double *accuracy) {
  if (!p || !w || !x || !labels || !loss || !accuracy || !count) return hetee_error(HETEE_ERR_INVALID_ARG, "bad argument");
  int c = p->classes;
  float *y = malloc(count * (size_t)c * sizeof *y);
  double *z = malloc((size_t)c * sizeof *z);
  if (!y || !z) {
    free(y);
    free(z);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  int rc = hetee_refine_plain_forward(w, x, count, y);
  double ls = 0;
  size_t ok = 0;
  for (size_t s = 0; s < count && !rc; s++) {
    for (int i = 0; i < c; i++) z[i] = y[s * (size_t)c + (size_t)i];
    int cor = 0;
    ls += refine_sample_loss(p->cfg.loss, z, c, (int)labels[s], &cor);
    ok += (size_t)cor;
  }
  free(y);
  free(z);
  if (rc) return rc;
  *loss = ls / (double)count;
  *accuracy = (double)ok / (double)count;
  return 0;
}

/* SGD as torch.optim.SGD: d = g + wd p; v = mu v + d (v = d the first time,
 * the same with v starting at 0); p -= lr v (v = d without momentum). */
void hetee_refine_sgd(const hetee_refine_config *c, double g, float *p, float *v) {
  double d = g + c->weight_decay * (double)*p;
  double vv = c->momentum > 0 ? c->momentum * (double)*v + d : d;
  *v = (float)vv;
  *p = (float)((double)*p - c->lr * vv);
}

static int sched_check(const hetee_refine_schedule *s, double lr) {
  switch (s->kind) {
  case HETEE_REFINE_LR_CONSTANT: return 0;
  case HETEE_REFINE_LR_STEP:
    if (s->step_every < 1 || !(s->gamma > 0 && s->gamma <= 1))
      return hetee_error(HETEE_ERR_INVALID_ARG, "step schedule: every %u updates x %g (every >= 1, gamma in (0, 1])",
                         s->step_every, s->gamma);
    return 0;
  case HETEE_REFINE_LR_COSINE:
    if (s->total < 1 || !(s->lr_min >= 0 && s->lr_min <= lr))
      return hetee_error(HETEE_ERR_INVALID_ARG, "cosine schedule: over %u updates to %g (total >= 1, floor in [0, lr])",
                         s->total, s->lr_min);
    return 0;
  default: return hetee_error(HETEE_ERR_INVALID_ARG, "unknown learning-rate schedule %d", s->kind);
  }
}

int hetee_refine_plan_set_schedule(hetee_refine_plan *p, const hetee_refine_schedule *s) {
  if (!p || !s) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  int rc = sched_check(s, p->cfg.lr);
  if (rc) return rc;
  memset(&p->sched, 0, sizeof p->sched);
  p->sched.kind = s->kind;
  if (s->kind == HETEE_REFINE_LR_STEP) {
    p->sched.step_every = s->step_every;
    p->sched.gamma = s->gamma;
  } else if (s->kind == HETEE_REFINE_LR_COSINE) {
    p->sched.total = s->total;
    p->sched.lr_min = s->lr_min;
  }
  return 0;
}

double hetee_refine_lr(const hetee_refine_plan *p, uint64_t u) {
  const hetee_refine_schedule *s = &p->sched;
  double lr = p->cfg.lr;
  if (s->kind == HETEE_REFINE_LR_STEP) return lr * pow(s->gamma, (double)(u / s->step_every));
  if (s->kind == HETEE_REFINE_LR_COSINE) {
    double f = u >= s->total ? 1.0 : (double)u / (double)s->total;
    return s->lr_min + (lr - s->lr_min) * 0.5 * (1.0 + cos(3.141592653589793 * f));
  }
  return lr;
}

static int plain_update(hetee_refine_plain *t) {
  const hetee_refine_plan *p = t->plan;
  if (t->acc_steps == 0) return 0;
  hetee_refine_config cu = p->cfg; /* this update's rate */
  cu.lr = hetee_refine_lr(p, t->updates);
  for (int l = p->first_train; l < p->nl; l++) {
    int k = p->L[l].k, m = p->L[l].m;
    for (int i = 0; i < m; i++) {
      for (int j = 0; j <= k; j++) {
        double g = t->gacc[l][(size_t)i * (size_t)(k + 1) + (size_t)j] / (double)t->acc_samples;
        if (j < k)
          hetee_refine_sgd(&cu, g, &t->w->w[l][(size_t)i * (size_t)k + (size_t)j],
                           &t->w->vw[l][(size_t)i * (size_t)k + (size_t)j]);
        else
          hetee_refine_sgd(&cu, g, &t->w->b[l][i], &t->w->vb[l][i]);
      }
    }
    memset(t->gacc[l], 0, (size_t)m * (size_t)(k + 1) * sizeof(double));
  }
  t->updates++;
  t->acc_samples = 0;
  t->acc_steps = 0;
  return 0;
}

int hetee_refine_plain_flush(hetee_refine_plain *t) { return plain_update(t); }

int hetee_refine_plain_step(hetee_refine_plain *t, const float *x, const float *labels, const uint32_t *idx,
                            uint32_t count) {
  const hetee_refine_plan *p = t->plan;
  hetee_refine_weights *w = t->w;
  int nl = p->nl;
  size_t tot = 0;
  for (int l = 0; l < nl; l++) tot += (size_t)p->L[l].k + 2 * (size_t)p->L[l].m;
  double *buf = malloc((tot + 2 * 65536) * sizeof *buf);
  if (!buf) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  double *h[HETEE_REFINE_MAX_LAYERS + 1], *z[HETEE_REFINE_MAX_LAYERS];
  double *q = buf;
  h[0] = q, q += p->L[0].k;
  for (int l = 0; l < nl; l++) z[l] = q, q += p->L[l].m, h[l + 1] = q, q += p->L[l].m;
  double *d = q, *dn = q + 65536;
  for (uint32_t s = 0; s < count; s++) {
    const float *xs = x + (size_t)idx[s] * (size_t)p->L[0].k;
    for (int j = 0; j < p->L[0].k; j++) h[0][j] = xs[j];
    for (int l = 0; l < nl; l++) {
      for (int i = 0; i < p->L[l].m; i++) {
        const float *row = w->w[l] + (size_t)i * (size_t)p->L[l].k;
        double acc = w->b[l][i];
        for (int j = 0; j < p->L[l].k; j++) acc += (double)row[j] * h[l][j];
        z[l][i] = acc;
        h[l + 1][i] = act_f(p->L[l].act, acc);
      }
    }
    hetee_refine_loss_grad(p->cfg.loss, z[nl - 1], p->classes, (int)labels[idx[s]], d);
    for (int l = nl - 1; l >= p->first_train; l--) {
      int k = p->L[l].k, m = p->L[l].m;
      double *g = t->gacc[l];
      for (int i = 0; i < m; i++) {
        double di = d[i];
        double *gr = g + (size_t)i * (size_t)(k + 1);
        for (int j = 0; j < k; j++) gr[j] += di * h[l][j];
        gr[k] += di;
      }
      if (l > p->first_train) {
        for (int j = 0; j < k; j++) {
          double acc = 0;
          for (int i = 0; i < m; i++) acc += (double)w->w[l][(size_t)i * (size_t)k + (size_t)j] * d[i];
          dn[j] = acc * act_d(p->L[l - 1].act, z[l - 1][j]);
        }
        double *tt = d;
        d = dn;
        dn = tt;
      }
    }
  }
  free(buf);
  t->acc_samples += count;
  t->acc_steps++;
  if (t->acc_steps >= p->cfg.accumulate) return plain_update(t);
  return 0;
}

/* ---- the refine spec (refine.h) ---- */
static void put_le(uint8_t **p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) (*p)[i] = (uint8_t)(v >> (8 * i));
  *p += n;
}
static uint64_t get_le(const uint8_t **p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)(*p)[i] << (8 * i);
  *p += n;
  return v;
}
static uint64_t f64_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}
static double bits_f64(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

#define SPEC_FIXED (4 + 2 + 2 + 4 + 4 + 4 + 1 + 8 + 8 + 8 + 8 + 4)
#define SPEC_LAYER 9
#define SPEC_SCHED (1 + 4 + 8 + 4 + 8) /* version 2 */

int hetee_refine_spec_encode(const hetee_refine_plan *p, uint8_t **buf, size_t *len) {
  if (!p || !buf || !len || p->nl < 1 || p->nl > HETEE_REFINE_MAX_LAYERS)
    return hetee_error(HETEE_ERR_INVALID_ARG, "bad argument");
  int v2 = p->sched.kind != HETEE_REFINE_LR_CONSTANT;
  size_t n = SPEC_FIXED + (size_t)p->nl * SPEC_LAYER + (v2 ? SPEC_SCHED : 0);
  uint8_t *b = malloc(n), *q = b;
  if (!b) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  memcpy(q, "HTRS", 4);
  q += 4;
  put_le(&q, v2 ? 2 : 1, 2);
  put_le(&q, (uint64_t)p->nl, 2);
  for (int l = 0; l < p->nl; l++) {
    put_le(&q, (uint64_t)p->L[l].k, 4);
    put_le(&q, (uint64_t)p->L[l].m, 4);
    put_le(&q, (uint64_t)p->L[l].act, 1);
  }
  const hetee_refine_config *c = &p->cfg;
  put_le(&q, c->batch, 4);
  put_le(&q, c->accumulate, 4);
  put_le(&q, (uint32_t)c->train_layers, 4);
  put_le(&q, (uint64_t)c->loss, 1);
  put_le(&q, f64_bits(c->lr), 8);
  put_le(&q, f64_bits(c->momentum), 8);
  put_le(&q, f64_bits(c->weight_decay), 8);
  put_le(&q, c->seed, 8);
  put_le(&q, (uint64_t)p->n, 4);
  if (v2) {
    put_le(&q, (uint64_t)p->sched.kind, 1);
    put_le(&q, p->sched.step_every, 4);
    put_le(&q, f64_bits(p->sched.gamma), 8);
    put_le(&q, p->sched.total, 4);
    put_le(&q, f64_bits(p->sched.lr_min), 8);
  }
  *buf = b;
  *len = n;
  return 0;
}

int hetee_refine_spec_decode(const uint8_t *buf, size_t len, hetee_refine_plan *out) {
  if (!buf || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (len < 8 || memcmp(buf, "HTRS", 4)) return hetee_error(HETEE_ERR_FORMAT, "not a refine spec");
  const uint8_t *q = buf + 4;
  uint64_t ver = get_le(&q, 2), nl = get_le(&q, 2);
  if (ver != 1 && ver != 2) return hetee_error(HETEE_ERR_VERSION, "refine spec version %u", (unsigned)ver);
  if (nl < 1 || nl > HETEE_REFINE_MAX_LAYERS) return hetee_error(HETEE_ERR_FORMAT, "refine spec with %u layers", (unsigned)nl);
  if (len != SPEC_FIXED + nl * SPEC_LAYER + (ver == 2 ? SPEC_SCHED : 0))
    return hetee_error(HETEE_ERR_FORMAT, "refine spec of %zu bytes", len);
  hetee_refine_weights w;
  memset(&w, 0, sizeof w);
  w.nl = (int)nl;
  for (int l = 0; l < w.nl; l++) {
    uint64_t k = get_le(&q, 4), m = get_le(&q, 4), a = get_le(&q, 1);
    if (k < 1 || k > HETEE_REFINE_MAX_WIDTH || m < 1 || m > HETEE_REFINE_MAX_WIDTH)
      return hetee_error(HETEE_ERR_SHAPE, "layer %d: dense %u -> %u outside [1, %d]", l, (unsigned)k, (unsigned)m,
                         HETEE_REFINE_MAX_WIDTH);
    if (a > HETEE_REFINE_ACT_SIGMOID) return hetee_error(HETEE_ERR_FORMAT, "layer %d: activation %u", l, (unsigned)a);
    if (l > 0 && (int)k != w.m[l - 1]) return hetee_error(HETEE_ERR_SHAPE, "layer %d: %u inputs after %d outputs", l, (unsigned)k, w.m[l - 1]);
    w.k[l] = (int)k;
    w.m[l] = (int)m;
    w.act[l] = (int)a;
  }
  if (w.act[w.nl - 1] != HETEE_REFINE_ACT_NONE) return hetee_error(HETEE_ERR_SHAPE, "the last layer has an activation");
  hetee_refine_config c;
  memset(&c, 0, sizeof c);
  c.batch = (uint32_t)get_le(&q, 4);
  c.accumulate = (uint32_t)get_le(&q, 4);
  c.train_layers = (int)(int32_t)(uint32_t)get_le(&q, 4);
  c.loss = (int)get_le(&q, 1);
  c.lr = bits_f64(get_le(&q, 8));
  c.momentum = bits_f64(get_le(&q, 8));
  c.weight_decay = bits_f64(get_le(&q, 8));
  c.seed = get_le(&q, 8);
  uint64_t n = get_le(&q, 4);
  if (n < 1024 || n > 65536 || (n & (n - 1))) return hetee_error(HETEE_ERR_FORMAT, "ring degree %u", (unsigned)n);
  hetee_refine_schedule sc;
  memset(&sc, 0, sizeof sc);
  if (ver == 2) {
    sc.kind = (int)get_le(&q, 1);
    sc.step_every = (uint32_t)get_le(&q, 4);
    sc.gamma = bits_f64(get_le(&q, 8));
    sc.total = (uint32_t)get_le(&q, 4);
    sc.lr_min = bits_f64(get_le(&q, 8));
    /* one encoding per schedule (the MP authorizes the spec's digest) */
    if (sc.kind == HETEE_REFINE_LR_CONSTANT || sc.kind > HETEE_REFINE_LR_COSINE || (sc.kind == HETEE_REFINE_LR_STEP && (sc.total || sc.lr_min != 0)) ||
        (sc.kind == HETEE_REFINE_LR_COSINE && (sc.step_every || sc.gamma != 0)))
      return hetee_error(HETEE_ERR_FORMAT, "refine spec: schedule fields");
  }
  int rc = hetee_refine_plan_build(&w, &c, (size_t)n, out);
  if (!rc) rc = hetee_refine_plan_set_schedule(out, &sc);
  return rc;
}

int hetee_refine_fetch_parse(const uint8_t *msg, size_t len, uint32_t model_id, hetee_refine_weights *w) {
  if (!msg || !w) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (len < 16) return hetee_error(HETEE_ERR_FORMAT, "fetched weights too short");
  const uint8_t *q = msg;
  uint32_t model = (uint32_t)get_le(&q, 4), l = (uint32_t)get_le(&q, 4), m = (uint32_t)get_le(&q, 4),
           k = (uint32_t)get_le(&q, 4);
  if (model != model_id) return hetee_error(HETEE_ERR_FORMAT, "fetched weights of model %u, not %u", model, model_id);
  if (l >= (uint32_t)w->nl || (int)m != w->m[l] || (int)k != w->k[l] || !w->w[l] || !w->b[l])
    return hetee_error(HETEE_ERR_SHAPE, "fetched layer %u (%u x %u) does not match", l, m, k);
  if (len != 16 + 4 * ((size_t)m * k + m)) return hetee_error(HETEE_ERR_FORMAT, "fetched weights of %zu bytes", len);
  for (size_t i = 0; i < (size_t)m * k; i++) {
    uint32_t u = (uint32_t)get_le(&q, 4);
    memcpy(&w->w[l][i], &u, 4);
  }
  for (size_t i = 0; i < m; i++) {
    uint32_t u = (uint32_t)get_le(&q, 4);
    memcpy(&w->b[l][i], &u, 4);
  }
  return 0;
}

int hetee_refine_val_report_parse(const uint8_t *msg, size_t len, uint32_t model_id, hetee_refine_val_report *out) {
  if (!msg || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  if (len != HETEE_REFINE_VAL_LEN || memcmp(msg, HETEE_REFINE_VAL_TAG, sizeof HETEE_REFINE_VAL_TAG))
    return hetee_error(HETEE_ERR_FORMAT, "not a validation report");
  const uint8_t *q = msg + sizeof HETEE_REFINE_VAL_TAG;
  uint32_t model = (uint32_t)get_le(&q, 4);
  if (model != model_id) return hetee_error(HETEE_ERR_FORMAT, "validation report of model %u, not %u", model, model_id);
  memset(out, 0, sizeof *out);
  out->updates = get_le(&q, 8);
  out->samples = get_le(&q, 8);
  out->correct = get_le(&q, 8);
  out->loss_sum = bits_f64(get_le(&q, 8));
  memcpy(out->labels_digest, q, 32);
  if (!out->samples || out->correct > out->samples) return hetee_error(HETEE_ERR_FORMAT, "validation report counts");
  out->accuracy = (double)out->correct / (double)out->samples;
  out->loss = out->loss_sum / (double)out->samples;
  return 0;
}
