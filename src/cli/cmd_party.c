/*
 * cmd_party.c — the parties' commands against `hetee server`
 * (hetee/api_client.h, docs/api.md):
 *   hetee keygen --role mp|dp --home DIR [--trust-platform DIR --trust-measurement HEX] [--force]
 *   hetee trust --home DIR --trust-platform DIR --trust-measurement HEX
 *   hetee attest --server URL [--home DIR]
 *   hetee model upload MODEL.onnx [--allow DP.pub[:BUDGET]]... [--output label|probs|logits|topk:K] ...
 *   hetee model list | show ID | delete ID
 *   hetee infer --model ID IMAGES [--labels LABELS] [--count N]
 * Every command takes --home DIR (default ~/.hetee) and --server URL
 * (default http://127.0.0.1:8470).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "hetee/api_client.h"
#include "hetee/client.h"
#include "hetee/nn.h"

#define DEFAULT_SERVER "http://127.0.0.1:8470"

static const char *default_home(char *buf, size_t n) {
  const char *h = getenv("HOME");
  snprintf(buf, n, "%s/.hetee", h ? h : ".");
  return buf;
}

static int fail(const char *cmd, const char *what, int rc) {
  fprintf(stderr, "hetee %s: %s: %s: %s\n", cmd, what, hetee_strerror(rc), hetee_last_error());
  return 1;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- keygen --home / trust ---------------------------------------------- */
/* Called by hetee_cmd_keygen (cmd_keygen.c) with its parsed options. */
int hetee_cli_keygen_home(const hetee_cli_cmd *cmd, int r, const char *role, const char *home, const char *plat,
                          const char *meas, int force) {
  char hb[1024], path[1100];
  if (!home) home = default_home(hb, sizeof hb);
  if (meas) { /* checked before anything is written */
    uint8_t m[32];
    if (hetee_hex_decode32(meas, m)) return hetee_cli_error(cmd, "--trust-measurement needs 64 hex digits, got '%s'", meas);
  }
  if (mkdir(home, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "hetee keygen: cannot create %s: %s\n", home, strerror(errno));
    return 1;
  }
  snprintf(path, sizeof path, "%s/id", home);
  if (!force && access(path, F_OK) == 0) {
    fprintf(stderr, "hetee keygen: %s already holds an identity; refusing to replace it (--force does)\n", home);
    return 1;
  }
  if (hetee_cli_check_output(cmd, path, 1)) return 1;
  hetee_party_key *k = NULL;
  int rc = hetee_party_key_generate(r, &k);
  if (!rc) rc = hetee_party_key_save(k, path);
  if (!rc && plat) rc = hetee_client_home_trust(home, plat, meas);
  if (rc) {
    hetee_party_key_free(k);
    return fail("keygen", "identity", rc);
  }
  uint8_t pk[32];
  char hex[65];
  hetee_party_key_public(k, pk);
  hetee_hex_encode32(pk, hex);
  printf("%s identity created in %s (public key in %s.pub)\npublic key: %s\n", role, home, path, hex);
  if (plat) printf("trusts platform %s, enclave measurement %s\n", plat, meas);
  hetee_party_key_free(k);
  return 0;
}

#define HOME_OPT {"home", "DIR", 'H', "the party's home directory (identity and trust; default ~/.hetee)"}
#define SERVER_OPT {"server", "URL", 's', "the hetee server (default " DEFAULT_SERVER ")"}

