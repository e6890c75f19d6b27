/*
 * cmd_run.c — `hetee run --model M.onnx IMAGES [--labels L] [--count N]
 * [--batch B] [--threads T] [--platform DIR] [--verbose] [--no-lanes | --force-lanes]`: encrypted
 * inference end to end in one process playing the three parties
 * (local_parties.c): the host starts the real enclave (sim backend, a
 * temporary platform unless --platform names one), the model provider and
 * the data provider verify its evidence, the model provider encrypts the
 * model, the data provider its images, the host runs the layer loop with
 * the enclave, and the data provider opens the released predictions.
 * Prints one predicted label per line with --verbose, then a summary:
 * encrypted and plaintext accuracy (hetee_nn_forward on the same images),
 * agreement between the two, time per image and the enclave's share.
 * A model the engine cannot run is refused before anything is encrypted.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <sched.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/local_parties.h"
#include "hetee/engine.h"
#include "hetee/nn.h"

static const hetee_cli_opt OPTS[] = {
    {"model", "M.onnx", 'm', "ONNX model (see `hetee plan` for what the engine runs); required"},
    {"labels", "L", 'l', "labels: report accuracies"},
    {"count", "N", 'n', "use only the first N images"},
    {"batch", "B", 'b', "samples per micro-batch (default 64; lowered to fit the enclave frames)"},
    {"threads", "T", 't', "CPUs for host and enclave, both pinned to them, 1..64 (default: every CPU this process may use)"},
    {"platform", "DIR", 'p', "sim platform (default: a temporary one)"},
    {"verbose", NULL, 'v', "print one predicted label per line"},
    {"no-lanes", NULL, 'L', "never plan lane packings (by default the planner prices them: the parties hold the\n"
                            "expansion keys; docs/engine.md, \"Issue 8: lanes\")"},
    {"force-lanes", NULL, 'F', "every stage after the first takes its cheapest lane packing: fewer enclave\n"
                               "encryptions, key switches on the host"},
    {0, 0, 0, 0}};
static const hetee_cli_cmd CMD = {
    "hetee run",
    "hetee run --model M.onnx IMAGES [--labels L] [--count N] [--batch B] [--threads T]\n"
    "                 [--platform DIR] [--verbose] [--no-lanes | --force-lanes]",
    "Encrypted inference: model provider, data provider and host in one process, with the real\n"
    "enclave process (sim backend). Prints encrypted vs plaintext accuracy and time per image.\n"
    "IMAGES: IDX (raw or .gz) or .npy images, as for `hetee plain`.",
    OPTS};

static size_t argmax_f(const float *v, size_t n) {
  size_t best = 0;
  for (size_t k = 1; k < n; k++)
    if (v[k] > v[best]) best = k;
  return best;
}

int hetee_cmd_run(int argc, char **argv) {
  const char *model_path = NULL, *images_path = NULL, *labels_path = NULL, *platform = NULL;
  unsigned count = 0, batch = 0, threads = 1;
  int verbose = 0, ret = 1, lanes = LOCAL_PARTIES_LANES, force_lanes = 0;
  cpu_set_t cs;
  if (!sched_getaffinity(0, sizeof cs, &cs) && CPU_COUNT(&cs) > 0) threads = CPU_COUNT(&cs) > 64 ? 64 : (unsigned)CPU_COUNT(&cs);
  hetee_cli_parser cp;
  hetee_cli_parser_init(&cp, &CMD, argc, argv);
  for (int k; (k = hetee_cli_next(&cp)) != -1;) {
    switch (k) {
    case 'm': model_path = cp.arg; break;
    case 'l': labels_path = cp.arg; break;
    case 'p': platform = cp.arg; break;
    case 'v': verbose = 1; break;
    case 'L': lanes = 0; break;
    case 'F': force_lanes = 1; break;
    case 'n': if (hetee_cli_uint(&CMD, "--count", cp.arg, HETEE_ENGINE_MAX_IMAGES, &count)) return 2; break;
    case 'b': if (hetee_cli_uint(&CMD, "--batch", cp.arg, HETEE_ENGINE_MAX_IMAGES, &batch)) return 2; break;
    case 't': if (hetee_cli_uint(&CMD, "--threads", cp.arg, 64, &threads)) return 2; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (cp.optind < argc) images_path = argv[cp.optind];
  if (cp.optind + 1 < argc)
    return hetee_cli_error(&CMD, "more than one IMAGES file ('%s', '%s')", images_path, argv[cp.optind + 1]);
  if (!model_path) return hetee_cli_error(&CMD, "--model M.onnx is required");
  if (force_lanes && !lanes) return hetee_cli_error(&CMD, "--no-lanes and --force-lanes together");
  if (!images_path) return hetee_cli_error(&CMD, "missing IMAGES (see 'hetee run --help')");
  hetee_nn_model *m = NULL;
  hetee_engine_plan *p = NULL;
  hetee_nn_data *images = NULL, *labels = NULL;
  float *x = NULL, *logits = NULL;
  size_t n_alloc = 0, in_alloc = 0, classes_alloc = 0; /* for wiping x and logits */
  local_parties t;
  local_infer_result r;
  memset(&t, 0, sizeof t);
  memset(&r, 0, sizeof r);
  /* the plan first: an unsupported model is refused before any encryption */
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = batch;
  o.lanes = lanes;
  o.force_lanes = force_lanes;
  if (hetee_nn_model_load(model_path, &m) || hetee_engine_plan_build(m, &o, &p)) {
    fprintf(stderr, "hetee run: %s\n", hetee_last_error());
    goto out;
  }
  if (hetee_nn_images_load(images_path, &images) || (labels_path && hetee_nn_labels_load(labels_path, &labels))) {
    fprintf(stderr, "hetee run: %s\n", hetee_last_error());
    goto out;
  }
  size_t in = hetee_nn_model_input_size(m), classes = hetee_nn_model_output_size(m);
  size_t n = hetee_nn_data_dims(images)[0];
  if (in != 784) {
    fprintf(stderr, "hetee run: model %s takes %zu values per sample, images have 784\n", model_path, in);
    goto out;
  }
  if (count && count < n) n = count;
  if (n > HETEE_ENGINE_MAX_IMAGES) n = HETEE_ENGINE_MAX_IMAGES;
  if (labels && hetee_nn_data_count(labels) != hetee_nn_data_dims(images)[0]) { /* one label per image */
    fprintf(stderr, "hetee run: %s has %zu labels for the %zu images of %s\n", labels_path,
            hetee_nn_data_count(labels), hetee_nn_data_dims(images)[0], images_path);
    goto out;
  }
  x = malloc(n * in * sizeof *x);
  logits = malloc(n * classes * sizeof *logits);
  n_alloc = n, in_alloc = in, classes_alloc = classes;
  if (!x || !logits) {
    fprintf(stderr, "hetee run: out of memory\n");
    goto out;
  }
  const float *src = hetee_nn_data_values(images);
  double scale = hetee_nn_data_dtype(images) == HETEE_NN_U8 ? hetee_nn_model_input_scale(m) : 1.0;
  for (size_t i = 0; i < n * in; i++) x[i] = (float)(src[i] * scale);
  if (hetee_nn_forward(m, x, n, logits)) {
    fprintf(stderr, "hetee run: %s\n", hetee_last_error());
    goto out;
  }
  int rc = local_parties_start_cpus(&t, platform, (int)threads); /* host + enclave on `threads` CPUs */
  if (!rc) rc = local_infer(&t, m, p, x, n, (int)threads, 1, &r);
  if (rc) {
    fprintf(stderr, "hetee run: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    goto out;
  }
  size_t agree = 0, ok_enc = 0, ok_plain = 0;
  const float *lab = labels ? hetee_nn_data_values(labels) : NULL;
  for (size_t i = 0; i < n; i++) {
    int plain = (int)argmax_f(logits + i * classes, classes);
    if (verbose) printf("%d\n", r.pred[i]);
    agree += r.pred[i] == plain;
    if (lab) {
      ok_enc += (float)r.pred[i] == lab[i];
      ok_plain += (float)plain == lab[i];
    }
  }
  const hetee_engine_stats *s = &r.stats;
  double cpu = s->host_cpu_s + s->enclave_s;
  printf("model %s: %zu stages, micro-batch %u, %.1f MiB of encrypted weights\n", model_path,
         hetee_engine_plan_num_stages(p), hetee_engine_plan_micro_batch(p), (double)r.model_ct_bytes / (1 << 20));
  printf("images: %zu\n", n);
  if (lab) printf("accuracy: encrypted %.4f, plaintext %.4f\n", (double)ok_enc / n, (double)ok_plain / n);
  printf("agreement with plaintext: %.2f%% (%zu of %zu)\n", 100.0 * agree / n, agree, n);
  printf("time per image: %.3f ms (CPU per image: host %.3f ms, enclave %.3f ms; enclave share %.1f%%)\n",
         s->total_s * 1e3 / n, s->host_cpu_s * 1e3 / n, s->enclave_s * 1e3 / n,
         cpu > 0 ? 100.0 * s->enclave_s / cpu : 0.0);
  printf("model provider: encrypt %.2f s; data provider: encrypt %.3f ms per image; host threads %u\n",
         r.mp_encrypt_s, r.dp_encrypt_s * 1e3 / n, threads);
  /* issue 9: every layer of every image was checked (a failed check stops the run) */
  printf("integrity: every layer checked, %zu images released; checks %.3f s (%.1f%% of the run), model bound in "
         "%.2f s\n",
         n, r.stats.integrity_s, r.stats.total_s > 0 ? 100 * r.stats.integrity_s / r.stats.total_s : 0,
         r.model_bind_s);
  ret = fflush(stdout) == 0 ? 0 : 1;
out:
  local_infer_clear(&r);
  local_parties_stop(&t);
  /* the data provider's plaintext images and the plaintext logits */
  if (x) sodium_memzero(x, n_alloc * in_alloc * sizeof *x);
  if (logits) sodium_memzero(logits, n_alloc * classes_alloc * sizeof *logits);
  free(x);
  free(logits);
  hetee_nn_data_free(images);
  hetee_nn_data_free(labels);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
  return ret;
}
