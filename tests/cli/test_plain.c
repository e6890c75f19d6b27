/*
 * test_plain.c — integration test of the real `hetee plain` binary
 * ($HETEE_BIN_DIR/hetee), run the way a user runs it on Debian's
 * Fashion-MNIST test files. The expected predictions come from the logits
 * PyTorch saved when it trained each model (models/<m>.logits100.npy): the
 * printed labels must be their argmax, the accuracy line must be the share
 * of them equal to the true labels, and --logits-out must write those
 * logits (within 1e-4) as a float32 [N,10] .npy. Also: .npy input, usage
 * errors (exit 2) and bad files (exit 1 with a message).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "nn/nn_test_util.h"

#define IMAGES FMNIST_DIR "/t10k-images-idx3-ubyte.gz"
#define LABELS FMNIST_DIR "/t10k-labels-idx1-ubyte.gz"

typedef struct {
  int status;
  char *out;
  size_t len;
} run_result;

/* Runs `hetee ARGS` through the shell, capturing stdout (stderr to a file
 * whose content is appended after a "\n--stderr--\n" marker). */
static run_result run(const char *args) {
  char cmd[4096], errf[] = "/tmp/hetee_plain_err_XXXXXX";
  int fd = mkstemp(errf);
  assert_true(fd >= 0);
  close(fd);
  const char *bin = getenv("HETEE_BIN_DIR");
  snprintf(cmd, sizeof cmd, "'%s/hetee' %s 2>%s", bin ? bin : ".", args, errf);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  run_result r = {0, malloc(1 << 20), 0};
  assert_non_null(r.out);
  size_t got;
  while ((got = fread(r.out + r.len, 1, (1 << 20) - 1 - r.len, p)) > 0) r.len += got;
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  FILE *e = fopen(errf, "rb");
  if (e) {
    const char *mark = "\n--stderr--\n";
    if (r.len + strlen(mark) < (1 << 20) - 1) {
      memcpy(r.out + r.len, mark, strlen(mark));
      r.len += strlen(mark);
      r.len += fread(r.out + r.len, 1, (1 << 20) - 1 - r.len, e);
    }
    fclose(e);
  }
  unlink(errf);
  r.out[r.len] = 0;
  return r;
}

static void check_model(const char *model) {
  char args[1024], rel[256], logits[] = "/tmp/hetee_plain_logits_XXXXXX";
  int fd = mkstemp(logits);
  assert_true(fd >= 0);
  close(fd);
  const size_t n = 100;
  snprintf(args, sizeof args, "plain --model '%s' '%s' --labels '%s' --count %zu --logits-out '%s'",
           src_path(model), IMAGES, LABELS, n, logits);
  run_result r = run(args);
  if (r.status) fprintf(stderr, "%s\n", r.out);
  assert_int_equal(r.status, 0);

  /* Expected: argmax of PyTorch's logits; accuracy against the labels. */
  snprintf(rel, sizeof rel, "%.*s.logits100.npy", (int)(strlen(model) - 5), model);
  hetee_nn_data *ref = NULL, *lab = NULL, *got = NULL;
  assert_int_equal(hetee_nn_data_load(src_path(rel), &ref), 0);
  assert_int_equal(hetee_nn_labels_load(LABELS, &lab), 0);
  char *line = r.out;
  size_t correct = 0;
  for (size_t s = 0; s < n; s++) {
    const float *row = hetee_nn_data_values(ref) + s * 10;
    int best = 0;
    for (int k = 1; k < 10; k++) best = row[k] > row[best] ? k : best;
    char *end;
    long v = strtol(line, &end, 10);
    assert_true(end != line && *end == '\n');
    assert_int_equal(v, best);
    correct += best == (int)hetee_nn_data_values(lab)[s];
    line = end + 1;
  }
  char want[64];
  snprintf(want, sizeof want, "accuracy: %.4f\n", (double)correct / (double)n);
  assert_true(!strncmp(line, want, strlen(want)));
  line += strlen(want);
  assert_true(!strncmp(line, "\n--stderr--\n", 12));

  assert_int_equal(hetee_nn_data_load(logits, &got), 0);
  assert_int_equal(hetee_nn_data_dtype(got), HETEE_NN_F32);
  assert_int_equal(hetee_nn_data_rank(got), 2);
  assert_true(hetee_nn_data_dims(got)[0] == n && hetee_nn_data_dims(got)[1] == 10);
  assert_true(max_abs_diff(hetee_nn_data_values(got), hetee_nn_data_values(ref), n * 10) <= 1e-4);
  unlink(logits);
  hetee_nn_data_free(ref);
  hetee_nn_data_free(lab);
  hetee_nn_data_free(got);
  free(r.out);
}

