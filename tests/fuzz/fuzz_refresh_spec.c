/*
 * fuzz_refresh_spec.c — fuzz target of the refresh-job decoder
 * (enclave/refresh_spec.c: hetee_refresh_spec_decode), the part of a
 * REFRESH request the host writes, followed — when the spec is accepted —
 * by the operations it describes (enclave/ops.c: hetee_ops_apply) on a
 * tensor sized exactly as the enclave sizes it (refresh.c), so that a spec
 * whose shapes pass the decoder but not the kernels shows up as an
 * out-of-bounds access under ASan. Invariants of an accepted spec: the
 * final shape the decoder computed is the one the kernels produce, it has
 * no more elements than the input, and every output index is in range.
 */
#include <math.h>
#include <string.h>

#include "enclave/trusted/ops.h"
#include "enclave/wire/proto.h"
#include "fuzz/fuzz.h"

const char fuzz_target_name[] = "refresh_spec";
const int fuzz_prefixes_valid = 0;

#define SLOTS 2048u
#define MAX_APPLY (1u << 20) /* larger accepted tensors are decoded, not run */

int fuzz_setup(void) { return 0; }
void fuzz_teardown(void) {}

int fuzz_one(const uint8_t *data, size_t len) {
  hetee_rbuf r;
  hetee_rbuf_init(&r, data, len);
  hetee_refresh_job job;
  int rc = hetee_refresh_spec_decode(&r, SLOTS, &job);
  if (rc) return rc;
  const hetee_refresh_spec *s = &job.spec;
  size_t per = (size_t)s->shape[0] * s->shape[1] * s->shape[2]; /* as refresh.c sizes it */
  size_t n = per * s->batch;
  size_t nfinal = (size_t)job.final_shape[0] * job.final_shape[1] * job.final_shape[2];
  FUZZ_CHECK(s->batch >= 1 && n >= 1 && n <= HETEE_REFRESH_MAX_VALUES && nfinal >= 1 && nfinal <= per);
  FUZZ_CHECK((s->in_encoding == HETEE_ENC_SLOTS || s->in_encoding == HETEE_ENC_COEFFS) &&
             (s->out_encoding == HETEE_ENC_SLOTS || s->out_encoding == HETEE_ENC_COEFFS));
  const uint64_t unit = s->out_encoding == HETEE_ENC_COEFFS ? 2 * SLOTS : SLOTS; /* N or N/2 per ct */
  for (size_t i = 0; i < s->out_n; i++)
    FUZZ_CHECK(s->out_src[i] < nfinal * s->batch && s->out_dst[i] < (uint64_t)s->out_ncts * unit);
  if (n <= MAX_APPLY) {
    double *v = malloc(n * sizeof *v), *tmp = malloc(per * sizeof *tmp);
    FUZZ_CHECK(v && tmp);
    for (size_t i = 0; i < n; i++) v[i] = (double)((i * 37) % 11) - 5.0;
    int sh[3];
    hetee_ops_apply(s, v, tmp, sh);
    FUZZ_CHECK(sh[0] == job.final_shape[0] && sh[1] == job.final_shape[1] && sh[2] == job.final_shape[2]);
    /* saturation: every value stays finite and within the public bound */
    for (size_t i = 0; i < nfinal * s->batch; i++) FUZZ_CHECK(fabs(v[i]) <= HETEE_REFRESH_VALUE_BOUND);
    free(v);
    free(tmp);
  }
  hetee_refresh_job_free(&job);
  return 0;
}

