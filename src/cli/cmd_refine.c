/*
 * cmd_refine.c — refine jobs through `hetee server` (hetee/api_client.h
 * "Refining", docs/api.md "Refine jobs", docs/cli.md):
 *   hetee refine start --model ID --onnx MODEL.onnx --allow DP.pub... [policy options]   (MP)
 *   hetee refine submit --job ID IMAGES LABELS [--count N]                               (DP)
 *   hetee refine status --job ID [--json]
 *   hetee refine stop --job ID | resume --job ID                                         (MP)
 *   hetee model fetch --model ID -o REFINED.onnx [--job ID]                              (MP)
 *   hetee model promote --model ID [--job ID]                                            (MP)
 * Every command takes --home DIR (default ~/.hetee) and --server URL.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "hetee/api_client.h"
#include "hetee/client.h"
#include "hetee/nn.h"
#include "hetee/refine.h"

#define DEFAULT_SERVER "http://127.0.0.1:8470"
#define HOME_OPT {"home", "DIR", 'H', "the party's home directory (identity and trust; default ~/.hetee)"}
#define SERVER_OPT {"server", "URL", 's', "the hetee server (default " DEFAULT_SERVER ")"}
#define JOB_OPT {"job", "ID", 'j', "the refine job's id (hetee refine start printed it)"}

static const char *home_default(char *buf, size_t n) {
  const char *h = getenv("HOME");
  snprintf(buf, n, "%s/.hetee", h ? h : ".");
  return buf;
}

static int failed(const char *cmd, const char *what, int rc) {
  fprintf(stderr, "%s: %s: %s: %s\n", cmd, what, hetee_strerror(rc), hetee_last_error());
  return 1;
}

static int parse_double(const hetee_cli_cmd *c, const char *opt, const char *v, double lo, double hi, double *out) {
  char *end = NULL;
  errno = 0;
  double d = strtod(v, &end);
  if (!*v || *end || errno || !(d >= lo && d <= hi)) {
    hetee_cli_error(c, "%s wants a number in [%g, %g], got '%s'", opt, lo, hi, v);
    return -1;
  }
  *out = d;
  return 0;
}

/* ---- start -------------------------------------------------------------- */
static int refine_start(int argc, char **argv) {
  static const hetee_cli_opt opts[] = {
      {"model", "ID", 'm', "the model to refine (yours, with its policy set); required"},
      {"onnx", "MODEL.onnx", 'x', "your plaintext copy of that model: its initial weights are encrypted\n"
                                  "here, and 'hetee model fetch' writes the refined weights into a copy of it; required"},
      {"allow", "DP.pub", 'a', "a data provider that may submit samples (its public identity file);\n"
                               "repeatable, at least one"},
      {"batch", "B", 'b', "samples per SGD step, 1..1024 (default 64)"},
      {"accumulate", "A", 'A', "steps per weight update (default 1)"},
      {"train", "last|all|K", 't', "which dense layers train: the last one (default), all, or the last K"},
      {"loss", "xent|mse", 'L', "softmax cross-entropy (default) or mean squared error"},
      {"lr", "X", 'r', "learning rate (default 0.05)"},
      {"lr-schedule", "KIND", 'R', "constant (default), step:K:GAMMA (lr x GAMMA every K updates) or\n"
                                   "cosine:U[:MIN] (from lr to MIN, default 0, over U updates)"},
      {"momentum", "X", 'M', "SGD momentum, 0..0.999 (default 0)"},
      {"weight-decay", "X", 'w', "L2 weight decay (default 0)"},
      {"seed", "S", 'S', "seed of the data order of epochs after the first (default 2026)"},
      {"epochs", "E", 'e', "train E epochs over a data set of --epoch-samples samples, then stop"},
      {"epoch-samples", "N", 'N', "samples in the data set (with --epochs); submissions beyond it are refused"},
      {"val-images", "IMAGES", 'V', "a validation set (IDX or .npy) the enclave measures loss and accuracy on\n"
                                    "after each epoch, for you only (encrypted here)"},
      {"val-labels", "LABELS", 'W', "its labels (with --val-images)"},
      {"val-count", "N", 'C', "use the first N validation samples (default all)"},
      {"continuous", NULL, 'c', "use every submitted sample once as it arrives, until stopped (the default\n"
                                "without --epochs)"},
      HOME_OPT,
      SERVER_OPT,
      {0, 0, 0, 0}};
  static const hetee_cli_cmd cmd = {
      "hetee refine start",
      "hetee refine start --model ID --onnx MODEL.onnx --allow DP.pub... [--batch B] [--accumulate A]\n"
      "                          [--train last|all|K] [--loss xent|mse] [--lr X] [--lr-schedule KIND] [--momentum X]\n"
      "                          [--weight-decay X] [--epochs E --epoch-samples N | --continuous]\n"
      "                          [--val-images IMAGES --val-labels LABELS [--val-count N]] [--home DIR] [--server URL]",
      "Model provider: starts refining a model on data providers' encrypted labelled samples. Encrypts\n"
      "the initial weights under the attested enclave's key and authorizes the job in an enclave session\n"
      "(kept in HOME/refine-ID.session: the refined weights are sealed to it). The job survives restarts\n"
      "of the server and its enclave (sealed checkpoints). Prints the job id alone on the last line of\n"
      "stdout.",
      opts};
  char hb[1024];
  const char *home = home_default(hb, sizeof hb), *url = DEFAULT_SERVER, *onnx = NULL;
  uint8_t dps[HETEE_POLICY_MAX_DPS][32];
  int nallow = 0;
  unsigned model = 0, v = 0;
  hetee_client_refine_options o = {.batch = 64, .accumulate = 1, .train_layers = 1, .loss = HETEE_REFINE_LOSS_XENT,
                                   .lr = 0.05, .seed = 2026};
  int continuous = 0;
  const char *val_images = NULL, *val_labels = NULL;
  unsigned val_count = 0;
  static hetee_refine_schedule sched;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &cmd, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'm': if (hetee_cli_uint(&cmd, "--model", p.arg, 0x7fffffff, &model)) return 2; break;
    case 'x': onnx = p.arg; break;
    case 'a': {
      if (nallow >= HETEE_POLICY_MAX_DPS) return hetee_cli_error(&cmd, "at most %d --allow", HETEE_POLICY_MAX_DPS);
      int role = 0, rc = hetee_party_public_load(p.arg, &role, dps[nallow]);
      if (rc) return hetee_cli_error(&cmd, "--allow %s: %s: %s", p.arg, hetee_strerror(rc), hetee_last_error());
      if (role != HETEE_PARTY_DP) return hetee_cli_error(&cmd, "--allow %s is not a data provider's public key", p.arg);
      nallow++;
      break;
    }
    case 'b': if (hetee_cli_uint(&cmd, "--batch", p.arg, 1024, &o.batch)) return 2; break;
    case 'A': if (hetee_cli_uint(&cmd, "--accumulate", p.arg, 1024, &o.accumulate)) return 2; break;
    case 't':
      if (!strcmp(p.arg, "last")) o.train_layers = 1;
      else if (!strcmp(p.arg, "all")) o.train_layers = 0;
      else if (hetee_cli_uint(&cmd, "--train", p.arg, HETEE_REFINE_MAX_LAYERS, &v)) return 2;
      else o.train_layers = (int)v;
      break;
    case 'L':
      if (!strcmp(p.arg, "xent")) o.loss = HETEE_REFINE_LOSS_XENT;
      else if (!strcmp(p.arg, "mse")) o.loss = HETEE_REFINE_LOSS_MSE;
      else return hetee_cli_error(&cmd, "--loss is xent or mse, not '%s'", p.arg);
      break;
    case 'r': if (parse_double(&cmd, "--lr", p.arg, 1e-9, 100, &o.lr)) return 2; break;
    case 'R': {
      unsigned a = 0;
      double g = 0;
      char tail;
      memset(&sched, 0, sizeof sched);
      if (!strcmp(p.arg, "constant")) {
        sched.kind = HETEE_REFINE_LR_CONSTANT;
      } else if (sscanf(p.arg, "step:%u:%lf%c", &a, &g, &tail) == 2 && a >= 1 && g > 0 && g <= 1) {
        sched.kind = HETEE_REFINE_LR_STEP;
        sched.step_every = a;
        sched.gamma = g;
      } else if (!strncmp(p.arg, "cosine:", 7) && (sscanf(p.arg, "cosine:%u:%lf%c", &a, &g, &tail) == 2 ||
                                                    (sscanf(p.arg, "cosine:%u%c", &a, &tail) == 1 && (g = 0, 1))) &&
                 a >= 1 && g >= 0) {
        sched.kind = HETEE_REFINE_LR_COSINE;
        sched.total = a;
        sched.lr_min = g;
      } else {
        return hetee_cli_error(&cmd, "--lr-schedule is constant, step:K:GAMMA (K >= 1, 0 < GAMMA <= 1) or cosine:U[:MIN], not '%s'", p.arg);
      }
      o.schedule = &sched;
      break;
    }
    case 'M': if (parse_double(&cmd, "--momentum", p.arg, 0, 0.999, &o.momentum)) return 2; break;
    case 'w': if (parse_double(&cmd, "--weight-decay", p.arg, 0, 1, &o.weight_decay)) return 2; break;
    case 'S': if (hetee_cli_uint(&cmd, "--seed", p.arg, 0xffffffffu, &v)) return 2; o.seed = v; break;
    case 'e': if (hetee_cli_uint(&cmd, "--epochs", p.arg, 1000, &o.epochs)) return 2; break;
    case 'N': if (hetee_cli_uint(&cmd, "--epoch-samples", p.arg, 0xffffffffu, &o.epoch_samples)) return 2; break;
    case 'c': continuous = 1; break;
    case 'V': val_images = p.arg; break;
    case 'W': val_labels = p.arg; break;
    case 'C': if (hetee_cli_uint(&cmd, "--val-count", p.arg, 1u << 20, &val_count)) return 2; break;
    case 'H': home = p.arg; break;
    case 's': url = p.arg; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (p.optind < argc) return hetee_cli_error(&cmd, "unexpected argument '%s'", argv[p.optind]);
  if (!model) return hetee_cli_error(&cmd, "--model ID is required");
  if (!onnx) return hetee_cli_error(&cmd, "--onnx MODEL.onnx is required (your plaintext copy of model %u)", model);
  if (access(onnx, R_OK) != 0) return hetee_cli_error(&cmd, "cannot read %s: %s", onnx, strerror(errno));
  if (!nallow) return hetee_cli_error(&cmd, "at least one --allow DP.pub is required (who may submit samples)");
  if (continuous && (o.epochs || o.epoch_samples)) return hetee_cli_error(&cmd, "--continuous excludes --epochs / --epoch-samples");
  if ((o.epochs > 0) != (o.epoch_samples > 0)) return hetee_cli_error(&cmd, "--epochs E and --epoch-samples N go together");
  if (!val_images != !val_labels) return hetee_cli_error(&cmd, "--val-images and --val-labels go together");
  o.onnx_path = onnx;
  o.dps = (const uint8_t(*)[32])dps;
  o.ndps = (size_t)nallow;
  float *vx = NULL, *vy = NULL;
  if (val_images) {
    /* scaled as the model expects: uint8 pixels by the ONNX model's input scale */
    hetee_nn_data *vi = NULL, *vl = NULL;
    hetee_nn_model *m = NULL;
    if (hetee_nn_images_load(val_images, &vi) || hetee_nn_labels_load(val_labels, &vl) || hetee_nn_model_load(onnx, &m)) {
      hetee_nn_data_free(vi);
      hetee_nn_data_free(vl);
      return failed(cmd.name, "validation set", HETEE_ERR_FORMAT);
    }
    size_t nv = hetee_nn_data_dims(vi)[0], per = nv ? hetee_nn_data_count(vi) / nv : 0;
    size_t n = val_count ? val_count : nv;
    double sc = hetee_nn_data_dtype(vi) == HETEE_NN_U8 ? hetee_nn_model_input_scale(m) : 1.0;
    size_t nlab = hetee_nn_data_count(vl), want = hetee_nn_model_input_size(m);
    int bad = nlab != nv || n > nv || per != want;
    if (!bad) {
      vx = malloc(n * per * sizeof *vx);
      vy = malloc(n * sizeof *vy);
      for (size_t i = 0; vx && vy && i < n * per; i++) vx[i] = (float)(hetee_nn_data_values(vi)[i] * sc);
      for (size_t i = 0; vx && vy && i < n; i++) vy[i] = hetee_nn_data_values(vl)[i];
    }
    hetee_nn_data_free(vi);
    hetee_nn_data_free(vl);
    hetee_nn_model_free(m);
    if (bad)
      return hetee_cli_error(&cmd, "validation set: %zu images of %zu values, %zu labels, --val-count %zu; the model takes %zu values",
                             nv, per, nlab, n, want);
    if (!vx || !vy) return failed(cmd.name, "validation set", HETEE_ERR_NOMEM);
    o.val_x = vx;
    o.val_labels = vy;
    o.val_count = (uint32_t)n;
  }
  hetee_client_conn *cn = NULL;
  int rc = hetee_client_connect(url, home, &cn);
  if (rc) {
    free(vx);
    free(vy);
    return failed(cmd.name, "connect", rc);
  }
  int64_t id = 0;
  hetee_cli_progress *pr = hetee_cli_progress_start("encrypting the initial weights and starting the job", 0);
  rc = hetee_client_refine_start(cn, home, model, &o, &id);
  hetee_cli_progress_end(pr);
  hetee_client_disconnect(cn);
  free(vx);
  free(vy);
  if (rc) return failed(cmd.name, onnx, rc);
  if (o.epochs)
    printf("refine job started on model %u: %u epoch%s over %u samples, batch %u, lr %g\n", model, o.epochs,
           o.epochs > 1 ? "s" : "", o.epoch_samples, o.batch, o.lr);
  else
    printf("refine job started on model %u: continuous, batch %u, lr %g\n", model, o.batch, o.lr);
  printf("%lld\n", (long long)id);
  return 0;
}

