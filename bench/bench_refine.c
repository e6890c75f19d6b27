/*
 * bench_refine.c — `hetee-bench refine --model M.onnx [--batch B]
 * [--samples S] [--accumulate A] [--train last|all|K] [--lr LR]
 * [--momentum MU] [--wd WD] [--lr-schedule constant|step|cosine]
 * [--lr-step K] [--lr-gamma G] [--lr-total U] [--lr-min F] [--threads T]
 * [--json]`: refines the model
 * encrypted for one epoch over Fashion-MNIST training images 6000..6000+S
 * (the bundled mlp_small was trained on the first 6000), and the same with
 * the plaintext twin (same order, same settings); reports test accuracy
 * before, after (the refined weights decrypted by the model provider and
 * evaluated on the 10000 test images) and after plaintext SGD, throughput
 * of the refining (host + trusted side; the data provider's encryption is
 * timed apart as dp_seconds) and the trusted side's share of the CPU time.
 *
 * The trusted side runs in the real enclave process (sim backend): the
 * three parties are set up as for `hetee-bench infer` (local_parties.c:
 * temporary platform, MP in the measured mp= list, verified evidence,
 * sessions, the MP owns the model through its release policy); the MP
 * encrypts its model under the enclave's key and authorizes the refine
 * job (hetee_refine_auth_msg), the enclave's CPU is read from its STATS,
 * and the refined weights reach the MP sealed to its session
 * (hetee_host_refine_fetch). --in-process runs the test twin instead (the
 * trusted side as library calls with a secret key in this process: for
 * comparison only).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "cli/local_parties.h"
#include "hemat/refine_internal.h"
#include "hetee/refine.h"
#include "bench_util.h"

#define REFINE_MODEL_ID 11

#define FMNIST "/usr/share/datasets/fashion-mnist"
#define FIRST 6000u

static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
         1e-6 * (double)ru.ru_stime.tv_usec;
}

static int usage(void) {
  fprintf(stderr,
          "usage: hetee-bench refine --model M.onnx [--batch B] [--samples S] [--accumulate A] [--train last|all|K]\n"
          "       [--lr LR] [--momentum MU] [--wd WD] [--loss xent|mse] [--threads T] [--no-plain] [--plain-only]\n"
          "       [--lr-schedule constant|step|cosine] [--lr-step K] [--lr-gamma G] [--lr-total U] [--lr-min F]\n"
          "       [--ckpt PATH [--ckpt-every N]] [--validate N] [--in-process] [--json]\n"
          "  --ckpt: sealed checkpoints (enclave job state + trained layers' encrypted state, one file; the frozen layers once in PATH.frozen) every N updates\n"
          "  --validate: after the epoch, the enclave's validation report on the first N test images\n"
          "  step: lr x G every K updates (default K 100, G 0.5); cosine: from lr to F over U updates\n"
          "  (default U: the run's updates, F 0)\n");
  return 2;
}

static float *scaled(const hetee_nn_data *d, double sc, size_t off, size_t n, size_t per) {
  float *x = malloc(n * per * sizeof *x);
  if (!x) return NULL;
  const float *v = hetee_nn_data_values(d) + off * per;
  for (size_t i = 0; i < n * per; i++) x[i] = (float)(v[i] * sc);
  return x;
}

/* sealed checkpoints, timed (their time is inside `seconds` too) */
static unsigned ck_count;
static double ck_seconds, ck_times[4096];
/* The data provider signs each batch's witness authorization. */
static int dp_sign(void *arg, const uint8_t *msg, size_t len, uint8_t sig[64]) {
  return hetee_party_key_sign(arg, msg, len, sig);
}

static int ck_write_timed(const hetee_refine_state *s, hetee_refine_trusted *t, const char *path) {
  double t0 = bench_now();
  int rc = hetee_refine_checkpoint_write_sealed(s, t, path);
  double dt = bench_now() - t0;
  ck_seconds += dt;
  if (rc == 0 && ck_count < 4096) ck_times[ck_count] = dt;
  ck_count += rc == 0;
  return rc;
}

/* the median of the checkpoints after the first (the first one also writes
 * the frozen layers' file) */