static void add_spec(fuzz_buf **s, size_t *n, const hetee_refresh_spec *sp) {
  uint8_t *b = NULL;
  size_t len = 0;
  FUZZ_CHECK(hetee_refresh_spec_encode(sp, &b, &len) == 0);
  fuzz_seed_add(s, n, b, len);
  free(b);
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  /* conv-like: 2 x 4 x 4 -> bias per channel, batch-norm, leaky ReLU,
   * 2x2 max-pool stride 2, reshape to 8 x 1 x 1, scale; 8 outputs */
  uint32_t in_map[32], dst[8], src[8];
  for (uint32_t i = 0; i < 32; i++) in_map[i] = 31 - i;
  for (uint32_t i = 0; i < 8; i++) dst[i] = 3 * i, src[i] = 7 - i;
  const double bias[2] = {0.25, -0.5}, bn_a[2] = {1.5, 0.5}, bn_b[2] = {0.0, 1.0};
  hetee_refresh_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].kind = HETEE_OP_ADD_BIAS, ops[0].a = bias, ops[0].na = 2;
  ops[1].kind = HETEE_OP_BATCHNORM, ops[1].a = bn_a, ops[1].na = 2, ops[1].b = bn_b, ops[1].nb = 2;
  ops[2].kind = HETEE_OP_LEAKY_RELU, ops[2].alpha = 0.01;
  ops[3].kind = HETEE_OP_MAXPOOL, ops[3].window = 2, ops[3].stride = 2;
  ops[4].kind = HETEE_OP_RESHAPE, ops[4].shape[0] = 8, ops[4].shape[1] = 1, ops[4].shape[2] = 1;
  ops[5].kind = HETEE_OP_SCALE, ops[5].alpha = 0.5;
  const hetee_refresh_spec sp = {.in_level = -1, .shape = {2, 4, 4}, .in_map = in_map, .nops = 6, .ops = ops,
                                 .out_ncts = 2, .out_n = 8, .out_dst = dst, .out_src = src, .out_level = -1};
  add_spec(&s, &n, &sp);
  /* dense-like: 1 x 1 x 6 with per-element bias, sigmoid, tanh, square,
   * 3-wide average pool stride 3 -> 2 outputs, explicit level and scale */
  double bias6[6] = {1, 2, 3, 4, 5, 6};
  hetee_refresh_op ops2[5];
  memset(ops2, 0, sizeof ops2);
  ops2[0].kind = HETEE_OP_ADD_BIAS, ops2[0].a = bias6, ops2[0].na = 6;
  ops2[1].kind = HETEE_OP_SIGMOID;
  ops2[2].kind = HETEE_OP_TANH;
  ops2[3].kind = HETEE_OP_SQUARE;
  ops2[4].kind = HETEE_OP_SCALE, ops2[4].alpha = HETEE_REFRESH_MAX_CONST;
  const hetee_refresh_spec sp2 = {.in_level = -1, .shape = {1, 1, 6}, .in_map = in_map, .nops = 5, .ops = ops2,
                                  .out_ncts = 1, .out_n = 2, .out_dst = dst, .out_src = src + 6, .out_level = 0,
                                  .out_scale = 1099511627776.0};
  add_spec(&s, &n, &sp2);
  /* average pool */
  hetee_refresh_op ops3[1];
  memset(ops3, 0, sizeof ops3);
  ops3[0].kind = HETEE_OP_AVGPOOL, ops3[0].window = 3, ops3[0].stride = 1;
  /* two samples of 1 x 4 x 4 (batch), huge constants at the bound */
  const hetee_refresh_spec sp3 = {.in_level = -1, .shape = {1, 4, 4}, .batch = 2, .in_map = in_map, .nops = 1,
                                  .ops = ops3, .out_ncts = 1, .out_n = 8, .out_dst = dst, .out_src = src,
                                  .out_level = -1};
  add_spec(&s, &n, &sp3);
  *out = s;
  return n;
}

/* Finding of this target (fixed in refresh_spec.c): the input shape was
 * checked as (u64)C*H*W == n, which wraps: C = 2^22, H = W = 2^21 gives
 * 2^64 == 0, so a spec announcing n = 0 values passed, refresh.c allocated
 * an empty tensor and max-pooling walked 2^22 channels of it (heap overflow
 * inside the enclave, reachable by the host). Same wrap with n = 0 and a
 * per-channel reshape. */
size_t fuzz_known_bad(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  for (int variant = 0; variant < 2; variant++) {
    hetee_wbuf w;
    hetee_wbuf_init(&w);
    hetee_wbuf_put(&w, "HTRS", 4);
    hetee_wbuf_u16(&w, HETEE_REFRESH_SPEC_VERSION);
    hetee_wbuf_u16(&w, 0);
    hetee_wbuf_u32(&w, 1u << 22);
    hetee_wbuf_u32(&w, 1u << 21);
    hetee_wbuf_u32(&w, 1u << 21);
    hetee_wbuf_u32(&w, 1); /* batch */
    hetee_wbuf_u32(&w, 0); /* n */
    hetee_wbuf_u32(&w, 0xffffffffu); /* in_level */
    hetee_wbuf_f64(&w, 0.0);         /* in_scale */
    hetee_wbuf_u8(&w, 0);            /* in_encoding */
    hetee_wbuf_u32(&w, 1); /* nops */
    hetee_wbuf_u16(&w, variant ? HETEE_OP_RELU : HETEE_OP_MAXPOOL);
    hetee_wbuf_f64(&w, 0.0);
    hetee_wbuf_u32(&w, variant ? 0 : 2);
    hetee_wbuf_u32(&w, variant ? 0 : 2);
    for (int j = 0; j < 3; j++) hetee_wbuf_u32(&w, 0);
    hetee_wbuf_u32(&w, 0); /* na */
    hetee_wbuf_u32(&w, 0); /* nb */
    hetee_wbuf_u32(&w, 1); /* out_ncts */
    hetee_wbuf_u32(&w, 0); /* out_n */
    hetee_wbuf_u32(&w, 0xffffffffu);
    hetee_wbuf_f64(&w, 0.0);
    hetee_wbuf_u8(&w, 0);
    FUZZ_CHECK(!w.err);
    fuzz_seed_add(&s, &n, w.p, w.len);
    hetee_wbuf_free(&w);
  }
  *out = s;
  return n;
}