/* ---- submit ------------------------------------------------------------- */
static int refine_submit(int argc, char **argv) {
  static const hetee_cli_opt opts[] = {JOB_OPT,
                                       {"count", "N", 'n', "submit N samples (default: all from --offset on)"},
                                       {"offset", "K", 'k', "start at sample K (default 0)"},
                                       HOME_OPT,
                                       SERVER_OPT,
                                       {0, 0, 0, 0}};
  static const hetee_cli_cmd cmd = {
      "hetee refine submit",
      "hetee refine submit --job ID IMAGES LABELS [--count N] [--offset K] [--home DIR] [--server URL]",
      "Data provider: encrypts labelled samples (IMAGES and LABELS as IDX or .npy) under the attested\n"
      "enclave's key, in batches of the job's size, and submits them to a refine job whose policy names\n"
      "this data provider. Prints how many samples were acknowledged.",
      opts};
  char hb[1024];
  const char *home = home_default(hb, sizeof hb), *url = DEFAULT_SERVER;
  unsigned job = 0, count = 0, offset = 0;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &cmd, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'j': if (hetee_cli_uint(&cmd, "--job", p.arg, 0x7fffffff, &job)) return 2; break;
    case 'n': if (hetee_cli_uint(&cmd, "--count", p.arg, 1u << 24, &count)) return 2; break;
    case 'k':
      if (strcmp(p.arg, "0") && hetee_cli_uint(&cmd, "--offset", p.arg, 1u << 24, &offset)) return 2;
      break;
    case 'H': home = p.arg; break;
    case 's': url = p.arg; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (!job) return hetee_cli_error(&cmd, "--job ID is required");
  if (argc - p.optind < 2) return hetee_cli_error(&cmd, "missing IMAGES LABELS (see 'hetee refine submit --help')");
  if (argc - p.optind > 2) return hetee_cli_error(&cmd, "unexpected argument '%s'", argv[p.optind + 2]);
  hetee_nn_data *images = NULL, *labels = NULL;
  if (hetee_nn_images_load(argv[p.optind], &images)) return failed(cmd.name, argv[p.optind], HETEE_ERR_FORMAT);
  if (hetee_nn_labels_load(argv[p.optind + 1], &labels)) {
    hetee_nn_data_free(images);
    return failed(cmd.name, argv[p.optind + 1], HETEE_ERR_FORMAT);
  }
  size_t n_img = hetee_nn_data_dims(images)[0], per = n_img ? hetee_nn_data_count(images) / n_img : 0;
  int code = 2;
  float *x = NULL, *y = NULL;
  hetee_client_conn *cn = NULL;
  json_t *j = NULL;
  if (hetee_nn_data_count(labels) != n_img) {
    hetee_cli_error(&cmd, "%zu images but %zu labels", n_img, hetee_nn_data_count(labels));
    goto out;
  }
  if (offset >= n_img) {
    hetee_cli_error(&cmd, "--offset %u but only %zu images", offset, n_img);
    goto out;
  }
  size_t n = count ? count : n_img - offset;
  if (n > n_img - offset) {
    hetee_cli_error(&cmd, "--count %zu from --offset %u but only %zu images", n, offset, n_img);
    goto out;
  }
  code = 1;
  int rc = hetee_client_connect(url, home, &cn);
  if (rc) {
    failed(cmd.name, "connect", rc);
    goto out;
  }
  char *js = NULL;
  rc = hetee_client_refine_status(cn, job, &js);
  if (rc) {
    failed(cmd.name, "job", rc);
    goto out;
  }
  j = json_loads(js, 0, NULL);
  free(js);
  size_t in_size = (size_t)json_integer_value(json_object_get(j, "input_size"));
  double scale = json_real_value(json_object_get(j, "input_scale"));
  if (per != in_size) {
    hetee_cli_error(&cmd, "images have %zu values each, refine job %u's model takes %zu", per, job, in_size);
    code = 2;
    goto out;
  }
  if (hetee_nn_data_dtype(images) != HETEE_NN_U8 || !(scale > 0)) scale = 1.0;
  x = malloc(n * per * sizeof *x);
  y = malloc(n * sizeof *y);
  if (!x || !y) goto out;
  for (size_t i = 0; i < n * per; i++) x[i] = (float)(hetee_nn_data_values(images)[(size_t)offset * per + i] * scale);
  for (size_t i = 0; i < n; i++) y[i] = hetee_nn_data_values(labels)[(size_t)offset + i];
  size_t nb = 0;
  hetee_cli_progress *pr = hetee_cli_progress_start("encrypting and submitting samples", 0);
  rc = hetee_client_refine_submit(cn, job, x, y, n, &nb);
  hetee_cli_progress_end(pr);
  if (rc) {
    fprintf(stderr, "hetee refine submit: %zu batches acknowledged before the error\n", nb);
    failed(cmd.name, "submit", rc);
    goto out;
  }
  printf("%zu samples submitted to refine job %u in %zu encrypted batches\n", n, job, nb);
  code = 0;
out:
  json_decref(j);
  free(x);
  free(y);
  hetee_client_disconnect(cn);
  hetee_nn_data_free(images);
  hetee_nn_data_free(labels);
  return code;
}

