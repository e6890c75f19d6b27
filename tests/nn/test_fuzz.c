/*
 * test_fuzz.c — deterministic random-mutation fuzzing of everything that
 * reads untrusted bytes in src/nn: the IDX / .npy / gzip loaders and the
 * ONNX importer. Seeds are valid files (written here, and the committed test
 * graphs); each iteration applies a few mutations (bit flips, interesting
 * byte and 32-bit values, truncation, insertion, chunk copies) drawn from a
 * fixed-seed xorshift generator, so a failure reproduces exactly. Every
 * input must be accepted or refused with a negative status; accepted data is
 * read in full and accepted models are run, so the sanitizer build (ASan +
 * UBSan) catches any out-of-bounds access. HETEE_TEST_QUICK shrinks the
 * iteration counts; HETEE_FUZZ_SEED=<n> runs another campaign.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "nn_test_util.h"
#include "onnx.pb-c.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

typedef struct {
  uint8_t *p;
  size_t n;
} blob;

static blob blob_dup(const uint8_t *p, size_t n) {
  blob b = {malloc(n + 64), n};
  assert_non_null(b.p);
  memcpy(b.p, p, n);
  return b;
}

static void mutate(blob *b, size_t cap) {
  static const uint32_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fffffffu, 0x80000000u, 0xffffffffu, 784, 28, 10000};
  int k = 1 + (int)(rnd() % 6);
  for (int i = 0; i < k; i++) {
    size_t pos = b->n ? (size_t)(rnd() % b->n) : 0;
    switch (rnd() % 7) {
      case 0:
        if (b->n) b->p[pos] ^= (uint8_t)(1u << (rnd() % 8));
        break;
      case 1:
        if (b->n) b->p[pos] = (uint8_t)rnd();
        break;
      case 2:
        if (b->n) b->p[pos] = (uint8_t)interesting[rnd() % 5];
        break;
      case 3:
        if (b->n >= 4) {
          uint32_t v = interesting[rnd() % (sizeof interesting / sizeof interesting[0])];
          pos = pos > b->n - 4 ? b->n - 4 : pos;
          if (rnd() & 1) v = __builtin_bswap32(v);
          memcpy(b->p + pos, &v, 4);
        }
        break;
      case 4: b->n = pos; break; /* truncate */
      case 5:                    /* insert random bytes */
        if (b->n + 16 <= cap) {
          size_t m = 1 + (size_t)(rnd() % 16);
          memmove(b->p + pos + m, b->p + pos, b->n - pos);
          for (size_t j = 0; j < m; j++) b->p[pos + j] = (uint8_t)rnd();
          b->n += m;
        }
        break;
      default: /* copy a chunk over another place */
        if (b->n > 8) {
          size_t src = (size_t)(rnd() % b->n), m = 1 + (size_t)(rnd() % 8);
          if (src + m > b->n) m = b->n - src;
          if (pos + m > b->n) m = b->n - pos;
          memmove(b->p + pos, b->p + src, m);
        }
        break;
    }
  }
}

/* A mutated copy of s (room for 256 inserted bytes). */
static blob mutant_of(const blob *s) {
  blob m = {malloc(s->n + 256), s->n};
  assert_non_null(m.p);
  memcpy(m.p, s->p, s->n);
  mutate(&m, s->n + 256);
  return m;
}

static blob gzip_of(const blob *in) {
  uLongf n = compressBound(in->n) + 64;
  blob out = {malloc(n + 64), 0};
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  zs.next_in = in->p;
  zs.avail_in = (uInt)in->n;
  zs.next_out = out.p;
  zs.avail_out = (uInt)n;
  assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.n = zs.total_out;
  deflateEnd(&zs);
  return out;
}

static blob npy_seed(const char *descr, const char *shape, size_t esize, size_t count) {
  char dict[128];
  int hl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
  size_t pad = (64 - (10 + (size_t)hl + 1) % 64) % 64, total = 10 + (size_t)hl + pad + 1 + esize * count;
  blob b = {calloc(1, total + 64), total};
  assert_non_null(b.p);
  memcpy(b.p, "\x93NUMPY\x01\x00", 8);
  b.p[8] = (uint8_t)((size_t)hl + pad + 1);
  memcpy(b.p + 10, dict, (size_t)hl);
  memset(b.p + 10 + hl, ' ', pad);
  b.p[10 + (size_t)hl + pad] = '\n';
  for (size_t i = 0; i < esize * count; i++) b.p[10 + (size_t)hl + pad + 1 + i] = (uint8_t)(i * 37 % 61);
  return b;
}