int hetee_cmd_trust(int argc, char **argv) {
  static const hetee_cli_opt opts[] = {
      HOME_OPT,
      {"trust-platform", "DIR", 'p', "the sim platform to trust (its DIR/platform.pub); required"},
      {"trust-measurement", "HEX", 'm', "the enclave measurement to trust (hetee enclave measure); required"},
      {0, 0, 0, 0}};
  static const hetee_cli_cmd cmd = {
      "hetee trust", "hetee trust [--home DIR] --trust-platform DIR --trust-measurement HEX",
      "Records the platform key and enclave measurement the party accepts (DIR/trust), replacing earlier ones.",
      opts};
  char hb[1024];
  const char *home = default_home(hb, sizeof hb), *plat = NULL, *meas = NULL;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &cmd, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'H': home = p.arg; break;
    case 'p': plat = p.arg; break;
    case 'm': meas = p.arg; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (p.optind < argc) return hetee_cli_error(&cmd, "unexpected argument '%s'", argv[p.optind]);
  if (!plat || !meas) return hetee_cli_error(&cmd, "--trust-platform and --trust-measurement are required");
  int rc = hetee_client_home_trust(home, plat, meas);
  if (rc) return fail("trust", "trust", rc);
  printf("%s trusts platform %s, enclave measurement %s\n", home, plat, meas);
  return 0;
}

/* ---- attest --server ---------------------------------------------------- */
/* Called by hetee_cmd_attest (cmd_attest.c) with its parsed options. */
int hetee_cli_attest_server(const char *url, const char *home) {
  char hb[1024];
  if (!home) home = default_home(hb, sizeof hb);
  hetee_client_conn *cn = NULL;
  int rc = hetee_client_connect(url, home, &cn);
  if (rc) return fail("attest", "connect", rc);
  hetee_verified_enclave v;
  rc = hetee_client_attest(cn, &v);
  if (rc) {
    const char *what = rc == HETEE_ERR_BAD_SIGNATURE ? "bad signature"
                       : rc == HETEE_ERR_MEASUREMENT ? "measurement mismatch"
                       : rc == HETEE_ERR_KEY_BINDING ? "key binding mismatch"
                                                     : "cannot verify";
    printf("attest: FAILED: %s: %s\n", what, hetee_last_error());
    hetee_client_disconnect(cn);
    return 1;
  }
  char m[65], fp[65], ch[65];
  hetee_hex_encode32(v.measurement, m);
  hetee_hex_encode32(v.bundle_fp, fp);
  hetee_hex_encode32(v.channel_pk, ch);
  printf("attest: OK %s (backend sim: simulated platform, no hardware isolation)\n", url);
  printf("  signature:   valid under the trusted platform key\n");
  printf("  measurement: %s (the trusted one)\n", m);
  printf("  key binding: key bundle %s, channel key %s, fresh nonce\n", fp, ch);
  hetee_client_disconnect(cn);
  return 0;
}

/* ---- model -------------------------------------------------------------- */
static const hetee_cli_opt CONN_OPTS[] = {HOME_OPT, SERVER_OPT, {0, 0, 0, 0}};
static const hetee_cli_opt UPLOAD_OPTS[] = {
    {"allow", "DP.pub[:BUDGET]", 'a', "a data provider allowed to receive results (its public identity file),\n"
                                      "optionally with a budget of images; repeatable, at least one"},
    {"output", "KIND", 'o', "what the data providers get: label (the class, default), probs (rounded\n"
                            "probabilities), logits, topk:K (the K best classes; topK also accepted)"},
    {"batch", "N", 'b', "micro-batch of the encrypted plan, 1..4096 (default 64)"},
    {"name", "NAME", 'n', "the model's name on the server (default: the file name without .onnx)"},
    HOME_OPT,
    SERVER_OPT,
    {0, 0, 0, 0}};
static const hetee_cli_cmd MODEL_CMD = {
    "hetee model",
    "hetee model upload MODEL.onnx --allow DP.pub[:BUDGET]... [--output KIND] [--batch N] [--name NAME]\n"
    "       hetee model list | show ID | delete ID\n"
    "       hetee model fetch --model ID -o REFINED.onnx [--job ID] | promote --model ID [--job ID]\n"
    "       (every subcommand also takes --home DIR and --server URL; 'hetee model SUB --help' explains it)",
    "Model provider: upload an encrypted model with its release policy; list, show or delete models;\n"
    "fetch or promote the weights a refine job produced (cmd_refine.c).", CONN_OPTS};