/* ---- status / stop / resume -------------------------------------------- */
static int refine_simple(int argc, char **argv, int which) {
  static const hetee_cli_opt sopts[] = {JOB_OPT, {"json", NULL, 'J', "print the server's JSON"}, HOME_OPT, SERVER_OPT,
                                        {0, 0, 0, 0}};
  static const hetee_cli_opt opts[] = {JOB_OPT, HOME_OPT, SERVER_OPT, {0, 0, 0, 0}};
  static const hetee_cli_cmd cmds[3] = {
      {"hetee refine status", "hetee refine status --job ID [--json] [--home DIR] [--server URL]",
       "Prints a refine job's state and progress: epoch, steps, updates, samples consumed per epoch (for a\n"
       "data provider: its own samples).",
       sopts},
      {"hetee refine stop", "hetee refine stop --job ID [--home DIR] [--server URL]",
       "Model provider: stops a refine job after its current step (a pending accumulation is applied and\n"
       "checkpointed); its weights can still be fetched.",
       opts},
      {"hetee refine resume", "hetee refine resume --job ID [--home DIR] [--server URL]",
       "Model provider: after the server's enclave restarted (state needs_auth), authorizes the job's\n"
       "last checkpoint in a new enclave session; training continues from there.",
       opts}};
  const hetee_cli_cmd *cmd = &cmds[which];
  char hb[1024];
  const char *home = home_default(hb, sizeof hb), *url = DEFAULT_SERVER;
  unsigned job = 0;
  int json = 0;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, cmd, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'j': if (hetee_cli_uint(cmd, "--job", p.arg, 0x7fffffff, &job)) return 2; break;
    case 'J': json = 1; break;
    case 'H': home = p.arg; break;
    case 's': url = p.arg; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (!job) return hetee_cli_error(cmd, "--job ID is required");
  if (p.optind < argc) return hetee_cli_error(cmd, "unexpected argument '%s'", argv[p.optind]);
  hetee_client_conn *cn = NULL;
  int rc = hetee_client_connect(url, home, &cn);
  if (rc) return failed(cmd->name, "connect", rc);
  char *js = NULL;
  if (which == 0) rc = hetee_client_refine_status(cn, job, &js);
  else if (which == 1) rc = hetee_client_refine_stop(cn, job);
  else rc = hetee_client_refine_resume(cn, home, job);
  hetee_client_disconnect(cn);
  if (rc) return failed(cmd->name, "job", rc);
  if (which == 1) printf("refine job %u: stopping\n", job);
  if (which == 2) printf("refine job %u: resumed from its last checkpoint\n", job);
  if (which != 0) return 0;
  json_t *j = json_loads(js, 0, NULL);
  if (json || !j) {
    char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    printf("%s\n", s ? s : js);
    free(s);
  } else {
    printf("refine job %u (model %lld): %s\n", job, (long long)json_integer_value(json_object_get(j, "model")),
           json_string_value(json_object_get(j, "state")));
    if (json_object_get(j, "error")) printf("  error: %s\n", json_string_value(json_object_get(j, "error")));
    long long ep = json_integer_value(json_object_get(j, "epochs"));
    if (ep) printf("  epoch %lld of %lld, %lld samples per epoch\n", json_integer_value(json_object_get(j, "epoch")), ep,
                   json_integer_value(json_object_get(j, "epoch_samples")));
    else printf("  continuous\n");
    if (json_object_get(j, "steps"))
      printf("  steps %lld, updates %lld, samples consumed %lld, pending steps %lld\n",
             json_integer_value(json_object_get(j, "steps")), json_integer_value(json_object_get(j, "updates")),
             json_integer_value(json_object_get(j, "samples")), json_integer_value(json_object_get(j, "pending_steps")));
    printf("  submitted %lld samples in %lld batches\n", json_integer_value(json_object_get(j, "submitted_samples")),
           json_integer_value(json_object_get(j, "submitted_batches")));
    json_t *fz = json_object_get(j, "frozen");
    if (json_is_object(fz)) {
      const char *fs = json_string_value(json_object_get(fz, "state"));
      if (fs && !strcmp(fs, "checkpoint")) printf("  frozen layers: inside the checkpoint\n");
      else if (fs && json_object_get(fz, "file"))
        printf("  frozen layers: %s, %lld bytes named by the checkpoint: %s\n", json_string_value(json_object_get(fz, "file")),
               json_integer_value(json_object_get(fz, "bytes")),
               !strcmp(fs, "written") ? "written" : !strcmp(fs, "missing") ? "MISSING (the job cannot resume)" : "OTHER SIZE (the job cannot resume)");
      else if (fs) printf("  frozen layers: %s\n", fs);
    }
    json_t *u = json_object_get(j, "used");
    for (size_t i = 0; i < json_array_size(u); i++) {
      json_t *e = json_array_get(u, i);
      printf("  epoch %lld used %lld samples (%lld batches)\n", json_integer_value(json_object_get(e, "epoch")),
             json_integer_value(json_object_get(e, "samples")), json_integer_value(json_object_get(e, "batches")));
    }
    if (json_array_size(json_object_get(j, "validation"))) {
      /* the enclave's reports, opened with the job's session in this home */
      hetee_refine_val_report rep[64];
      uint32_t ep2[64];
      size_t nr = 0;
      hetee_client_conn *c2 = NULL;
      rc = hetee_client_connect(url, home, &c2);
      if (!rc) rc = hetee_client_refine_validation(c2, home, job, 64, rep, ep2, &nr);
      hetee_client_disconnect(c2);
      if (rc) fprintf(stderr, "%s: validation reports: %s: %s\n", cmd->name, hetee_strerror(rc), hetee_last_error());
      for (size_t i = 0; i < nr; i++)
        printf("  validation after epoch %u (%llu updates): loss %.4f, accuracy %.4f on %llu samples\n", ep2[i],
               (unsigned long long)rep[i].updates, rep[i].loss, rep[i].accuracy, (unsigned long long)rep[i].samples);
    }
  }
  json_decref(j);
  free(js);
  return 0;
}

