/*
 * test_cli.c — the real `hetee plan` and `hetee run` binaries, run the way a
 * user runs them: the plan of a bundled model; encrypted inference on a few
 * Fashion-MNIST images through the real enclave process, whose summary
 * reports the same accuracy as `hetee plain` on those images and full
 * agreement, and whose --verbose labels are the plaintext predictions; an
 * unsupported model refused with one line naming the node (exit 1) before
 * anything is encrypted; usage errors (exit 2).
 */
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine_test_util.h"

#define IMAGES FMNIST_DIR "/t10k-images-idx3-ubyte.gz"
#define LABELS FMNIST_DIR "/t10k-labels-idx1-ubyte.gz"

typedef struct {
  int status;
  char out[1 << 16], err[1 << 14];
} run_result;

/* Runs `hetee ARGS`, capturing stdout and stderr (r is static storage). */
static run_result *run(const char *args) {
  static run_result r;
  char cmd[4096], errf[] = "/tmp/hetee_engine_cli_XXXXXX";
  int fd = mkstemp(errf);
  assert_true(fd >= 0);
  close(fd);
  const char *bin = getenv("HETEE_BIN_DIR");
  snprintf(cmd, sizeof cmd, "cd '%s' && '%s/hetee' %s 2>%s", et_src(""), bin ? bin : ".", args, errf);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t len = fread(r.out, 1, sizeof r.out - 1, p);
  r.out[len] = 0;
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  FILE *e = fopen(errf, "rb");
  assert_non_null(e);
  len = fread(r.err, 1, sizeof r.err - 1, e);
  r.err[len] = 0;
  fclose(e);
  unlink(errf);
  return &r;
}

static void test_plan(void **state) {
  (void)state;
  run_result *r = run("plan models/cnn.onnx --batch 32");
  assert_int_equal(r->status, 0);
  assert_non_null(strstr(r->out, "plan: 4 stages, N = 8192, micro-batch 32"));
  assert_non_null(strstr(r->out, "stage 3: dense /9/Gemm"));
  assert_non_null(strstr(r->out, "refresh  relu, maxpool(2, stride 2)"));
  assert_non_null(strstr(r->out, "release  argmax of 10 values per sample"));
  assert_int_equal(run("plan")->status, 2);
  assert_int_equal(run("plan models/cnn.onnx --batch 0")->status, 2);
}

/* The line of out starting with prefix, copied into buf. */
static const char *line(const char *out, const char *prefix, char *buf, size_t n) {
  const char *p = strstr(out, prefix);
  assert_non_null(p);
  size_t k = strcspn(p, "\n");
  snprintf(buf, n, "%.*s", (int)k, p);
  return buf;
}

static void test_run(void **state) {
  (void)state;
  size_t n = et_quick() ? 6 : 24;
  hetee_nn_model *m = et_bundled("cnn_s2");
  int labels[24];
  float *x = et_images(m, n, labels), logits[24 * 10];
  ET_OK(hetee_nn_forward(m, x, n, logits));
  size_t ok = 0;
  int plain[24];
  for (size_t i = 0; i < n; i++) {
    size_t best = 0;
    for (size_t j = 1; j < 10; j++)
      if (logits[i * 10 + j] > logits[i * 10 + best]) best = j;
    plain[i] = (int)best;
    ok += (int)best == labels[i];
  }
  char args[512], want[128], buf[256];
  snprintf(args, sizeof args, "run --model models/cnn_s2.onnx %s --labels %s --count %zu --batch 10 --verbose", IMAGES,
           LABELS, n);
  run_result *r = run(args);
  if (r->status) fprintf(stderr, "%s\n", r->err);
  assert_int_equal(r->status, 0);
  /* --verbose: one label per line, the plaintext predictions */
  const char *p = r->out;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(atoi(p), plain[i]);
    p = strchr(p, '\n');
    assert_non_null(p);
    p++;
  }
  snprintf(want, sizeof want, "accuracy: encrypted %.4f, plaintext %.4f", (double)ok / n, (double)ok / n);
  assert_string_equal(line(r->out, "accuracy: ", buf, sizeof buf), want);
  snprintf(want, sizeof want, "agreement with plaintext: 100.00%% (%zu of %zu)", n, n);
  assert_string_equal(line(r->out, "agreement", buf, sizeof buf), want);
  assert_non_null(strstr(r->out, "micro-batch 10"));
  assert_non_null(strstr(r->out, "time per image: "));
  free(x);
  hetee_nn_model_free(m);
}

static void test_refused(void **state) {
  (void)state;
  onnx_builder *b = ob_new(13, 0); /* x [N,2,5,5] */
  ob_init(b, "w", 4, (int64_t[]){2, 2, 3, 3});
  ob_node(b, "Conv", "c1", "x", "w", NULL, "a");
  ob_node(b, "Relu", "r", "a", NULL, NULL, "h");
  ob_node(b, "Add", "skip", "a", "h", NULL, "y");
  uint8_t *buf = NULL;
  size_t len = 0;
  assert_int_equal(ob_pack(b, &buf, &len), 0);
  ob_free(b);
  char path[] = "/tmp/hetee_engine_cli_model_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, buf, len), (ssize_t)len);
  close(fd);
  free(buf);
  const char *why = "node 'skip' (add): adds two activations; the engine runs chains of single-input layers\n";
  char args[512], want[256];
  snprintf(args, sizeof args, "plan %s", path);
  run_result *r = run(args);
  assert_int_equal(r->status, 1);
  snprintf(want, sizeof want, "hetee plan: %s", why);
  assert_string_equal(r->err, want);
  /* run refuses it the same way, before any enclave, key or ciphertext
   * exists: nothing else is printed */
  snprintf(args, sizeof args, "run --model %s %s", path, IMAGES);
  r = run(args);
  assert_int_equal(r->status, 1);
  snprintf(want, sizeof want, "hetee run: %s", why);
  assert_string_equal(r->err, want);
  assert_string_equal(r->out, "");
  unlink(path);
  assert_int_equal(run("run --model models/e2dm.onnx")->status, 2);
  assert_int_equal(run("run --model models/e2dm.onnx " IMAGES " --threads 0")->status, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plan),
      cmocka_unit_test(test_run),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests_name("engine/cli", tests, NULL, NULL);
}