static void test_fuzz_data(void **state) {
  (void)state;
  blob seeds[8];
  size_t ns = 0;
  /* IDX [3,4,5] and [6] */
  static const uint8_t idx3[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5};
  blob b = {calloc(1, 16 + 60 + 64), 16 + 60};
  memcpy(b.p, idx3, 16);
  for (int i = 0; i < 60; i++) b.p[16 + i] = (uint8_t)(i * 7);
  seeds[ns++] = b;
  static const uint8_t idx1[14] = {0, 0, 8, 1, 0, 0, 0, 6, 1, 2, 3, 4, 5, 6};
  seeds[ns++] = blob_dup(idx1, sizeof idx1);
  seeds[ns++] = npy_seed("<f4", "(2, 3)", 4, 6);
  seeds[ns++] = npy_seed("<f8", "(2, 1, 2, 2)", 8, 8);
  seeds[ns++] = npy_seed("|u1", "(7,)", 1, 7);
  seeds[ns++] = npy_seed("<i8", "(3,)", 8, 3);
  seeds[ns++] = gzip_of(&seeds[0]);
  seeds[ns++] = gzip_of(&seeds[2]);
  /* Every seed is valid to begin with. */
  for (size_t i = 0; i < ns; i++) {
    hetee_nn_data *d = NULL;
    assert_int_equal(hetee_nn_data_from_memory(seeds[i].p, seeds[i].n, &d), 0);
    hetee_nn_data_free(d);
  }
  int iters = quick_mode() ? 20000 : 200000, accepted = 0;
  for (int it = 0; it < iters; it++) {
    const blob *s = &seeds[rnd() % ns];
    blob m = mutant_of(s);
    hetee_nn_data *d = NULL;
    int rc = hetee_nn_data_from_memory(m.p, m.n, &d);
    assert_true(rc <= 0);
    if (rc == 0) {
      accepted++;
      size_t count = 1;
      for (size_t k = 0; k < hetee_nn_data_rank(d); k++) count *= hetee_nn_data_dims(d)[k];
      assert_int_equal(count, hetee_nn_data_count(d));
      volatile double sum = 0;
      for (size_t k = 0; k < count; k++) sum += hetee_nn_data_values(d)[k];
      (void)sum;
    } else {
      assert_null(d);
      assert_true(hetee_last_error()[0] != 0);
    }
    hetee_nn_data_free(d);
    free(m.p);
  }
  printf("data fuzz: %d inputs, %d accepted\n", iters, accepted);
  for (size_t i = 0; i < ns; i++) free(seeds[i].p);
}

static blob read_all(const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  blob b = {malloc(1 << 16), 0};
  assert_non_null(b.p);
  b.n = fread(b.p, 1, 1 << 16, f);
  fclose(f);
  assert_true(b.n > 0 && b.n < (1 << 16));
  return b;
}

/* State of the two ONNX fuzz loops: the seed models, an input batch of 2,
 * and what the loader answered. */
typedef struct {
  blob seeds[3];
  float *x, *y;
  int accepted, by_status[32];
} onnx_fuzz;

static void onnx_fuzz_init(onnx_fuzz *f) {
  memset(f, 0, sizeof *f);
  f->seeds[0] = read_all(src_path("tests/nn/data/zoo.onnx"));
  f->seeds[1] = read_all(src_path("tests/nn/data/zoo_gap.onnx"));
  f->seeds[2] = read_all(src_path("tests/nn/data/conv_bn.onnx"));
  f->x = calloc(2 * 4096, sizeof *f->x);
  assert_non_null(f->x);
  for (int i = 0; i < 2 * 4096; i++) f->x[i] = (float)((i * 13) % 7) / 7.0f - 0.4f;
}

/* Loads one mutant: an accepted model is run (when small enough), a
 * refusal must leave no model and is counted by status. */
static void onnx_fuzz_try(onnx_fuzz *f, const uint8_t *p, size_t n) {
  hetee_nn_model *model = NULL;
  int rc = hetee_nn_model_from_memory(p, n, &model);
  assert_true(rc <= 0);
  if (rc == 0) {
    f->accepted++;
    int small = hetee_nn_model_input_size(model) <= 4096;
    for (size_t l = 0; small && l < hetee_nn_model_num_layers(model); l++) {
      hetee_nn_layer_info li;
      assert_int_equal(hetee_nn_model_layer(model, l, &li), 0);
      size_t c = 1;
      for (size_t d = 0; d < li.out_rank; d++) c *= li.out_dims[d];
      small = c <= 65536;
    }
    if (small) {
      f->y = realloc(f->y, 2 * hetee_nn_model_output_size(model) * sizeof *f->y + 1);
      assert_non_null(f->y);
      assert_int_equal(hetee_nn_forward(model, f->x, 2, f->y), 0);
    }
  } else {
    assert_null(model);
    f->by_status[-rc < 32 ? -rc : 0]++;
  }
  hetee_nn_model_free(model);
}

static void onnx_fuzz_finish(onnx_fuzz *f, const char *what, int iters) {
  printf("%s: %d inputs, %d accepted; refused by status:", what, iters, f->accepted);
  for (int i = 0; i < 32; i++) {
    if (f->by_status[i]) printf(" %s=%d", hetee_strerror(-i), f->by_status[i]);
  }
  printf("\n");
  free(f->x);
  free(f->y);
  for (int i = 0; i < 3; i++) free(f->seeds[i].p);
}

