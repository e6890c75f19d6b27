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
#include <sys/stat.h>
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
  hetee_refine_run_options o = {2, NULL, 1, 0, c->epochs, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL};
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
static void resume_case(int die_before_rename, int train_layers) {
  hetee_refine_weights w0, wp, we;
  rt_weights(&w0, 2, (int[]){12, 8, 3}, (int[]){HETEE_REFINE_ACT_RELU, 0});
  float *x, *lab;
  const uint32_t count = 45, epochs = 2;
  rt_data(12, 3, count, &x, &lab);
  hetee_refine_config cfg = {4, 2, train_layers, HETEE_REFINE_LOSS_XENT, 0.3, 0.9, 1e-3, 99};
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
    hetee_refine_run_options o = {1, path, 1, 17, epochs, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL};
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
  hetee_refine_run_options o = {1, path, 1, 0, epochs, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL};
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
  char tmp[80];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)pid);
  unlink(tmp);
  snprintf(tmp, sizeof tmp, "%s.frozen", path);
  unlink(tmp);
  free(x);
  free(lab);
}

static void test_resume_kill9(void **state) {
  (void)state;
  resume_case(0, 1); /* layer 0 frozen: its ciphertexts in PATH.frozen */
}
static void test_resume_die_before_rename(void **state) {
  (void)state;
  resume_case(1, 0);
}

static uint8_t *file_get(const char *path, long *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)*n + 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)*n, f), (size_t)*n);
  fclose(f);
  return b;
}

static void file_put(const char *path, const uint8_t *b, long n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
}

/* the frozen layers' ciphertexts in PATH.frozen, written once, named by
 * digest; every wrong frozen file refused */