static const hetee_cli_cmd UPLOAD_CMD = {
    "hetee model upload",
    "hetee model upload MODEL.onnx --allow DP.pub[:BUDGET]... [--output KIND] [--batch N] [--name NAME]\n"
    "                          [--home DIR] [--server URL]",
    "Attests the server's enclave, encrypts the model under its key, uploads it and sets its release\n"
    "policy. Prints the new model id alone on the last line of stdout.",
    UPLOAD_OPTS};
static const hetee_cli_cmd LIST_CMD = {"hetee model list", "hetee model list [--home DIR] [--server URL]",
                                       "Prints the models this party may see (JSON).", CONN_OPTS};
static const hetee_cli_cmd SHOW_CMD = {"hetee model show", "hetee model show ID [--home DIR] [--server URL]",
                                       "Prints one model's description (JSON).", CONN_OPTS};
static const hetee_cli_cmd DELETE_CMD = {"hetee model delete", "hetee model delete ID [--home DIR] [--server URL]",
                                         "Deletes a model (its owner only) and prints the server's answer (JSON).",
                                         CONN_OPTS};

static int model_upload(hetee_client_conn *cn, const char *onnx, int nallow, const uint8_t (*dps)[32],
                        const int64_t *budgets, const char *output, int k, unsigned batch, const char *name) {
  hetee_client_model_options o = {.name = name, .batch = batch, .output = output, .k = k, .dps = dps,
                                  .budgets = budgets, .ndps = (size_t)nallow};
  double t = now_s();
  int64_t id = 0;
  hetee_cli_progress *pr = hetee_cli_progress_start("encrypting and uploading the model", 0);
  if (pr) hetee_client_set_progress(cn, hetee_cli_progress_client, pr);
  int rc = hetee_client_model_upload(cn, onnx, &o, &id);
  hetee_client_set_progress(cn, NULL, NULL);
  hetee_cli_progress_end(pr);
  if (rc) return fail("model upload", onnx, rc);
  printf("model %s encrypted, uploaded and its policy set in %.2f s (%d data provider%s, output %s)\n", onnx,
         now_s() - t, nallow, nallow > 1 ? "s" : "", output);
  printf("%lld\n", (long long)id);
  return 0;
}

static int print_json(hetee_client_conn *cn, const char *method, const char *target) {
  long st = 0;
  uint8_t *r = NULL;
  size_t n = 0;
  int rc = hetee_client_request(cn, method, target, NULL, NULL, 0, &st, &r, &n);
  if (rc) return fail("model", target, rc);
  json_t *j = r ? json_loads((const char *)r, 0, NULL) : NULL;
  char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
  printf("%s\n", s ? s : r ? (const char *)r : "");
  free(s);
  json_decref(j);
  free(r);
  if (st >= 300) return 1;
  return 0;
}

