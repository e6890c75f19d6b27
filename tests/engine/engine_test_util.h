/*
 * engine_test_util.h — helpers of the engine tests: bundled models and
 * Fashion-MNIST images (scaled as the models were trained), models built
 * from small ONNX graphs with deterministic random weights, and the
 * plaintext simulation of a whole plan: hemat's twin per stage, read and
 * written through the stage layouts' positions, and the enclave's own op
 * code (hetee_ops_apply) applied through the plan's refresh maps, ending in
 * the release layout. It checks on the way that no map writes a position
 * twice and that every padding position of a layout stays zero.
 */
#ifndef HETEE_ENGINE_TEST_UTIL_H
#define HETEE_ENGINE_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>

#include "enclave/trusted/ops.h"
#include "hetee/engine.h"
#include "hetee/nn.h"
#include "nn/onnx_builder.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

#define ET_OK(call)                                                                                  \
  do {                                                                                               \
    int et_rc_ = (call);                                                                             \
    if (et_rc_) fprintf(stderr, "%s: %s: %s\n", #call, hetee_strerror(et_rc_), hetee_last_error()); \
    assert_int_equal(et_rc_, 0);                                                                     \
  } while (0)

static inline int et_quick(void) { return getenv("HETEE_TEST_QUICK") != NULL; }

static inline const char *et_src(const char *rel) {
  static char buf[4][1024];
  static int k;
  const char *root = getenv("HETEE_SOURCE_DIR");
  char *b = buf[k++ & 3];
  snprintf(b, sizeof buf[0], "%s/%s", root ? root : ".", rel);
  return b;
}

static inline hetee_nn_model *et_bundled(const char *name) {
  char rel[128];
  snprintf(rel, sizeof rel, "models/%s.onnx", name);
  hetee_nn_model *m = NULL;
  ET_OK(hetee_nn_model_load(et_src(rel), &m));
  return m;
}

/* Names of the bundled models (the .onnx files of models/, without the extension), sorted;
 * returns the count (at most max). */
static inline int et_cmp(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }
static inline size_t et_model_names(char names[][64], size_t max) {
  DIR *d = opendir(et_src("models"));
  assert_non_null(d);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < max) {
    size_t len = strlen(e->d_name);
    if (len > 5 && len < 64 && !strcmp(e->d_name + len - 5, ".onnx")) {
      memcpy(names[n], e->d_name, len - 5);
      names[n++][len - 5] = 0;
    }
  }
  closedir(d);
  qsort(names, n, sizeof names[0], et_cmp);
  assert_true(n >= 4);
  return n;
}

/* The first n test images scaled as model m expects (malloc'd), and their
 * labels (may be NULL). */
static inline float *et_images(const hetee_nn_model *m, size_t n, int *labels) {
  hetee_nn_data *img = NULL, *lab = NULL;
  ET_OK(hetee_nn_images_load(FMNIST_DIR "/t10k-images-idx3-ubyte.gz", &img));
  assert_true(hetee_nn_data_dims(img)[0] >= n);
  float *x = malloc(n * 784 * sizeof *x);
  assert_non_null(x);
  double s = hetee_nn_model_input_scale(m);
  for (size_t i = 0; i < n * 784; i++) x[i] = (float)(hetee_nn_data_values(img)[i] * s);
  if (labels) {
    ET_OK(hetee_nn_labels_load(FMNIST_DIR "/t10k-labels-idx1-ubyte.gz", &lab));
    for (size_t i = 0; i < n; i++) labels[i] = (int)hetee_nn_data_values(lab)[i];
  }
  hetee_nn_data_free(img);
  hetee_nn_data_free(lab);
  return x;
}

static inline uint64_t et_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}
static inline float et_unif(uint64_t *s) { return (float)((double)(et_rand(s) >> 11) * 0x1p-52 * 2.0 - 1.0); }

/* Replaces the values of every float initializer of b by uniform ones in
 * [-scale, scale) (the builder fills 0.5). */