static double ck_median_rest(void) {
  unsigned n = ck_count < 4096 ? ck_count : 4096;
  if (n < 2) return 0;
  double *v = malloc((n - 1) * sizeof *v);
  if (!v) return 0;
  memcpy(v, ck_times + 1, (n - 1) * sizeof *v);
  qsort(v, n - 1, sizeof *v, bench_cmp_double);
  double m = (n - 1) % 2 ? v[(n - 1) / 2] : (v[(n - 1) / 2 - 1] + v[(n - 1) / 2]) / 2;
  free(v);
  return m;
}

int hetee_bench_refine(int argc, char **argv) {
  const char *model_path = NULL;
  long batch = 64, samples = 54000, accumulate = 1, threads = 2;
  int train = 1, json = 0, do_plain = 1, plain_only = 0, loss = HETEE_REFINE_LOSS_XENT, in_process = 0;
  double lr = 0.01, mom = 0.9, wd = 0, lr_gamma = 0.5, lr_min = 0;
  long lr_step = 100, lr_total = 0, ckpt_every = 10, val_n = 0;
  const char *ckpt_path = NULL;
  hetee_refine_schedule sched;
  memset(&sched, 0, sizeof sched);
  static const char *const sched_names[] = {"constant", "step", "cosine"};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atol(argv[++i]);
    else if (!strcmp(argv[i], "--samples") && i + 1 < argc) samples = atol(argv[++i]);
    else if (!strcmp(argv[i], "--accumulate") && i + 1 < argc) accumulate = atol(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atol(argv[++i]);
    else if (!strcmp(argv[i], "--lr") && i + 1 < argc) lr = atof(argv[++i]);
    else if (!strcmp(argv[i], "--momentum") && i + 1 < argc) mom = atof(argv[++i]);
    else if (!strcmp(argv[i], "--wd") && i + 1 < argc) wd = atof(argv[++i]);
    else if (!strcmp(argv[i], "--lr-schedule") && i + 1 < argc) {
      i++;
      if (!strcmp(argv[i], "constant")) sched.kind = HETEE_REFINE_LR_CONSTANT;
      else if (!strcmp(argv[i], "step")) sched.kind = HETEE_REFINE_LR_STEP;
      else if (!strcmp(argv[i], "cosine")) sched.kind = HETEE_REFINE_LR_COSINE;
      else return usage();
    } else if (!strcmp(argv[i], "--lr-step") && i + 1 < argc) lr_step = atol(argv[++i]);
    else if (!strcmp(argv[i], "--lr-gamma") && i + 1 < argc) lr_gamma = atof(argv[++i]);
    else if (!strcmp(argv[i], "--lr-total") && i + 1 < argc) lr_total = atol(argv[++i]);
    else if (!strcmp(argv[i], "--lr-min") && i + 1 < argc) lr_min = atof(argv[++i]);
    else if (!strcmp(argv[i], "--ckpt") && i + 1 < argc) ckpt_path = argv[++i];
    else if (!strcmp(argv[i], "--ckpt-every") && i + 1 < argc) ckpt_every = atol(argv[++i]);
    else if (!strcmp(argv[i], "--validate") && i + 1 < argc) val_n = atol(argv[++i]);
    else if (!strcmp(argv[i], "--loss") && i + 1 < argc) {
      i++;
      loss = !strcmp(argv[i], "mse") ? HETEE_REFINE_LOSS_MSE : HETEE_REFINE_LOSS_XENT;
    } else if (!strcmp(argv[i], "--train") && i + 1 < argc) {
      i++;
      train = !strcmp(argv[i], "all") ? 0 : !strcmp(argv[i], "last") ? 1 : atoi(argv[i]);
    } else if (!strcmp(argv[i], "--no-plain")) do_plain = 0;
    else if (!strcmp(argv[i], "--plain-only")) plain_only = 1;
    else if (!strcmp(argv[i], "--in-process")) in_process = 1;
    else if (!strcmp(argv[i], "--json")) json = 1;
    else return usage();
  }
  if (!model_path || batch < 1 || batch > 1024 || samples < 1 || samples > 60000 - (long)FIRST || accumulate < 1 ||
      threads < 1 || threads > 64 || train < 0 || lr_step < 1 || lr_total < 0 || ckpt_every < 1 || val_n < 0 ||
      val_n > 10000 || (in_process && (ckpt_path || val_n)))
    return usage();
  if (sched.kind == HETEE_REFINE_LR_STEP) {
    sched.step_every = (uint32_t)lr_step;
    sched.gamma = lr_gamma;
  } else if (sched.kind == HETEE_REFINE_LR_COSINE) {
    long updates = ((samples + batch - 1) / batch + accumulate - 1) / accumulate;
    sched.total = (uint32_t)(lr_total ? lr_total : updates);
    sched.lr_min = lr_min;
  }
  hetee_nn_model *m = NULL;
  hetee_nn_data *img = NULL, *lab = NULL, *timg = NULL, *tlab = NULL;
  hetee_refine_weights w0, wp, we;
  memset(&w0, 0, sizeof w0);
  memset(&wp, 0, sizeof wp);
  memset(&we, 0, sizeof we);
  hetee_ckks_context *ctx = NULL;
  hetee_ckks_secret_key *sk = NULL;
  hetee_ckks_public_key *pk = NULL;
  hetee_refine_state *s = NULL;
  hetee_refine_trusted *t = NULL;
  local_parties lp;
  memset(&lp, 0, sizeof lp);
  int lp_started = 0;
  float *x = NULL, *y = NULL, *tx = NULL;
  int code = 1;
  hetee_refine_config cfg = {(uint32_t)batch, (uint32_t)accumulate, train, loss, lr, mom, wd, 2026};
  hetee_refine_plan p;
  if (hetee_nn_model_load(model_path, &m) || hetee_refine_weights_from_model(m, &w0) ||
      hetee_refine_plan_build(&w0, &cfg, 0, &p) || hetee_refine_plan_set_schedule(&p, &sched) ||
      hetee_nn_images_load(FMNIST "/train-images-idx3-ubyte.gz", &img) ||
      hetee_nn_labels_load(FMNIST "/train-labels-idx1-ubyte.gz", &lab) ||
      hetee_nn_images_load(FMNIST "/t10k-images-idx3-ubyte.gz", &timg) ||
      hetee_nn_labels_load(FMNIST "/t10k-labels-idx1-ubyte.gz", &tlab)) {
    fprintf(stderr, "hetee-bench refine: %s\n", hetee_last_error());
    goto out;
  }
  size_t in = (size_t)w0.k[0], ntest = hetee_nn_data_count(tlab);
  double sc = hetee_nn_model_input_scale(m);
  x = scaled(img, sc, FIRST, (size_t)samples, in);
  y = malloc((size_t)samples * sizeof *y);
  tx = scaled(timg, sc, 0, ntest, in);
  if (!x || !y || !tx) goto out;
  memcpy(y, hetee_nn_data_values(lab) + FIRST, (size_t)samples * sizeof *y);
  const float *ty = hetee_nn_data_values(tlab);
  if (!json) {
    hetee_refine_plan_print(&p, stdout);
    printf("learning rate: %g, schedule %s", lr, sched_names[sched.kind]);
    if (sched.kind == HETEE_REFINE_LR_STEP) printf(" (x %g every %u updates)", sched.gamma, sched.step_every);
    if (sched.kind == HETEE_REFINE_LR_COSINE) printf(" (to %g over %u updates)", sched.lr_min, sched.total);
    printf("\n");
  }
  double acc_before = hetee_refine_plain_accuracy(&w0, tx, ty, ntest);
  double plain_s = 0, plain_acc = -1;
  if (do_plain) {
    if (hetee_refine_weights_copy(&w0, &wp)) goto out;
    hetee_refine_plain tw;
    if (hetee_refine_plain_init(&tw, &p, &wp)) goto out;
    double t0 = bench_now();
    int rc = hetee_refine_plain_run(&tw, x, y, (uint32_t)samples, 1);
    plain_s = bench_now() - t0;
    hetee_refine_plain_clear(&tw);
    if (rc) goto out;
    plain_acc = hetee_refine_plain_accuracy(&wp, tx, ty, ntest);
    if (!json || plain_only) printf("plaintext SGD: %.1f s, test accuracy %.4f -> %.4f\n", plain_s, acc_before, plain_acc);
  }
  if (plain_only) {
    code = 0;
    goto out;
  }
  const hetee_ckks_context *rctx;
  const hetee_ckks_public_key *rpk;
  int rc = 0;
  if (in_process) { /* the test twin: keys in this process */
    hetee_ckks_literal lit;
    hetee_ckks_literal_default(&lit);
    if (hetee_ckks_context_new(&lit, &ctx) || hetee_ckks_keygen_secret(ctx, &sk) || hetee_ckks_keygen_public(ctx, sk, &pk))
      goto out;
    rctx = ctx;
    rpk = pk;
  } else { /* the enclave process, the parties as in `hetee-bench infer` */
    lp_started = 1;
    rc = local_parties_start(&lp, NULL);
    if (!rc) rc = local_parties_policy(&lp, REFINE_MODEL_ID, HETEE_RELEASE_ARGMAX, 8);
    if (rc) {
      fprintf(stderr, "hetee-bench refine: enclave set-up: %s: %s\n", hetee_strerror(rc), hetee_last_error());
      goto out;
    }
    rctx = lp.ctx;
    rpk = lp.pk;
  }
  hetee_refine_set_provider_threads((int)threads);
  double t0 = bench_now();
  rc = hetee_refine_state_encrypt(rctx, rpk, &p, &w0, &s);
  double mp_s = bench_now() - t0;
  if (!rc && in_process) rc = hetee_refine_trusted_new(ctx, sk, &p, &t);
  if (!rc && !in_process) { /* the MP authorizes the job through its session */
    uint8_t *am = NULL, *sealed = NULL, sid[16];
    size_t aml = 0, sl = 0;
    rc = hetee_refine_auth_msg(REFINE_MODEL_ID, s, &am, &aml);
    if (!rc) rc = hetee_client_session_seal(lp.mps, am, aml, &sealed, &sl);
    hetee_client_session_id(lp.mps, sid);
    if (!rc) rc = hetee_host_refine_open(lp.e, lp.ctx, &p, REFINE_MODEL_ID, sid, sealed, sl, &t);
    free(am);
    free(sealed);
  }
  hetee_refine_stats st;
  memset(&st, 0, sizeof st);
  double dp_s = 0, c0 = cpu_now();
  t0 = bench_now();
  hetee_refine_run_options o = {(int)threads, NULL, 1, 0, 1, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL};
  uint8_t release_pk[32], dp_pk[32];
  if (!rc && !in_process) { /* the data provider's witnesses: sealed to the release key it learns through its session */
    uint8_t *km = NULL, *kr = NULL;
    size_t kml = 0, krl = 0;
    rc = hetee_client_msg_release_key(&km, &kml);
    if (!rc) rc = local_parties_send(&lp, lp.dps, km, kml, &kr, &krl);
    if (!rc) rc = hetee_client_release_key_parse(kr, krl, release_pk);
    free(kr);
    hetee_party_key_public(lp.dp, dp_pk);
    o.release_pk = release_pk;
    o.dp_model = REFINE_MODEL_ID;
    o.dp_pk = dp_pk;
    o.dp_sign = dp_sign;
    o.dp_sign_arg = lp.dp;
  }
  if (ckpt_path) {
    o.ckpt = ckpt_path;
    o.ckpt_every = (uint32_t)ckpt_every;
    o.ckpt_write = ck_write_timed;
  }
  if (!rc) rc = hetee_refine_run(s, t, rpk, x, y, (uint32_t)samples, &o, &st, &dp_s);
  double wall = bench_now() - t0, cpu = cpu_now() - c0;
  long ck_bytes = 0;
  struct stat sb;
  if (ckpt_path && !stat(ckpt_path, &sb)) ck_bytes = (long)sb.st_size;
  long ck_frozen_bytes = 0;
  if (ckpt_path) {
    char fp[4096];
    snprintf(fp, sizeof fp, "%s.frozen", ckpt_path);
    if (!stat(fp, &sb)) ck_frozen_bytes = (long)sb.st_size;
  }
  /* the validation set: the MP encrypts the first val_n test images, the
   * host runs the pass, the MP opens the enclave's report */
  double val_acc = -1, val_loss = -1, val_s = 0, val_mp_s = 0;
  if (!rc && val_n) {
    hetee_refine_valset *vs = NULL;
    uint8_t *sealed = NULL, *plain = NULL, dig[32];
    size_t sl = 0, pl = 0;
    double v0 = bench_now();
    uint8_t mp_pk[32];
    hetee_party_key_public(lp.mp, mp_pk);
    /* with the MP's witness of each chunk (layer 0 of the pass is checked
     * against it), signed with its identity key */
    rc = hetee_refine_valset_encrypt_witness(rctx, rpk, &p, tx, ty, (uint32_t)val_n, REFINE_MODEL_ID, release_pk, &vs);
    if (!rc) rc = hetee_refine_valset_sign(vs, mp_pk, dp_sign, lp.mp);
    if (!rc) rc = hetee_refine_valset_labels_digest(vs, dig);
    val_mp_s = bench_now() - v0;
    v0 = bench_now();
    if (!rc) rc = hetee_refine_validate(s, t, vs, (int)threads, &sealed, &sl);
    val_s = bench_now() - v0;
    if (!rc) rc = hetee_client_session_open(lp.mps, sealed, sl, &plain, &pl);
    hetee_refine_val_report rep;
    if (!rc) rc = hetee_refine_val_report_parse(plain, pl, REFINE_MODEL_ID, &rep);
    if (!rc && memcmp(rep.labels_digest, dig, 32)) rc = hetee_error(HETEE_ERR_AUTH, "validation report of other labels");
    if (!rc) {
      val_acc = rep.accuracy;
      val_loss = rep.loss;
    }
    free(sealed);
    free(plain);
    hetee_refine_valset_free(vs);
  }
  if (!rc && in_process) rc = hetee_refine_state_decrypt(s, sk, &we);
  if (!rc && !in_process) { /* frozen layers as they were; trained ones fetched by the MP */
    rc = hetee_refine_weights_copy(&w0, &we);
    for (int l = p.first_train; l < p.nl && !rc; l++) {
      uint8_t *sealed = NULL, *plain = NULL;
      size_t sl = 0, pl = 0;
      rc = hetee_host_refine_fetch(t, s, l, &sealed, &sl);
      if (!rc) rc = hetee_client_session_open(lp.mps, sealed, sl, &plain, &pl);
      if (!rc) rc = hetee_refine_fetch_parse(plain, pl, REFINE_MODEL_ID, &we);
      free(sealed);
      free(plain);
    }
  }
  if (rc) {
    fprintf(stderr, "hetee-bench refine: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    goto out;
  }
  double acc_after = hetee_refine_plain_accuracy(&we, tx, ty, ntest);
  double val_plain_acc = -1, val_plain_loss = -1;
  if (val_n && hetee_refine_plain_eval(&p, &we, tx, ty, (size_t)val_n, &val_plain_loss, &val_plain_acc)) goto out;
  double seconds = wall - dp_s;                /* refining without the DP's encryption */
  /* the DP's CPU (all its threads) measured apart; in-process, the trusted
   * side's CPU is this process's too, else the enclave process's (STATS) */
  double host_cpu = cpu - st.dp_cpu_s - (in_process ? st.trusted_s : 0);
  double cpu_rate = (double)samples / ((host_cpu + st.trusted_s) / (double)threads); /* samples/s if the cores were ours */
  double share = st.trusted_s / (st.trusted_s + (host_cpu > 0 ? host_cpu : 0));
  double maxdiff = do_plain ? hetee_refine_weights_maxdiff(&we, &wp, 0) : -1;
  /* the enclave's CPU on the DP's witnesses and the frozen layers' load */
  double wit_s = 0, fz_s = 0, fz_mb = 0, wit_mb = 0, vwit_s = 0, vwit_mb = 0;
  {
    hetee_enclave_op_stats es[48];
    size_t nes = 0;
    if (!in_process && !hetee_host_stats(lp.e, es, 48, &nes))
      for (size_t i = 0; i < nes; i++) {
        if (es[i].type == 0x4f) wit_s = 1e-9 * (double)es[i].cpu_ns, wit_mb = 1e-6 * (double)es[i].bytes_in;
        if (es[i].type == 0x50) fz_s = 1e-9 * (double)es[i].cpu_ns, fz_mb = 1e-6 * (double)es[i].bytes_in;
        if (es[i].type == 0x52) vwit_s = 1e-9 * (double)es[i].cpu_ns, vwit_mb = 1e-6 * (double)es[i].bytes_in;
      }
  }
  if (json) {
    printf("{\"model\": \"%s\", \"trusted\": \"%s\", \"batch\": %ld, \"accumulate\": %ld, \"train_layers\": %d, \"lr\": %g, \"lr_schedule\": \"%s\", \"lr_step\": %u, \"lr_gamma\": %g, \"lr_total\": %u, \"lr_min\": %g, \"momentum\": %g, "
           "\"weight_decay\": %g, \"threads\": %ld, \"samples\": %ld, \"seconds\": %.3f, \"samples_per_s\": %.2f, "
           "\"samples_per_s_cpu\": %.2f, \"enclave_share\": %.4f, \"enclave_s\": %.3f, \"host_cpu_s\": %.3f, \"dp_seconds\": %.3f, \"dp_cpu_s\": %.3f, \"mp_seconds\": %.3f, "
           "\"steps\": %llu, \"updates\": %llu, \"products\": %llu, \"enclave_encryptions\": %llu, "
           "\"enclave_decryptions\": %llu, \"acc_before\": %.4f, \"acc_after\": %.4f, \"plain_acc_after\": %.4f, "
           "\"plain_seconds\": %.3f, \"max_weight_diff\": %.3g, \"ckpts\": %u, \"ckpt_seconds\": %.3f, \"ckpt_first_seconds\": %.3f, \"ckpt_median_rest_seconds\": %.3f, \"ckpt_bytes\": %ld, \"ckpt_frozen_bytes\": %ld, "
           "\"val_samples\": %ld, \"val_accuracy\": %.4f, \"val_plain_accuracy\": %.4f, \"val_loss\": %.6f, "
           "\"val_plain_loss\": %.6f, \"val_seconds\": %.3f, \"val_mp_seconds\": %.3f, "
           "\"witness_enclave_s\": %.3f, \"witness_mb\": %.3f, \"frozen_enclave_s\": %.3f, \"frozen_mb\": %.1f, "
           "\"val_witness_enclave_s\": %.3f, \"val_witness_mb\": %.3f}\n",
           model_path, in_process ? "in-process twin" : "enclave process", batch, accumulate, train, lr, sched_names[sched.kind], sched.step_every, sched.gamma, sched.total, sched.lr_min, mom, wd, threads, samples, seconds, (double)samples / seconds, cpu_rate, share,
           st.trusted_s, host_cpu, dp_s, st.dp_cpu_s, mp_s, (unsigned long long)st.steps, (unsigned long long)st.updates,
           (unsigned long long)st.products, (unsigned long long)st.trusted_enc, (unsigned long long)st.trusted_dec,
           acc_before, acc_after, plain_acc, plain_s, maxdiff, ck_count, ck_seconds, ck_count ? ck_times[0] : 0.0, ck_median_rest(), ck_bytes, ck_frozen_bytes, val_n, val_acc, val_plain_acc,
           val_loss, val_plain_loss, val_s, val_mp_s, wit_s, wit_mb, fz_s, fz_mb, vwit_s, vwit_mb);
  } else {
    printf("encrypted refining: %ld samples in %.1f s (%.1f samples/s; DP encryption %.1f s apart, MP %.1f s), "
           "%llu steps, %llu updates, %llu products\n",
           samples, seconds, (double)samples / seconds, dp_s, mp_s, (unsigned long long)st.steps,
           (unsigned long long)st.updates, (unsigned long long)st.products);
    printf("CPU: host %.1f s, trusted side %.1f s (%.1f samples/s if %ld cores were free)\n", host_cpu, st.trusted_s,
           cpu_rate, threads);
    printf("trusted side: %.1f s CPU, %llu encryptions, %llu decryptions; share of CPU %.1f %%\n", st.trusted_s,
           (unsigned long long)st.trusted_enc, (unsigned long long)st.trusted_dec, 100 * share);
    hetee_enclave_op_stats es[48];
    size_t nes = 0;
    if (!in_process && !hetee_host_stats(lp.e, es, 48, &nes)) {
      static const char *names[] = {"open", "forward", "loss", "back", "update", "fetch", "grad", "put", "close"};
      for (size_t i = 0; i < nes; i++)
        if (es[i].type >= 0x40 && es[i].type <= 0x48) /* the step requests */
          printf("  enclave %-8s %6llu requests, %8.3f s CPU, %8.1f MB in, %8.1f MB out, %llu ciphertexts\n",
                 names[es[i].type - 0x40], (unsigned long long)es[i].count, 1e-9 * (double)es[i].cpu_ns,
                 1e-6 * (double)es[i].bytes_in, 1e-6 * (double)es[i].bytes_out, (unsigned long long)es[i].items);
      static const char *names2[] = {"save", "resume", "status", "vforward", "vloss", "vreport"};
      for (size_t i = 0; i < nes; i++)
        if (es[i].type >= 0x49 && es[i].type <= 0x4e)
          printf("  enclave %-8s %6llu requests, %8.3f s CPU, %8.3f MB in, %8.3f MB out\n", names2[es[i].type - 0x49],
                 (unsigned long long)es[i].count, 1e-9 * (double)es[i].cpu_ns, 1e-6 * (double)es[i].bytes_in,
                 1e-6 * (double)es[i].bytes_out);
      for (size_t i = 0; i < nes; i++)
        if (es[i].type == 0x4f || es[i].type == 0x50 || es[i].type == 0x51 || es[i].type == 0x52)
          printf("  enclave %-8s %6llu requests, %8.3f s CPU, %8.1f MB in\n",
                 es[i].type == 0x4f ? "witness" : es[i].type == 0x50 ? "frozen" : es[i].type == 0x51 ? "init" : "vwitness",
                 (unsigned long long)es[i].count, 1e-9 * (double)es[i].cpu_ns, 1e-6 * (double)es[i].bytes_in);
    }
    if (in_process) { /* the twin runs the same checks as the enclave */
      uint64_t nchk = 0, nfail = 0;
      refine_tr_check_counts(t, &nchk, &nfail);
      printf("  checks of the host's products: %llu, %llu failed, %.3f s CPU (part of the trusted side's)\n",
             (unsigned long long)nchk, (unsigned long long)nfail, refine_tr_check_cpu_s(t));
    }
    printf("test accuracy: before %.4f, encrypted refining %.4f, plaintext SGD %.4f; max |w_enc - w_plain| %.3g\n",
           acc_before, acc_after, plain_acc, maxdiff);
    if (ckpt_path)
      printf("sealed checkpoints: %u in %.2f s (%.3f s each; the first %.3f s, then median %.3f s), %ld bytes + "
             "frozen layers %ld bytes (PATH.frozen, written once)\n", ck_count, ck_seconds,
             ck_count ? ck_seconds / ck_count : 0.0, ck_count ? ck_times[0] : 0.0, ck_median_rest(), ck_bytes, ck_frozen_bytes);
    if (val_n)
      printf("validation (%ld test images, through the enclave, %.2f s; MP encryption %.2f s): accuracy %.4f "
             "(plaintext %.4f), loss %.6f (plaintext %.6f)\n",
             val_n, val_s, val_mp_s, val_acc, val_plain_acc, val_loss, val_plain_loss);
  }
  code = 0;
out:
  hetee_refine_trusted_free(t); /* closes the enclave job */
  if (lp_started) local_parties_stop(&lp);
  hetee_refine_state_free(s);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_secret_key_free(sk);
  hetee_ckks_context_free(ctx);
  hetee_refine_weights_clear(&w0);
  hetee_refine_weights_clear(&wp);
  hetee_refine_weights_clear(&we);
  free(x);
  free(y);
  free(tx);
  hetee_nn_data_free(img);
  hetee_nn_data_free(lab);
  hetee_nn_data_free(timg);
  hetee_nn_data_free(tlab);
  hetee_nn_model_free(m);
  return code;
}