int hetee_cmd_refine(int argc, char **argv) {
  static const hetee_cli_cmd cmd = {
      "hetee refine",
      "hetee refine start --model ID --onnx MODEL.onnx --allow DP.pub... [policy options]   (model provider)\n"
      "       hetee refine submit --job ID IMAGES LABELS [--count N]                        (data provider)\n"
      "       hetee refine status --job ID [--json] | stop --job ID | resume --job ID\n"
      "       (every subcommand takes --home DIR and --server URL; 'hetee refine SUB --help' explains it)",
      "Refine an encrypted model on encrypted labelled samples in the server's background. The refined\n"
      "weights: 'hetee model fetch' and 'hetee model promote'.",
      NULL};
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    if (argc < 2) return hetee_cli_error(&cmd, "missing subcommand: start, submit, status, stop or resume");
    hetee_cli_help(&cmd, stdout);
    return 0;
  }
  if (!strcmp(argv[1], "start")) return refine_start(argc - 1, argv + 1);
  if (!strcmp(argv[1], "submit")) return refine_submit(argc - 1, argv + 1);
  if (!strcmp(argv[1], "status")) return refine_simple(argc - 1, argv + 1, 0);
  if (!strcmp(argv[1], "stop")) return refine_simple(argc - 1, argv + 1, 1);
  if (!strcmp(argv[1], "resume")) return refine_simple(argc - 1, argv + 1, 2);
  return hetee_cli_error(&cmd, "unknown subcommand '%s' (start, submit, status, stop or resume)", argv[1]);
}