static void test_fuzz_onnx(void **state) {
  (void)state;
  onnx_fuzz f;
  onnx_fuzz_init(&f);
  const blob *seeds = f.seeds;
  int iters = quick_mode() ? 3000 : 30000;
  for (int it = 0; it < iters; it++) {
    const blob *s = &seeds[rnd() % 3];
    blob m = mutant_of(s);
    onnx_fuzz_try(&f, m.p, m.n);
    free(m.p);
  }
  onnx_fuzz_finish(&f, "onnx fuzz", iters);
}

static const int64_t INTERESTING64[] = {0, 1, 2, 3, -1, -2, 7, 28, 1024, 1025, 1 << 20, INT64_MAX, INT64_MIN};

static int64_t pick64(void) { return INTERESTING64[rnd() % (sizeof INTERESTING64 / sizeof INTERESTING64[0])]; }

/* Mutates the decoded protobuf in place (sizes, attributes, wiring, op
 * types, data lengths), so that the importer's semantic checks are reached
 * by inputs that still decode. Only exchanges and in-place edits: every
 * pointer stays owned exactly once for free_unpacked. */
static void mutate_model(Onnx__ModelProto *mp) {
  Onnx__GraphProto *g = mp->graph;
  if (!g || !g->n_node) return;
  Onnx__NodeProto *a = g->node[rnd() % g->n_node], *b = g->node[rnd() % g->n_node];
  switch (rnd() % 9) {
    case 0:
      if (g->n_initializer) {
        Onnx__TensorProto *t = g->initializer[rnd() % g->n_initializer];
        if (t->n_dims) t->dims[rnd() % t->n_dims] = pick64();
      }
      break;
    case 1:
      if (a->n_attribute) {
        Onnx__AttributeProto *at = a->attribute[rnd() % a->n_attribute];
        if (at->n_ints) at->ints[rnd() % at->n_ints] = pick64();
        if (at->has_i) at->i = pick64();
        if (at->has_f) at->f = (float)pick64();
      }
      break;
    case 2:
      if (a->n_input && b->n_input) {
        char **x = &a->input[rnd() % a->n_input], **y = &b->input[rnd() % b->n_input], *t = *x;
        *x = *y;
        *y = t;
      }
      break;
    case 3: {
      char *t = a->op_type;
      a->op_type = b->op_type;
      b->op_type = t;
      break;
    }
    case 4:
      if (g->n_initializer) {
        Onnx__TensorProto *t = g->initializer[rnd() % g->n_initializer];
        if (t->has_raw_data && t->raw_data.len) t->raw_data.len = (size_t)(rnd() % t->raw_data.len);
      }
      break;
    case 5:
      if (g->n_input && g->input[0]->type && g->input[0]->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
          g->input[0]->type->tensor_type->shape) {
        Onnx__TensorShapeProto *sh = g->input[0]->type->tensor_type->shape;
        if (sh->n_dim) {
          Onnx__TensorShapeProto__Dimension *d = sh->dim[rnd() % sh->n_dim];
          if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) d->dim_value = pick64();
        }
      }
      break;
    case 6: { /* swap two nodes: breaks topological order */
      size_t i = rnd() % g->n_node, j = rnd() % g->n_node;
      Onnx__NodeProto *t = g->node[i];
      g->node[i] = g->node[j];
      g->node[j] = t;
      break;
    }
    case 7:
      if (mp->n_opset_import) mp->opset_import[0]->version = 9 + (int64_t)(rnd() % 11);
      break;
    default:
      if (a->n_attribute > 1) { /* values now under another attribute's name */
        char *nm = a->attribute[0]->name;
        a->attribute[0]->name = a->attribute[a->n_attribute - 1]->name;
        a->attribute[a->n_attribute - 1]->name = nm;
      }
      break;
  }
}

static void test_fuzz_onnx_structure(void **state) {
  (void)state;
  onnx_fuzz f;
  onnx_fuzz_init(&f);
  const blob *seeds = f.seeds;
  int iters = quick_mode() ? 1500 : 15000;
  for (int it = 0; it < iters; it++) {
    const blob *s = &seeds[rnd() % 3];
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, s->n, s->p);
    assert_non_null(mp);
    int k = 1 + (int)(rnd() % 3);
    for (int i = 0; i < k; i++) mutate_model(mp);
    size_t n = onnx__model_proto__get_packed_size(mp);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    onnx__model_proto__pack(mp, buf);
    onnx__model_proto__free_unpacked(mp, NULL);
    onnx_fuzz_try(&f, buf, n);
    free(buf);
  }
  onnx_fuzz_finish(&f, "onnx structure fuzz", iters);
}

int main(void) {
  /* HETEE_FUZZ_SEED picks another deterministic campaign (for long manual runs). */
  const char *seed = getenv("HETEE_FUZZ_SEED");
  if (seed && strtoull(seed, NULL, 0)) rng_state = strtoull(seed, NULL, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fuzz_data),
      cmocka_unit_test(test_fuzz_onnx),
      cmocka_unit_test(test_fuzz_onnx_structure),
  };
  return cmocka_run_group_tests_name("nn/fuzz", tests, NULL, NULL);
}
