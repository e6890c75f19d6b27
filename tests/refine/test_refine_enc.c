/*
 * refine/encrypted: encrypted refining (MP encryption, DP batches, host
 * steps with hemat products, the trusted side's refreshes, loss, back
 * pass and update passes) ends with the same weights and momentum as the
 * plaintext twin with the same data order and hyper-parameters: all layers
 * or the last only, cross-entropy and MSE, ReLU / tanh / sigmoid, momentum
 * and weight decay, gradient accumulation, partial last batches, two
 * epochs; and checkpoints: a process killed (SIGKILL) after some steps, or
 * between writing a checkpoint and renaming it, resumes from its last
 * checkpoint and ends where the uninterrupted plaintext run ends (every
 * sample used exactly once per epoch).
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "refine/refine_test_util.h"

#define TOL 1e-3

static hetee_ckks_context *ctx;
static hetee_ckks_secret_key *sk;
static hetee_ckks_public_key *pk;

static int setup(void **state) {
  (void)state;
  hetee_ckks_literal lit;
  hetee_ckks_literal_default(&lit);
  if (hetee_ckks_context_new(&lit, &ctx) || hetee_ckks_keygen_secret(ctx, &sk) || hetee_ckks_keygen_public(ctx, sk, &pk))
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(sk);
  hetee_ckks_context_free(ctx);
  return 0;
}

typedef struct rcase {
  const char *name;
  int nl;
  int dims[5], acts[4];
  hetee_refine_config cfg;
  uint32_t count, epochs;
} rcase;

static void plain_reference(const hetee_refine_weights *w0, const hetee_refine_plan *p, const float *x,
                            const float *lab, uint32_t count, uint32_t epochs, hetee_refine_weights *out) {
  assert_int_equal(hetee_refine_weights_copy(w0, out), 0);
  hetee_refine_plain t;
  assert_int_equal(hetee_refine_plain_init(&t, p, out), 0);
  assert_int_equal(hetee_refine_plain_run(&t, x, lab, count, epochs), 0);
  hetee_refine_plain_clear(&t);
}

static void run_case(const rcase *c) {
  hetee_refine_weights w0, wp, we;
  rt_weights(&w0, c->nl, c->dims, c->acts);
  float *x, *lab;
  rt_data(c->dims[0], c->dims[c->nl], c->count, &x, &lab);
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &c->cfg, 0, &p), 0);
  plain_reference(&w0, &p, x, lab, c->count, c->epochs, &wp);
  hetee_refine_state *s = NULL;
  hetee_refine_trusted *t = NULL;
  assert_int_equal(hetee_refine_state_encrypt(ctx, pk, &p, &w0, &s), 0);
  assert_int_equal(hetee_refine_trusted_new(ctx, sk, &p, &t), 0);
  hetee_refine_run_options o = {2, NULL, 1, 0, c->epochs, NULL, NULL, NULL};
  hetee_refine_stats st;
  memset(&st, 0, sizeof st);
  double dp = 0;
  int rc = hetee_refine_run(s, t, pk, x, lab, c->count, &o, &st, &dp);
  if (rc) fprintf(stderr, "%s\n", hetee_last_error());
  assert_int_equal(rc, 0);
  assert_int_equal(hetee_refine_state_decrypt(s, sk, &we), 0);
  double d = hetee_refine_weights_maxdiff(&we, &wp, c->cfg.momentum > 0);
  double moved = hetee_refine_weights_maxdiff(&w0, &wp, 0);
  fprintf(stderr, "%-28s steps %llu updates %llu products %llu: max |encrypted - plain| = %.2e (weights moved by up to %.2e)\n",
          c->name, (unsigned long long)st.steps, (unsigned long long)st.updates, (unsigned long long)st.products, d, moved);
  assert_true(moved > 10 * TOL); /* the test means something */
  assert_true(d < TOL);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  hetee_refine_weights_clear(&w0);
  hetee_refine_weights_clear(&wp);
  hetee_refine_weights_clear(&we);
  free(x);
  free(lab);
}