static inline void et_randomize(onnx_builder *b, uint64_t seed, float scale) {
  for (size_t i = 0; i < b->graph.n_initializer; i++) {
    Onnx__TensorProto *t = b->graph.initializer[i];
    for (size_t j = 0; j < t->n_float_data; j++) t->float_data[j] = scale * et_unif(&seed);
  }
}

/* The model of builder b (freed here); NULL with *status set if refused. */
static inline hetee_nn_model *et_build(onnx_builder *b, int *status) {
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(ob_pack(b, &buf, &len), 0);
  hetee_nn_model *m = NULL;
  int rc = hetee_nn_model_from_memory(buf, len, &m);
  if (status) *status = rc;
  else if (rc) fprintf(stderr, "model: %s\n", hetee_last_error());
  if (!status) assert_int_equal(rc, 0);
  free(buf);
  ob_free(b);
  return m;
}

static inline size_t et_argmax(const double *v, size_t n) {
  size_t best = 0;
  for (size_t k = 1; k < n; k++)
    if (v[k] > v[best]) best = k;
  return best;
}

/* Plaintext simulation of plan p on count samples x (count x input_size);
 * writes count x output_size values (what the release reads, before its
 * softmax / argmax) into out. */
static inline void et_simulate(const hetee_engine_plan *p, const hetee_nn_model *m, const float *x, size_t count,
                               double *out) {
  size_t N = hetee_engine_plan_n(p), ns = hetee_engine_plan_num_stages(p), in_size = hetee_engine_plan_input_size(p);
  size_t out_size = hetee_engine_plan_output_size(p);
  uint32_t mb = hetee_engine_plan_micro_batch(p);
  for (size_t first = 0; first < count; first += mb) {
    uint32_t bk = (uint32_t)(count - first < mb ? count - first : mb);
    hetee_hemat_layout L;
    ET_OK(hetee_engine_plan_layout(p, 0, bk, &L));
    /* the data provider's input positions */
    size_t alen = L.n_in_cts * N;
    double *A = calloc(alen, sizeof *A);
    assert_non_null(A);
    for (uint32_t b = 0; b < bk; b++)
      for (size_t k = 0; k < in_size; k++) {
        uint64_t pos;
        ET_OK(hetee_engine_plan_input_pos(p, bk, b, k, &pos));
        assert_true(pos < alen);
        assert_true(A[pos] == 0.0);
        A[pos] = x[(first + b) * in_size + k] == 0.0f ? 0x1p-40 : x[(first + b) * in_size + k];
      }
    for (size_t s = 0; s < ns; s++) {
      hetee_engine_stage_info si;
      ET_OK(hetee_engine_plan_stage(p, s, &si));
      ET_OK(hetee_engine_plan_layout(p, s, bk, &L));
      assert_int_equal(L.n_in_cts * N, alen);
      const hetee_hemat_shape *sh = &L.shape;
      size_t xn = (size_t)bk * sh->c * sh->h * sh->w, yn = (size_t)bk * sh->co * L.oh * L.ow;
      float *X = malloc(xn * sizeof *X);
      double *Y = malloc(yn * sizeof *Y);
      assert_true(X && Y);
      size_t k = 0;
      for (uint32_t b = 0; b < bk; b++)
        for (int c = 0; c < sh->c; c++)
          for (int y = 0; y < sh->h; y++)
            for (int xx = 0; xx < sh->w; xx++, k++) {
              double v = A[hetee_hemat_in_pos(&L, b, c, y, xx)];
              /* the layer's own padded coordinates (space-to-depth undone) */
              int Yc = y, Xc = xx;
              if (si.phased) {
                Yc = y * si.conv.sh + c / si.conv.sw % si.conv.sh;
                Xc = xx * si.conv.sw + c % si.conv.sw;
              }
              int pad = Yc < si.pads[0] || Yc >= si.conv.h - si.pads[2] || Xc < si.pads[1] || Xc >= si.conv.w - si.pads[3];
              if (pad) assert_true(v == 0.0); /* the layout leaves padding empty */
              X[k] = (float)v;
            }
      float *wts = NULL, *bias = NULL;
      ET_OK(hetee_engine_plan_stage_params(p, s, m, &wts, &bias));
      ET_OK(hetee_hemat_conv_twin(&L, wts, bias, X, Y));
      free(wts);
      free(bias);
      size_t blen = L.n_out_cts * N;
      double *B = calloc(blen, sizeof *B);
      assert_non_null(B);
      k = 0;
      for (uint32_t b = 0; b < bk; b++)
        for (int o = 0; o < sh->co; o++)
          for (int y = 0; y < L.oh; y++)
            for (int xx = 0; xx < L.ow; xx++, k++) B[hetee_hemat_out_pos(&L, b, o, y, xx)] = Y[k];
      /* the enclave's refresh, through the plan's maps */
      hetee_engine_refresh R;
      ET_OK(hetee_engine_plan_refresh(p, s, bk, &R));
      assert_int_equal(R.in_ncts, L.n_out_cts);
      assert_int_equal(R.release, s + 1 == ns);
      size_t nv = (size_t)bk * R.n_in;
      double *v = malloc(nv * sizeof *v), *tmp = malloc(R.n_in * sizeof *tmp);
      assert_true(v && tmp);
      for (size_t i = 0; i < nv; i++) {
        assert_true(R.in_map[i] < blen);
        v[i] = B[R.in_map[i]];
      }
      hetee_refresh_spec spec;
      memset(&spec, 0, sizeof spec);
      memcpy(spec.shape, R.in_shape, sizeof spec.shape);
      spec.batch = bk;
      spec.nops = R.nops;
      spec.ops = R.ops;
      int fin[3];
      hetee_ops_apply(&spec, v, tmp, fin);
      assert_memory_equal(fin, R.out_shape, sizeof fin);
      free(A);
      alen = (size_t)R.out_ncts * N;
      A = calloc(alen, sizeof *A);
      unsigned char *seen = calloc(alen, 1);
      assert_true(A && seen);
      assert_int_equal(R.out_n, (size_t)bk * R.n_final);
      for (size_t j = 0; j < R.out_n; j++) {
        assert_true(R.out_dst[j] < alen && R.out_src[j] < R.out_n);
        assert_false(seen[R.out_dst[j]]); /* every position written once */
        seen[R.out_dst[j]] = 1;
        /* a zero would be indistinguishable from "never written" below */
        A[R.out_dst[j]] = v[R.out_src[j]] == 0.0 ? 0x1p-40 : v[R.out_src[j]];
      }
      if (s + 1 < ns && R.out_lanes > 1) {
        /* a lane stage next: the enclave wrote its inputs dense; the host's
         * expansion gives sparse input ciphertext c = D*lanes + q, coefficient
         * i (a multiple of lanes), from dense ciphertext D, coefficient i + q */
        hetee_hemat_layout Nx;
        ET_OK(hetee_engine_plan_layout(p, s + 1, bk, &Nx));
        const size_t ln = (size_t)R.out_lanes;
        assert_int_equal(Nx.lanes, R.out_lanes);
        assert_int_equal(R.out_ncts, Nx.n_dense_in_cts);
        double *S = calloc(Nx.n_in_cts * N, sizeof *S);
        assert_non_null(S);
        size_t moved = 0;
        for (size_t c = 0; c < Nx.n_in_cts; c++)
          for (size_t i = 0; i < N; i += ln) {
            size_t d = (c / ln) * N + i + c % ln;
            S[c * N + i] = A[d];
            moved += seen[d];
          }
        assert_int_equal(moved, R.out_n); /* every value the enclave wrote reaches one lane */
        free(A);
        A = S;
        alen = Nx.n_in_cts * N;
      }
      if (s + 1 == ns) {
        assert_int_equal(R.n_final, out_size);
        for (uint32_t b = 0; b < bk; b++)
          for (size_t j = 0; j < out_size; j++) {
            size_t pos = (size_t)(b / R.release_cap) * N + (size_t)(b % R.release_cap) * out_size + j;
            assert_true(seen[pos]);
            out[(first + b) * out_size + j] = A[pos];
          }
      }
      free(seen);
      free(v);
      free(tmp);
      free(X);
      free(Y);
      free(B);
      hetee_engine_refresh_free(&R);
    }
    free(A);
  }
}

#endif
