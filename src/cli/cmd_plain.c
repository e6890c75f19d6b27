/*
 * cmd_plain.c — `hetee plain`: runs the plaintext reference engine (src/nn)
 * on a file of images (IDX or .npy) and prints one predicted label per line,
 * then `accuracy: 0.xxxx` when labels are given. Integer pixel data is scaled
 * as the model was trained (metadata hetee.input_scale, e.g. 1/255); float
 * data is taken as already scaled.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "hetee/nn.h"

static const hetee_cli_opt OPTS[] = {
    {"model", "M.onnx", 'm', "ONNX model (opsets 11-17; docs/nn.md lists the supported operators); required"},
    {"labels", "LABELS", 'l', "IDX or .npy labels [N]; adds a last line 'accuracy: 0.xxxx'"},
    {"count", "N", 'n', "use only the first N images"},
    {"logits-out", "FILE", 'o', "write the logits as float32 .npy of shape [N,classes] (replaced if it exists)"},
    {"time", NULL, 't', "report the time taken on stderr"},
    {0, 0, 0, 0}};
static const hetee_cli_cmd CMD = {
    "hetee plain", "hetee plain --model M.onnx IMAGES [--labels LABELS] [--count N] [--logits-out FILE] [--time]",
    "Runs the plaintext reference engine on IMAGES and prints one predicted label per line.\n"
    "IMAGES: IDX (raw or .gz) or .npy file, [N,784], [N,28,28] or [N,1,28,28]; uint8 pixels are scaled\n"
    "as the model was trained (hetee.input_scale), float32/float64 values are used as they are.",
    OPTS};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int hetee_cmd_plain(int argc, char **argv) {
  const char *model_path = NULL, *images_path = NULL, *labels_path = NULL, *logits_path = NULL;
  size_t count = SIZE_MAX;
  int show_time = 0, ret = 1;
  hetee_nn_model *m = NULL;
  hetee_nn_data *images = NULL, *labels = NULL;
  float *x = NULL, *logits = NULL;

  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &CMD, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'm': model_path = p.arg; break;
    case 'l': labels_path = p.arg; break;
    case 'o': logits_path = p.arg; break;
    case 't': show_time = 1; break;
    case 'n': {
      unsigned v;
      if (hetee_cli_uint(&CMD, "--count", p.arg, 0xffffffffu, &v)) return 2;
      count = v;
      break;
    }
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (p.optind < argc) images_path = argv[p.optind];
  if (p.optind + 1 < argc)
    return hetee_cli_error(&CMD, "more than one IMAGES file ('%s', '%s')", images_path, argv[p.optind + 1]);
  if (!model_path) return hetee_cli_error(&CMD, "--model M.onnx is required");
  if (!images_path) return hetee_cli_error(&CMD, "missing IMAGES (see 'hetee plain --help')");
  if (logits_path && hetee_cli_check_output(&CMD, logits_path, 1)) return 1;

  double t0 = now_seconds();
  if (hetee_nn_model_load(model_path, &m)) {
    fprintf(stderr, "hetee plain: %s\n", hetee_last_error());
    goto err;
  }
  if (hetee_nn_images_load(images_path, &images)) {
    fprintf(stderr, "hetee plain: %s\n", hetee_last_error());
    goto err;
  }
  size_t in = hetee_nn_model_input_size(m), classes = hetee_nn_model_output_size(m);
  size_t n = hetee_nn_data_dims(images)[0];
  if (in != 784) {
    fprintf(stderr, "hetee plain: model %s takes %zu values per sample, images have 784\n", model_path, in);
    goto err;
  }
  if (count < n) n = count;
  if (labels_path) {
    if (hetee_nn_labels_load(labels_path, &labels)) {
      fprintf(stderr, "hetee plain: %s\n", hetee_last_error());
      goto err;
    }
    /* one label per image of the file: a labels file for another image set
     * (60000 training labels for 10000 test images) is a mistake, not a
     * number to print */
    size_t total = hetee_nn_data_dims(images)[0];
    if (hetee_nn_data_count(labels) != total) {
      fprintf(stderr, "hetee plain: %s has %zu labels for the %zu images of %s\n", labels_path,
              hetee_nn_data_count(labels), total, images_path);
      goto err;
    }
  }
  x = malloc(n * in * sizeof *x);
  logits = malloc(n * classes * sizeof *logits);
  if (!x || !logits) {
    fprintf(stderr, "hetee plain: out of memory\n");
    goto err;
  }
  const float *src = hetee_nn_data_values(images);
  double scale = hetee_nn_data_dtype(images) == HETEE_NN_U8 ? hetee_nn_model_input_scale(m) : 1.0;
  for (size_t i = 0; i < n * in; i++) x[i] = (float)(src[i] * scale);
  double t1 = now_seconds();
  if (hetee_nn_forward(m, x, n, logits)) {
    fprintf(stderr, "hetee plain: %s\n", hetee_last_error());
    goto err;
  }
  double t2 = now_seconds();
  size_t correct = 0;
  const float *lab = labels ? hetee_nn_data_values(labels) : NULL;
  for (size_t s = 0; s < n; s++) {
    const float *row = logits + s * classes;
    size_t best = 0;
    for (size_t k = 1; k < classes; k++) best = row[k] > row[best] ? k : best;
    printf("%zu\n", best);
    if (lab) {
      if ((size_t)lab[s] >= classes) {
        fprintf(stderr, "hetee plain: label %zu is %zu but the model has %zu classes\n", s, (size_t)lab[s], classes);
        goto err;
      }
      correct += (size_t)lab[s] == best;
    }
  }
  if (lab) printf("accuracy: %.4f\n", (double)correct / (double)n);
  if (logits_path) {
    size_t dims[2] = {n, classes};
    if (hetee_nn_npy_save_f32(logits_path, logits, 2, dims)) {
      fprintf(stderr, "hetee plain: %s\n", hetee_last_error());
      goto err;
    }
  }
  if (fflush(stdout) != 0) {
    fprintf(stderr, "hetee plain: cannot write the output\n");
    goto err;
  }
  if (show_time) {
    fprintf(stderr, "hetee plain: %zu images, load %.3f s, inference %.3f s (%.1f us/image)\n", n, t1 - t0, t2 - t1,
            (t2 - t1) * 1e6 / (double)n);
  }
  ret = 0;
err:
  free(x);
  free(logits);
  hetee_nn_data_free(images);
  hetee_nn_data_free(labels);
  hetee_nn_model_free(m);
  return ret;
}