static void test_all_layers(void **state) {
  (void)state;
  rcase c = {"xent relu/tanh, all layers", 3, {20, 12, 9, 4}, {HETEE_REFINE_ACT_RELU, HETEE_REFINE_ACT_TANH, 0},
             {8, 2, 0, HETEE_REFINE_LOSS_XENT, 0.3, 0.9, 1e-3, 11}, 37, 2};
  run_case(&c);
}

static void test_last_layer_mse(void **state) {
  (void)state;
  rcase c = {"mse sigmoid, last layer", 2, {16, 10, 3}, {HETEE_REFINE_ACT_SIGMOID, 0},
             {6, 1, 1, HETEE_REFINE_LOSS_MSE, 0.2, 0, 0, 5}, 30, 1};
  run_case(&c);
}

static void test_two_of_three(void **state) {
  (void)state;
  rcase c = {"xent, last two of three", 3, {24, 16, 8, 5}, {HETEE_REFINE_ACT_RELU, HETEE_REFINE_ACT_RELU, 0},
             {16, 3, 2, HETEE_REFINE_LOSS_XENT, 0.5, 0.5, 0, 3}, 70, 1};
  run_case(&c);
}

/* kill -9 and resume */
static void resume_case(int die_before_rename) {
  hetee_refine_weights w0, wp, we;
  rt_weights(&w0, 2, (int[]){12, 8, 3}, (int[]){HETEE_REFINE_ACT_RELU, 0});
  float *x, *lab;
  const uint32_t count = 45, epochs = 2;
  rt_data(12, 3, count, &x, &lab);
  hetee_refine_config cfg = {4, 2, 0, HETEE_REFINE_LOSS_XENT, 0.3, 0.9, 1e-3, 99};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 0, &p), 0);
  plain_reference(&w0, &p, x, lab, count, epochs, &wp);
  char path[] = "/tmp/hetee_refine_ckXXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  unlink(path);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    hetee_refine_state *s = NULL;
    hetee_refine_trusted *t = NULL;
    if (die_before_rename) setenv("HETEE_REFINE_TEST_DIE_BEFORE_RENAME", "3", 1);
    if (hetee_refine_state_encrypt(ctx, pk, &p, &w0, &s) || hetee_refine_trusted_new(ctx, sk, &p, &t)) _exit(2);
    /* 12 steps per epoch; killed after 17 steps (epoch 1, odd step: a
     * pending gradient is lost) or in the 3rd checkpoint's rename */
    hetee_refine_run_options o = {1, path, 1, 17, epochs, NULL, NULL, NULL};
    if (hetee_refine_run(s, t, pk, x, lab, count, &o, NULL, NULL)) _exit(3);
    raise(SIGKILL);
    _exit(4);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (die_before_rename) assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 137);
  else assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  hetee_refine_state *s = NULL;
  hetee_refine_trusted *t = NULL;
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, path, &s), 0);
  uint32_t ep, next;
  uint64_t steps;
  hetee_refine_state_cursor(s, &ep, &next, &steps);
  fprintf(stderr, "resume (%s): checkpoint at epoch %u, sample %u, %llu steps\n",
          die_before_rename ? "died before rename" : "kill -9", ep, next, (unsigned long long)steps);
  assert_true(steps > 0);
  assert_int_equal(hetee_refine_trusted_new(ctx, sk, &p, &t), 0);
  hetee_refine_run_options o = {1, path, 1, 0, epochs, NULL, NULL, NULL};
  assert_int_equal(hetee_refine_run(s, t, pk, x, lab, count, &o, NULL, NULL), 0);
  assert_int_equal(hetee_refine_state_decrypt(s, sk, &we), 0);
  double d = hetee_refine_weights_maxdiff(&we, &wp, 1);
  fprintf(stderr, "resume: max |encrypted resumed - plain uninterrupted| = %.2e\n", d);
  assert_true(d < TOL);
  /* a checkpoint of other settings is refused */
  hetee_refine_plan p2 = p;
  p2.cfg.lr = 0.1;
  hetee_refine_state *s2 = NULL;
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p2, path, &s2), HETEE_ERR_SHAPE);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  hetee_refine_weights_clear(&w0);
  hetee_refine_weights_clear(&wp);
  hetee_refine_weights_clear(&we);
  unlink(path);
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)pid);
  unlink(tmp);
  free(x);
  free(lab);
}