/* ---- model fetch / promote (dispatched from hetee model) ---------------- */
int hetee_cli_model_refined(int argc, char **argv, int promote) {
  static const hetee_cli_opt fopts[] = {
      {"model", "ID", 'm', "the model that was refined; required"},
      {"output", "REFINED.onnx", 'o', "(also -o) where to write the refined model (ONNX: your copy with the refined\n"
                                      "weights); required; refused if it exists"},
      {"job", "ID", 'j', "the refine job (default: your newest job on the model)"},
      HOME_OPT,
      SERVER_OPT,
      {0, 0, 0, 0}};
  static const hetee_cli_opt popts[] = {
      {"model", "ID", 'm', "the model that was refined; required"},
      {"job", "ID", 'j', "the refine job (default: your newest job on the model)"},
      HOME_OPT,
      SERVER_OPT,
      {0, 0, 0, 0}};
  static const hetee_cli_cmd fcmd = {
      "hetee model fetch", "hetee model fetch --model ID -o REFINED.onnx [--job ID] [--home DIR] [--server URL]",
      "Model provider: the fetch of every trained layer is authorized in the refine job's session (kept in\n"
      "HOME; a new one when the enclave no longer knows it, e.g. after a restart) and the enclave seals the\n"
      "refined weights to that session; they are opened here and written into a copy of the job's ONNX\n"
      "file, which 'hetee plain' and 'hetee model upload' take.",
      fopts};
  static const hetee_cli_cmd pcmd = {
      "hetee model promote", "hetee model promote --model ID [--job ID] [--home DIR] [--server URL]",
      "Model provider: fetches the refined weights (as 'hetee model fetch') and uploads them as a new model\n"
      "with the original's release policy (output, data providers, budgets), which then serves inference.\n"
      "Prints the new model id alone on the last line of stdout.",
      popts};
  const hetee_cli_cmd *cmd = promote ? &pcmd : &fcmd;
  char hb[1024];
  const char *home = home_default(hb, sizeof hb), *url = DEFAULT_SERVER, *out = NULL;
  unsigned model = 0, job = 0;
  /* -o FILE is --output FILE (the parser takes long options only) */
  char *av[64];
  if (argc >= (int)(sizeof av / sizeof av[0])) return hetee_cli_error(cmd, "too many arguments");
  for (int i = 0; i < argc; i++) av[i] = !promote && !strcmp(argv[i], "-o") ? (char *)"--output" : argv[i];
  av[argc] = NULL;
  argv = av;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, cmd, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'm': if (hetee_cli_uint(cmd, "--model", p.arg, 0x7fffffff, &model)) return 2; break;
    case 'o': out = p.arg; break;
    case 'j': if (hetee_cli_uint(cmd, "--job", p.arg, 0x7fffffff, &job)) return 2; break;
    case 'H': home = p.arg; break;
    case 's': url = p.arg; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (p.optind < argc) return hetee_cli_error(cmd, "unexpected argument '%s'", argv[p.optind]);
  if (!model) return hetee_cli_error(cmd, "--model ID is required");
  if (!promote && !out) return hetee_cli_error(cmd, "-o REFINED.onnx is required");
  if (!promote && hetee_cli_check_output(cmd, out, 0)) return 2;
  hetee_client_conn *cn = NULL;
  int rc = hetee_client_connect(url, home, &cn);
  if (rc) return failed(cmd->name, "connect", rc);
  int64_t jid = job, nm = 0;
  if (!jid) rc = hetee_client_refine_latest(cn, model, &jid);
  if (!rc && !promote) rc = hetee_client_refine_fetch(cn, home, jid, out, NULL);
  if (!rc && promote) rc = hetee_client_model_promote(cn, home, model, jid, &nm);
  hetee_client_disconnect(cn);
  if (rc) return failed(cmd->name, "refined weights", rc);
  if (!promote) {
    printf("refined weights of job %lld written to %s\n", (long long)jid, out);
  } else {
    printf("refined weights of job %lld uploaded as a new model with model %u's policy\n", (long long)jid, model);
    printf("%lld\n", (long long)nm);
  }
  return 0;
}
