/*
 * bench_infer.c — `hetee-bench infer --model M.onnx [--batch B] [--images N]
 * [--threads T] [--json] [--unbound] [--no-phase] [--no-lanes | --force-lanes]`: encrypted inference end to end on the first N
 * Fashion-MNIST test images (Debian's dataset-fashion-mnist), with the
 * three parties of `hetee run` (src/cli/local_parties.c) and the real
 * enclave process. Reports the engine's counters (hetee_engine_stats):
 * wall time from the encrypted inputs at the host to the sealed results
 * (total_s), host and enclave CPU time and the enclave's share, ct x ct
 * products, key switches (only lane expansions make any), bytes between host and enclave, per
 * stage; the model provider's and data provider's encryption times; and
 * the accuracy of the encrypted predictions against the plaintext engine's
 * (timed too: plain_s). The parties' host holds the expansion keys of 4
 * lanes, so the plan may take lane packings where the cost model prefers
 * them (--no-lanes: never; --force-lanes: wherever one fits, for
 * measurements; docs/engine.md, "Issue 8: lanes").
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/local_parties.h"
#include "hetee/engine.h"
#include "hetee/nn.h"
#include "bench_util.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static int usage(void) {
  fprintf(stderr, "usage: hetee-bench infer --model M.onnx [--batch B] [--images N] [--threads T] [--json] [--unbound] "
                  "[--no-phase] [--no-lanes | --force-lanes]\n");
  return 2;
}

/* JSON string of s (names are ONNX node names: escape quotes and controls). */
static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned char)*s);
    else putchar(*s);
  }
  putchar('"');
}