static void test_resume_kill9(void **state) {
  (void)state;
  resume_case(0);
}
static void test_resume_die_before_rename(void **state) {
  (void)state;
  resume_case(1);
}

/* the trusted side refuses ciphertexts not as the plan says, before decrypting */
static void test_refusals(void **state) {
  (void)state;
  hetee_refine_weights w0;
  rt_weights(&w0, 2, (int[]){10, 6, 3}, (int[]){HETEE_REFINE_ACT_RELU, 0});
  float *x, *lab;
  rt_data(10, 3, 8, &x, &lab);
  hetee_refine_config cfg = {4, 1, 0, HETEE_REFINE_LOSS_XENT, 0.3, 0, 0, 1};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 0, &p), 0);
  hetee_refine_state *s = NULL;
  hetee_refine_trusted *t = NULL;
  assert_int_equal(hetee_refine_state_encrypt(ctx, pk, &p, &w0, &s), 0);
  assert_int_equal(hetee_refine_trusted_new(ctx, sk, &p, &t), 0);
  /* a batch made for another plan */
  hetee_refine_config cfg2 = cfg;
  cfg2.batch = 8;
  hetee_refine_plan p2;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg2, 0, &p2), 0);
  hetee_refine_batch *b = NULL;
  uint32_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  assert_int_equal(hetee_refine_batch_encrypt(ctx, pk, &p2, x, lab, idx, 8, &b), 0);
  int rc = hetee_refine_step(s, t, b, 1, NULL);
  assert_true(rc == HETEE_ERR_SHAPE || rc == HETEE_ERR_SCALE || rc == HETEE_ERR_LEVEL || rc == HETEE_ERR_INVALID_ARG);
  hetee_refine_batch_free(b);
  /* a label outside the classes */
  lab[2] = 7;
  assert_int_equal(hetee_refine_batch_encrypt(ctx, pk, &p, x, lab, idx, 4, &b), HETEE_ERR_INVALID_ARG);
  /* checkpoint with a pending step refused; wrong file refused */
  lab[2] = 1;
  cfg.accumulate = 2;
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 0, &p), 0);
  assert_int_equal(hetee_refine_state_encrypt(ctx, pk, &p, &w0, &s), 0);
  assert_int_equal(hetee_refine_trusted_new(ctx, sk, &p, &t), 0);
  assert_int_equal(hetee_refine_batch_encrypt(ctx, pk, &p, x, lab, idx, 4, &b), 0);
  assert_int_equal(hetee_refine_step(s, t, b, 1, NULL), 0);
  assert_int_equal(hetee_refine_checkpoint_write(s, "/tmp/hetee_refine_never"), HETEE_ERR_STATE);
  hetee_refine_state *s3 = NULL;
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, "/nonexistent/ck", &s3), HETEE_ERR_NOT_FOUND);
  hetee_refine_batch_free(b);
  hetee_refine_trusted_free(t);
  hetee_refine_state_free(s);
  hetee_refine_weights_clear(&w0);
  free(x);
  free(lab);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      /* the fork tests first: no OpenMP pool exists yet in this process */
      cmocka_unit_test(test_resume_kill9),
      cmocka_unit_test(test_resume_die_before_rename),
      cmocka_unit_test(test_all_layers),
      cmocka_unit_test(test_last_layer_mse),
      cmocka_unit_test(test_two_of_three),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