int hetee_cli_model_refined(int argc, char **argv, int promote); /* cmd_refine.c */
int hetee_cmd_model(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "fetch") || !strcmp(argv[1], "promote")))
    return hetee_cli_model_refined(argc - 1, argv + 1, !strcmp(argv[1], "promote"));
  /* the subcommand is the first of upload|list|show|delete among the
   * arguments (options may come before it, as they always could) */
  static const char *const SUBS[] = {"upload", "list", "show", "delete"};
  static const hetee_cli_cmd *const CMDS[] = {&UPLOAD_CMD, &LIST_CMD, &SHOW_CMD, &DELETE_CMD};
  int si = -1, at = 0;
  for (int i = 1; i < argc && si < 0; i++)
    for (int j = 0; j < 4; j++)
      if (!strcmp(argv[i], SUBS[j]) && !(i > 1 && argv[i - 1][0] == '-' && !strchr(argv[i - 1], '=') &&
                                        strcmp(argv[i - 1], "--help") && strcmp(argv[i - 1], "-h"))) {
        si = j;
        at = i;
        break;
      }
  if (si < 0) {
    for (int i = 1; i < argc; i++)
      if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
        hetee_cli_help(&MODEL_CMD, stdout);
        return 0;
      }
    for (int i = 1; i < argc; i++)
      if (argv[i][0] != '-')
        return hetee_cli_error(&MODEL_CMD, "unknown subcommand '%s' (upload, list, show or delete)", argv[i]);
    return hetee_cli_error(&MODEL_CMD, "missing subcommand: upload, list, show or delete (see 'hetee model --help')");
  }
  const hetee_cli_cmd *cmd = CMDS[si];
  /* argv without the subcommand, argv[0] = the subcommand's name */
  char *av[256];
  int ac = 0;
  if (argc > (int)(sizeof av / sizeof av[0])) return hetee_cli_error(cmd, "too many arguments");
  av[ac++] = argv[at];
  for (int i = 1; i < argc; i++)
    if (i != at) av[ac++] = argv[i];
  av[ac] = NULL;

  char hb[1024];
  const char *home = default_home(hb, sizeof hb), *url = DEFAULT_SERVER, *output = "label", *name = NULL;
  uint8_t dps[HETEE_POLICY_MAX_DPS][32];
  int64_t budgets[HETEE_POLICY_MAX_DPS];
  int nallow = 0, k = 0;
  unsigned batch = 0;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, cmd, ac, av);
  for (int key; (key = hetee_cli_next(&p)) != -1;) {
    switch (key) {
    case 'a': {
      if (nallow >= HETEE_POLICY_MAX_DPS) return hetee_cli_error(cmd, "at most %d --allow", HETEE_POLICY_MAX_DPS);
      char path[1024];
      snprintf(path, sizeof path, "%s", p.arg);
      char *colon = strrchr(path, ':');
      budgets[nallow] = -1;
      if (colon) {
        unsigned b;
        *colon = 0;
        if (hetee_cli_uint(cmd, "--allow BUDGET", colon + 1, 1u << 30, &b)) return 2;
        budgets[nallow] = b;
      }
      int role = 0, rc = hetee_party_public_load(path, &role, dps[nallow]);
      if (rc) return hetee_cli_error(cmd, "--allow %s: %s: %s", path, hetee_strerror(rc), hetee_last_error());
      if (role != HETEE_PARTY_DP) return hetee_cli_error(cmd, "--allow %s is not a data provider's public key", path);
      nallow++;
      break;
    }
    case 'o': output = p.arg; break;
    case 'b': if (hetee_cli_uint(cmd, "--batch", p.arg, 4096, &batch)) return 2; break;
    case 'n': name = p.arg; break;
    case 'H': home = p.arg; break;
    case 's': url = p.arg; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  int nargs = ac - p.optind, want = si == 1 ? 0 : 1;
  if (nargs < want)
    return hetee_cli_error(cmd, "missing %s (see '%s --help')", si == 0 ? "MODEL.onnx" : "model ID", cmd->name);
  if (nargs > want) return hetee_cli_error(cmd, "unexpected argument '%s'", av[p.optind + want]);
  const char *arg = want ? av[p.optind] : NULL;
  unsigned id = 0;
  if (si == 0) {
    if (!nallow) return hetee_cli_error(cmd, "at least one --allow DP.pub is required (who may get results)");
    /* label | probs | logits | topk:K (or topK) */
    const char *kk = !strncmp(output, "topk:", 5) ? output + 5 : !strncmp(output, "top", 3) ? output + 3 : NULL;
    if (kk) {
      unsigned kv;
      if (hetee_cli_uint(cmd, "--output topk:K", kk, 255, &kv)) return 2;
      k = (int)kv;
      output = "topk";
    } else if (strcmp(output, "label") && strcmp(output, "probs") && strcmp(output, "logits")) {
      return hetee_cli_error(cmd, "--output must be label, probs, logits or topk:K, got '%s'", output);
    }
    if (access(arg, R_OK) != 0) return hetee_cli_error(cmd, "cannot read %s: %s", arg, strerror(errno));
    if (!name) {
      /* the file's base name without .onnx, as the model's name */
      static char nb[65];
      const char *b = strrchr(arg, '/');
      snprintf(nb, sizeof nb, "%s", b ? b + 1 : arg);
      char *dot = strstr(nb, ".onnx");
      if (dot) *dot = 0;
      name = nb;
    }
  } else if (want && hetee_cli_uint(cmd, "model ID", arg, 0x7fffffff, &id)) {
    return 2;
  }
  hetee_client_conn *cn = NULL;
  int rc = hetee_client_connect(url, home, &cn);
  if (rc) return fail("model", "connect", rc);
  int code;
  char target[128];
  if (si == 0) {
    code = model_upload(cn, arg, nallow, (const uint8_t(*)[32])dps, budgets, output, k, batch, name);
  } else if (si == 1) {
    code = print_json(cn, "GET", "/v1/models");
  } else {
    snprintf(target, sizeof target, "/v1/models/%u", id);
    code = print_json(cn, si == 2 ? "GET" : "DELETE", target);
  }
  hetee_client_disconnect(cn);
  return code;
}

/* ---- infer -------------------------------------------------------------- */
int hetee_cmd_infer(int argc, char **argv) {
  static const hetee_cli_opt opts[] = {
      {"model", "ID", 'm', "the model's id on the server (hetee model upload printed it); required"},
      {"labels", "LABELS", 'l', "IDX or .npy labels, one per image; adds a last line 'accuracy: 0.xxxx'"},
      {"count", "N", 'n', "use only the first N images"},
      HOME_OPT,
      SERVER_OPT,
      {0, 0, 0, 0}};
  static const hetee_cli_cmd cmd = {
      "hetee infer", "hetee infer --model ID IMAGES [--labels LABELS] [--count N] [--home DIR] [--server URL]",
      "Data provider: attests the server's enclave, encrypts IMAGES (IDX or .npy) under its key, submits\n"
      "them, waits, opens the results (sealed to this data provider's identity) and prints one predicted\n"
      "label per line; with --labels, a last line 'accuracy: 0.xxxx'. The job's id is on the last stderr\n"
      "line: 'hetee job result ID' opens its results again later.",
      opts};
  char hb[1024];
  const char *home = default_home(hb, sizeof hb), *url = DEFAULT_SERVER, *labels_path = NULL;
  unsigned model = 0, count = 0;
  hetee_cli_parser p;
  hetee_cli_parser_init(&p, &cmd, argc, argv);
  for (int k; (k = hetee_cli_next(&p)) != -1;) {
    switch (k) {
    case 'm': if (hetee_cli_uint(&cmd, "--model", p.arg, 0x7fffffff, &model)) return 2; break;
    case 'l': labels_path = p.arg; break;
    case 'n': if (hetee_cli_uint(&cmd, "--count", p.arg, 1u << 20, &count)) return 2; break;
    case 'H': home = p.arg; break;
    case 's': url = p.arg; break;
    case HETEE_CLI_HELP: return 0;
    default: return 2;
    }
  }
  if (!model) return hetee_cli_error(&cmd, "--model ID is required");
  if (p.optind >= argc) return hetee_cli_error(&cmd, "missing IMAGES (see 'hetee infer --help')");
  if (p.optind + 1 < argc) return hetee_cli_error(&cmd, "unexpected argument '%s'", argv[p.optind + 1]);
  int pos = p.optind;
  hetee_nn_data *images = NULL, *labels = NULL;
  if (hetee_nn_images_load(argv[pos], &images)) return fail("infer", argv[pos], HETEE_ERR_FORMAT);
  if (labels_path && hetee_nn_labels_load(labels_path, &labels)) {
    hetee_nn_data_free(images);
    return fail("infer", labels_path, HETEE_ERR_FORMAT);
  }
  size_t n_img = hetee_nn_data_dims(images)[0];
  size_t per = n_img ? hetee_nn_data_count(images) / n_img : 0;
  if (labels && hetee_nn_data_count(labels) != n_img) {
    fprintf(stderr, "hetee infer: %zu images but %zu labels\n", n_img, hetee_nn_data_count(labels));
    hetee_nn_data_free(images);
    hetee_nn_data_free(labels);
    return 2;
  }
  size_t n = count ? count : n_img;
  if (n > n_img) {
    fprintf(stderr, "hetee infer: --count %zu but only %zu images\n", n, n_img);
    hetee_nn_data_free(images);
    hetee_nn_data_free(labels);
    return 2;
  }
  hetee_client_conn *cn = NULL;
  int rc = hetee_client_connect(url, home, &cn);
  int code = 1;
  float *x = NULL;
  hetee_client_job *job = NULL;
  hetee_release_result *res = NULL;
  size_t nres = 0;
  if (rc) {
    fail("infer", "connect", rc);
    goto out;
  }
  /* the model's input size and pixel scale, as its owner published them */
  char target[64];
  snprintf(target, sizeof target, "/v1/models/%u", model);
  long st = 0;
  uint8_t *r = NULL;
  rc = hetee_client_request(cn, "GET", target, NULL, NULL, 0, &st, &r, NULL);
  json_t *mj = !rc && st == 200 && r ? json_loads((const char *)r, 0, NULL) : NULL;
  free(r);
  if (!mj) {
    fprintf(stderr, "hetee infer: model %u: not found or not available to this data provider (HTTP %ld)\n", model, st);
    goto out;
  }
  size_t in_size = (size_t)json_integer_value(json_object_get(mj, "input_size"));
  double scale = json_real_value(json_object_get(mj, "input_scale"));
  json_decref(mj);
  if (per != in_size) {
    fprintf(stderr, "hetee infer: images have %zu values each, model %u takes %zu\n", per, model, in_size);
    code = 2;
    goto out;
  }
  if (hetee_nn_data_dtype(images) != HETEE_NN_U8 || !(scale > 0)) scale = 1.0;
  x = malloc(n * per * sizeof *x);
  if (!x) goto out;
  const float *v = hetee_nn_data_values(images);
  for (size_t i = 0; i < n * per; i++) x[i] = (float)(v[i] * scale);
  double t0 = now_s();
  char what[96];
  snprintf(what, sizeof what, "encrypting and submitting %zu images", n);
  hetee_cli_progress *pr = hetee_cli_progress_start(what, 0);
  if (pr) hetee_client_set_progress(cn, hetee_cli_progress_client, pr);
  rc = hetee_client_job_submit(cn, model, x, n, &job);
  double t1 = now_s();
  hetee_cli_progress_set(pr, "waiting for the server's job", 0, 0);
  /* with a progress bar: the job's state while it waits, then the
   * results; without: both in one long poll */
  if (!rc && pr) rc = hetee_client_job_wait(cn, job);
  hetee_cli_progress_set(pr, "fetching and opening the results", 0, 0);
  if (!rc) rc = pr ? hetee_client_job_results(cn, job, &res, &nres) : hetee_client_job_await(cn, job, &res, &nres);
  double t2 = now_s();
  hetee_client_set_progress(cn, NULL, NULL);
  hetee_cli_progress_end(pr);
  if (rc) {
    fail("infer", "job", rc);
    goto out;
  }
  if (nres != n) {
    fprintf(stderr, "hetee infer: %zu results for %zu images\n", nres, n);
    goto out;
  }
  size_t ok = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t label = 0;
    if (res[i].indices && res[i].n >= 1) {
      label = res[i].indices[0];
    } else { /* probabilities / logits: the largest */
      for (size_t k = 1; k < res[i].n; k++)
        if (res[i].values[k] > res[i].values[label]) label = (uint32_t)k;
    }
    printf("%u\n", label);
    if (labels) ok += (uint32_t)hetee_nn_data_values(labels)[i] == label;
  }
  fprintf(stderr, "hetee infer: %zu images, job %lld: encrypt + submit %.2f s, run + fetch + open %.2f s (%.1f ms per image)\n",
          n, (long long)hetee_client_job_id(job), t1 - t0, t2 - t1, 1000.0 * (t2 - t0) / (double)n);
  if (labels) printf("accuracy: %.4f\n", (double)ok / (double)n);
  code = 0;
out:
  hetee_client_results_free(res, nres);
  hetee_client_job_free(job);
  free(x);
  hetee_client_disconnect(cn);
  hetee_nn_data_free(images);
  hetee_nn_data_free(labels);
  return code;
}