int hetee_bench_infer(int argc, char **argv) {
  const char *model_path = NULL;
  long batch = 64, images = 0, threads = 1;
  int json = 0, unbound = 0, no_phase = 0, lanes = LOCAL_PARTIES_LANES, force_lanes = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atol(argv[++i]);
    else if (!strcmp(argv[i], "--images") && i + 1 < argc) images = atol(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atol(argv[++i]);
    else if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--unbound")) unbound = 1;
    else if (!strcmp(argv[i], "--no-phase")) no_phase = 1; /* strided convs as they are (comparison) */
    else if (!strcmp(argv[i], "--no-lanes")) lanes = 0;
    else if (!strcmp(argv[i], "--force-lanes")) force_lanes = 1;
    else return usage();
  }
  if (!model_path || batch < 1 || batch > 4096 || images < 0 || images > 10000 || threads < 1 || threads > 64 ||
      (force_lanes && !lanes))
    return usage();
  if (!images) images = batch * 4 < 16 ? 16 : batch * 4;
  if (images > 10000) images = 10000;
  size_t n = (size_t)images;
  hetee_nn_model *m = NULL;
  hetee_engine_plan *p = NULL;
  hetee_nn_data *img = NULL, *lab = NULL;
  float *x = NULL, *logits = NULL;
  size_t n_alloc = 0, in_alloc = 0, classes_alloc = 0; /* for wiping x and logits */
  local_parties t;
  local_infer_result r;
  memset(&t, 0, sizeof t);
  memset(&r, 0, sizeof r);
  int code = 1;
  hetee_engine_plan_options o;
  memset(&o, 0, sizeof o);
  o.batch = (uint32_t)batch;
  o.phase = no_phase ? HETEE_ENGINE_PHASE_NEVER : HETEE_ENGINE_PHASE_AUTO;
  o.lanes = lanes;
  o.force_lanes = force_lanes;
  if (hetee_nn_model_load(model_path, &m) || hetee_engine_plan_build(m, &o, &p) ||
      hetee_nn_images_load(FMNIST "/t10k-images-idx3-ubyte.gz", &img) ||
      hetee_nn_labels_load(FMNIST "/t10k-labels-idx1-ubyte.gz", &lab)) {
    fprintf(stderr, "hetee-bench infer: %s\n", hetee_last_error());
    goto out;
  }
  size_t in = hetee_nn_model_input_size(m), classes = hetee_nn_model_output_size(m);
  if (in != 784) {
    fprintf(stderr, "hetee-bench infer: the model does not take 28x28 images\n");
    goto out;
  }
  x = malloc(n * in * sizeof *x);
  logits = malloc(n * classes * sizeof *logits);
  n_alloc = n, in_alloc = in, classes_alloc = classes;
  if (!x || !logits) goto out;
  double sc = hetee_nn_model_input_scale(m);
  for (size_t i = 0; i < n * in; i++) x[i] = (float)(hetee_nn_data_values(img)[i] * sc);
  double t0 = bench_now();
  if (hetee_nn_forward(m, x, n, logits)) goto out;
  double plain_s = bench_now() - t0;
  t0 = bench_now();
  /* --threads T: the whole pipeline (this process, the launcher and the
   * enclave it spawns) runs on T CPUs, the enclave with threads=T */
  int rc = local_parties_start_cpus(&t, NULL, (int)threads);
  t.unbound = unbound; /* the pre-issue-9 path, for comparison */
  double setup_s = bench_now() - t0;
  if (!rc) rc = local_infer(&t, m, p, x, n, (int)threads, 1, &r);
  if (rc) {
    fprintf(stderr, "hetee-bench infer: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    goto out;
  }
  /* the enclave's CPU time per request type of the run (its own counters;
   * MODEL_LOAD is the one-time registration, not part of the run's figures) */
  static const struct {
    uint16_t type;
    const char *name;
  } OPS[] = {{HETEE_MSG_JOB_START, "job_start"},     {HETEE_MSG_JOB_REFRESH, "job_refresh"},
             {HETEE_MSG_JOB_RELEASE, "job_release"}, {HETEE_MSG_REFRESH, "refresh"},
             {HETEE_MSG_RELEASE, "release"},         {HETEE_MSG_MODEL_LOAD, "model_load"}};
  double op_s[6] = {0};
  unsigned long long op_n[6] = {0}, op_items[6] = {0};
  {
    hetee_enclave_op_stats est[64];
    size_t nst = 0;
    if (!hetee_host_stats(t.e, est, 64, &nst))
      for (size_t i = 0; i < nst; i++)
        for (size_t k = 0; k < 6; k++)
          if (est[i].type == OPS[k].type) {
            op_s[k] = (double)est[i].cpu_ns * 1e-9;
            op_n[k] = (unsigned long long)est[i].count;
            op_items[k] = (unsigned long long)est[i].items;
          }
  }
  size_t agree = 0, ok_enc = 0, ok_plain = 0;
  for (size_t i = 0; i < n; i++) {
    size_t best = 0;
    for (size_t k = 1; k < classes; k++)
      if (logits[i * classes + k] > logits[i * classes + best]) best = k;
    int label = (int)hetee_nn_data_values(lab)[i];
    agree += (size_t)r.pred[i] == best;
    ok_enc += r.pred[i] == label;
    ok_plain += (int)best == label;
  }
  const hetee_engine_stats *s = &r.stats;
  /* the enclave's share of the CPU time the inference took (host process + enclave) */
  double share = s->host_cpu_s + s->enclave_s > 0 ? s->enclave_s / (s->host_cpu_s + s->enclave_s) : 0;
  if (json) {
    printf("{\"model\": ");
    json_str(model_path);
    printf(", \"batch\": %ld, \"micro_batch\": %u, \"threads\": %ld, \"images\": %zu", batch,
           hetee_engine_plan_micro_batch(p), threads, n);
    printf(", \"total_s\": %.6f, \"per_image_ms\": %.4f, \"host_s\": %.6f, \"host_cpu_s\": %.6f, "
           "\"enclave_s\": %.6f, \"enclave_wall_s\": %.6f, \"enclave_share\": %.4f",
           s->total_s, s->total_s * 1e3 / n, s->host_s, s->host_cpu_s, s->enclave_s, s->wall_enclave_s, share);
    /* issue 9: the enclave's integrity work (stage-0 input decryption, Freivalds
     * checks, next-stage expectations); share of the run's wall time and of its CPU */
    printf(", \"bound\": %d", !unbound);
    printf(", \"integrity_s\": %.6f, \"integrity_share_total\": %.4f, \"integrity_share_cpu\": %.4f, "
           "\"model_bind_s\": %.4f",
           s->integrity_s, s->total_s > 0 ? s->integrity_s / s->total_s : 0,
           s->host_cpu_s + s->enclave_s > 0 ? s->integrity_s / (s->host_cpu_s + s->enclave_s) : 0, r.model_bind_s);
    printf(", \"acc_encrypted\": %.4f, \"acc_plain\": %.4f, \"agree\": %.4f", (double)ok_enc / n,
           (double)ok_plain / n, (double)agree / n);
    printf(", \"keyswitches\": %llu, \"ctct_products\": %llu, \"enclave_encryptions\": %llu, "
           "\"enclave_decryptions\": %llu",
           (unsigned long long)s->keyswitches, (unsigned long long)s->products,
           (unsigned long long)s->enclave_encryptions, (unsigned long long)s->enclave_decryptions);
    printf(", \"bytes_host_enclave\": %llu, \"bytes_to_enclave\": %llu, \"bytes_from_enclave\": %llu",
           (unsigned long long)(s->bytes_to_enclave + s->bytes_from_enclave),
           (unsigned long long)s->bytes_to_enclave, (unsigned long long)s->bytes_from_enclave);
    printf(", \"model_ct_bytes\": %zu, \"plain_s\": %.6f, \"mp_encrypt_s\": %.4f, \"model_load_s\": %.4f, "
           "\"dp_encrypt_s\": %.4f, \"input_load_s\": %.4f, \"dp_open_s\": %.4f, \"setup_s\": %.4f",
           r.model_ct_bytes, plain_s, r.mp_encrypt_s, r.model_load_s, r.dp_encrypt_s, r.input_load_s, r.dp_open_s,
           setup_s);
    printf(", \"enclave_ops\": {");
    for (size_t k = 0; k < 6; k++)
      printf("%s\"%s\": {\"count\": %llu, \"cpu_s\": %.6f, \"items\": %llu}", k ? ", " : "", OPS[k].name, op_n[k],
             op_s[k], op_items[k]);
    printf("}");
    printf(", \"layers\": [");
    for (size_t k = 0; k < s->nstages; k++) {
      hetee_engine_stage_info si;
      if (hetee_engine_plan_stage(p, k, &si)) break;
      const hetee_engine_stage_stats *ss = &s->stage[k];
      printf("%s{\"stage\": %zu, \"names\": ", k ? ", " : "", k);
      json_str(si.names);
      printf(", \"cb\": %d, \"mb\": %d, \"nimg\": %d, \"products\": %llu, \"host_s\": %.6f, \"enclave_s\": %.6f, "
             "\"wall_s\": %.6f, \"enclave_encryptions\": %llu, \"enclave_decryptions\": %llu, "
             "\"bytes_to_enclave\": %llu, \"bytes_from_enclave\": %llu, \"predicted_s\": %.6f}",
             si.pack.cb, si.pack.mb, si.pack.nimg, (unsigned long long)ss->products, ss->host_s, ss->enclave_s,
             ss->wall_s, (unsigned long long)ss->enclave_encryptions, (unsigned long long)ss->enclave_decryptions,
             (unsigned long long)ss->bytes_to_enclave, (unsigned long long)ss->bytes_from_enclave,
             si.predicted_s * (double)s->micro_batches);
    }
    printf("]}\n");
  } else {
    printf("model %s, %zu images, micro-batch %u, %ld host thread(s)\n", model_path, n,
           hetee_engine_plan_micro_batch(p), threads);
    printf("total %.3f s = %.3f ms/image (host CPU %.3f s, enclave CPU %.3f s: enclave share %.1f%%)\n", s->total_s,
           s->total_s * 1e3 / n, s->host_cpu_s, s->enclave_s, 100 * share);
    printf("integrity %.4f s (%.2f%% of the total, %.2f%% of the CPU time); model bound in %.2f s\n", s->integrity_s,
           s->total_s > 0 ? 100 * s->integrity_s / s->total_s : 0,
           s->host_cpu_s + s->enclave_s > 0 ? 100 * s->integrity_s / (s->host_cpu_s + s->enclave_s) : 0,
           r.model_bind_s);
    printf("accuracy encrypted %.4f, plaintext %.4f, agreement %.2f%%\n", (double)ok_enc / n, (double)ok_plain / n,
           100.0 * agree / n);
    printf("ct x ct products %llu, key switches %llu, enclave enc/dec %llu/%llu, host<->enclave %.1f MiB\n",
           (unsigned long long)s->products, (unsigned long long)s->keyswitches,
           (unsigned long long)s->enclave_encryptions, (unsigned long long)s->enclave_decryptions,
           (double)(s->bytes_to_enclave + s->bytes_from_enclave) / (1 << 20));
    printf("model provider encrypt %.2f s (%.1f MiB), data provider encrypt %.3f s, plaintext engine %.4f s\n",
           r.mp_encrypt_s, (double)r.model_ct_bytes / (1 << 20), r.dp_encrypt_s, plain_s);
    printf("enclave CPU per request:");
    for (size_t k = 0; k < 5; k++)
      if (op_n[k]) printf(" %s %.3f s (%llu)", OPS[k].name, op_s[k], op_n[k]);
    printf("\n");
    for (size_t k = 0; k < s->nstages; k++) {
      hetee_engine_stage_info si;
      if (hetee_engine_plan_stage(p, k, &si)) break;
      const hetee_engine_stage_stats *ss = &s->stage[k];
      printf("  stage %zu: host %.3f s, enclave %.3f s, products %llu (%s)\n", k, ss->host_s, ss->enclave_s,
             (unsigned long long)ss->products, si.names);
    }
  }
  code = 0;
out:
  local_infer_clear(&r);
  local_parties_stop(&t);
  /* the data provider's plaintext images and the plaintext logits */
  if (x) sodium_memzero(x, n_alloc * in_alloc * sizeof *x);
  if (logits) sodium_memzero(logits, n_alloc * classes_alloc * sizeof *logits);
  free(x);
  free(logits);
  hetee_nn_data_free(img);
  hetee_nn_data_free(lab);
  hetee_engine_plan_free(p);
  hetee_nn_model_free(m);
  return code;
}