static void test_frozen_file(void **state) {
  (void)state;
  hetee_refine_weights w0, w1, wa, wb;
  rt_weights(&w0, 3, (int[]){24, 16, 8, 5}, (int[]){HETEE_REFINE_ACT_RELU, HETEE_REFINE_ACT_RELU, 0});
  rt_weights(&w1, 3, (int[]){24, 16, 8, 5}, (int[]){HETEE_REFINE_ACT_RELU, HETEE_REFINE_ACT_RELU, 0});
  hetee_refine_config cfg = {8, 1, 1, HETEE_REFINE_LOSS_XENT, 0.3, 0.9, 0, 7};
  hetee_refine_plan p;
  assert_int_equal(hetee_refine_plan_build(&w0, &cfg, 0, &p), 0);
  assert_int_equal(p.first_train, 2);
  hetee_refine_state *s = NULL, *s1 = NULL, *r = NULL;
  assert_int_equal(hetee_refine_state_encrypt(ctx, pk, &p, &w0, &s), 0);
  assert_int_equal(hetee_refine_state_encrypt(ctx, pk, &p, &w1, &s1), 0);
  char dir[] = "/tmp/hetee_refine_frXXXXXX";
  assert_non_null(mkdtemp(dir));
  char ck[96], fz[112], ck1[96], fz1[112], full[96];
  snprintf(ck, sizeof ck, "%s/ck", dir);
  snprintf(fz, sizeof fz, "%s/ck.frozen", dir);
  snprintf(ck1, sizeof ck1, "%s/other", dir);
  snprintf(fz1, sizeof fz1, "%s/other.frozen", dir);
  snprintf(full, sizeof full, "%s/full", dir);
  assert_int_equal(hetee_refine_checkpoint_write(s, ck), 0);
  struct stat a0, a1, c0;
  assert_int_equal(stat(fz, &a0), 0);
  assert_int_equal(stat(ck, &c0), 0);
  fprintf(stderr, "frozen file %lld bytes, checkpoint %lld bytes\n", (long long)a0.st_size, (long long)c0.st_size);
  assert_true(c0.st_size < a0.st_size); /* layers 0 and 1 (24x16, 16x8) are frozen */
  /* written once: a second checkpoint leaves the frozen file as it is */
  assert_int_equal(hetee_refine_checkpoint_write(s, ck), 0);
  assert_int_equal(stat(fz, &a1), 0);
  assert_true(a1.st_ino == a0.st_ino && a1.st_mtim.tv_sec == a0.st_mtim.tv_sec && a1.st_mtim.tv_nsec == a0.st_mtim.tv_nsec);
  /* read back: the same weights */
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &r), 0);
  assert_int_equal(hetee_refine_state_decrypt(s, sk, &wa), 0);
  assert_int_equal(hetee_refine_state_decrypt(r, sk, &wb), 0);
  assert_true(hetee_refine_weights_maxdiff(&wa, &wb, 1) == 0.0);
  hetee_refine_weights_clear(&wb);
  /* the reread state knows its frozen file: no rewrite either */
  assert_int_equal(hetee_refine_checkpoint_write(r, ck), 0);
  assert_int_equal(stat(fz, &a1), 0);
  assert_true(a1.st_ino == a0.st_ino);
  hetee_refine_state_free(r);
  r = NULL;
  long nf = 0, nc = 0, n1 = 0;
  uint8_t *bf = file_get(fz, &nf), *bc = file_get(ck, &nc);
  /* missing */
  assert_int_equal(unlink(fz), 0);
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &r), HETEE_ERR_NOT_FOUND);
  /* another state's frozen layers (same plan, same parameters) */
  assert_int_equal(hetee_refine_checkpoint_write(s1, ck1), 0);
  uint8_t *b1 = file_get(fz1, &n1);
  assert_int_equal(n1, nf);
  file_put(fz, b1, n1);
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &r), HETEE_ERR_AUTH);
  /* truncated, a trailing byte, a garbled byte (in a ciphertext) */
  file_put(fz, bf, nf - 9);
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &r), HETEE_ERR_TRUNCATED);
  bf[nf] = 0;
  file_put(fz, bf, nf + 1);
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &r), HETEE_ERR_AUTH);
  bf[nf - 100] ^= 0x01;
  file_put(fz, bf, nf);
  int rc = hetee_refine_checkpoint_read(ctx, &p, ck, &r);
  assert_true(rc == HETEE_ERR_AUTH || rc == HETEE_ERR_RANGE || rc == HETEE_ERR_FORMAT);
  assert_null(r);
  bf[nf - 100] ^= 0x01;
  file_put(fz, bf, nf);
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &r), 0);
  hetee_refine_state_free(r);
  r = NULL;
  /* the old format (version 2) */
  bc[4] = 2;
  file_put(ck1, bc, nc);
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck1, &r), HETEE_ERR_VERSION);
  /* the trained layers alone (the MP's authorization): no frozen file
   * needed, and such a state neither steps nor checkpoints */
  assert_int_equal(unlink(fz), 0);
  assert_int_equal(hetee_refine_checkpoint_read_trained(ctx, &p, ck, &r), 0);
  uint64_t st0 = 1;
  hetee_refine_state_cursor(r, NULL, NULL, &st0);
  assert_true(st0 == 0);
  assert_int_equal(hetee_refine_checkpoint_write(r, ck1), HETEE_ERR_STATE);
  assert_int_equal(hetee_refine_state_decrypt(r, sk, &wb), HETEE_ERR_STATE);
  hetee_refine_state_free(r);
  r = NULL;
  /* self-contained: the frozen layers inside, read without any other file */
  assert_int_equal(hetee_refine_checkpoint_write_full(s, full), 0);
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, full, &r), 0);
  assert_int_equal(hetee_refine_state_decrypt(r, sk, &wb), 0);
  assert_true(hetee_refine_weights_maxdiff(&wa, &wb, 1) == 0.0);
  hetee_refine_weights_clear(&wb);
  /* and from it, the split form again (the frozen file written anew) */
  assert_int_equal(hetee_refine_checkpoint_write(r, ck), 0);
  assert_int_equal(stat(fz, &a1), 0);
  assert_int_equal(a1.st_size, nf);
  hetee_refine_state_free(r);
  r = NULL;
  assert_int_equal(hetee_refine_checkpoint_read(ctx, &p, ck, &r), 0);
  hetee_refine_state_free(r);
  free(bf);
  free(bc);
  free(b1);
  unlink(ck);
  unlink(fz);
  unlink(ck1);
  unlink(fz1);
  unlink(full);
  rmdir(dir);
  hetee_refine_weights_clear(&wa);
  hetee_refine_state_free(s);
  hetee_refine_state_free(s1);
  hetee_refine_weights_clear(&w0);
  hetee_refine_weights_clear(&w1);
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
      cmocka_unit_test(test_frozen_file),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