static void test_bundled_models(void **state) {
  (void)state;
  check_model("models/mlp.onnx");
  check_model("models/cnn.onnx");
  check_model("models/e2dm.onnx");
  check_model("models/mlp_small.onnx");
  check_model("models/mlp_odd.onnx");
  check_model("models/cnn_s2.onnx");
  check_model("models/cnn_bn.onnx");
  check_model("models/deep.onnx");
}

/* The same images as float32 [N,784] in [0,1] give the same predictions as
 * the uint8 IDX file (scaled by the model's 1/255). */
static void test_npy_input(void **state) {
  (void)state;
  hetee_nn_data *img = NULL;
  assert_int_equal(hetee_nn_images_load(IMAGES, &img), 0);
  const size_t n = 20;
  float *x = malloc(n * 784 * sizeof *x);
  assert_non_null(x);
  for (size_t i = 0; i < n * 784; i++) x[i] = (float)(hetee_nn_data_values(img)[i] / 255.0);
  char path[] = "/tmp/hetee_plain_in_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  size_t dims[2] = {n, 784};
  assert_int_equal(hetee_nn_npy_save_f32(path, x, 2, dims), 0);
  char args[1024];
  snprintf(args, sizeof args, "plain --model '%s' '%s'", src_path("models/cnn.onnx"), path);
  run_result a = run(args);
  snprintf(args, sizeof args, "plain --model '%s' '%s' --count %zu", src_path("models/cnn.onnx"), IMAGES, n);
  run_result b = run(args);
  assert_int_equal(a.status, 0);
  assert_int_equal(b.status, 0);
  assert_string_equal(a.out, b.out);
  unlink(path);
  free(x);
  free(a.out);
  free(b.out);
  hetee_nn_data_free(img);
}

static void test_errors(void **state) {
  (void)state;
  char args[1024];
  run_result r = run("plain --help");
  assert_int_equal(r.status, 0);
  assert_non_null(strstr(r.out, "usage: hetee plain --model M.onnx IMAGES"));
  free(r.out);
  r = run("plain");
  assert_int_equal(r.status, 2);
  free(r.out);
  r = run("plain --model x.onnx a b");
  assert_int_equal(r.status, 2);
  free(r.out);
  r = run("plain --model x.onnx a --count -3");
  assert_int_equal(r.status, 2);
  assert_non_null(strstr(r.out, "--count needs an integer in 1.."));
  free(r.out);
  r = run("plain --model x.onnx a --frobnicate");
  assert_int_equal(r.status, 2);
  free(r.out);
  /* A label file given as images: refused with its shape. */
  snprintf(args, sizeof args, "plain --model '%s' '%s'", src_path("models/mlp.onnx"), LABELS);
  r = run(args);
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.out, "images of shape [10000]"));
  free(r.out);
  /* A model with an unsupported operator. */
  snprintf(args, sizeof args, "plain --model '%s' '%s'", src_path("tests/nn/data/unsupported_abs.onnx"), IMAGES);
  r = run(args);
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.out, "unsupported operator 'Abs' in node '/Abs'"));
  free(r.out);
  /* Images as the model: not ONNX. */
  snprintf(args, sizeof args, "plain --model '%s' '%s'", IMAGES, IMAGES);
  r = run(args);
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.out, "not an ONNX model"));
  free(r.out);
  /* The training set's 60000 labels for the 10000 test images: an error,
   * not an accuracy (also with --count, which picks images, not labels). */
  snprintf(args, sizeof args, "plain --model '%s' '%s' --labels '%s' --count 10", src_path("models/mlp.onnx"), IMAGES,
           FMNIST_DIR "/train-labels-idx1-ubyte.gz");
  r = run(args);
  assert_int_equal(r.status, 1);
  assert_non_null(strstr(r.out, "has 60000 labels for the 10000 images"));
  assert_null(strstr(r.out, "accuracy"));
  free(r.out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bundled_models),
      cmocka_unit_test(test_npy_input),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("cli/plain", tests, NULL, NULL);
}
