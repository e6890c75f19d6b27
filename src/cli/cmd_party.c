/*
 * cmd_party.c — the parties' commands against `hetee server`
 * (hetee/api_client.h, docs/api.md):
 *   hetee keygen --role mp|dp --home DIR [--trust-platform DIR --trust-measurement HEX] [--force]
 *   hetee trust --home DIR --trust-platform DIR --trust-measurement HEX
 *   hetee attest --server URL [--home DIR]
 *   hetee model upload MODEL.onnx [--allow DP.pub[:BUDGET]]... [--output label|probs|logits|topK] ...
 *   hetee model list | show ID | delete ID
 *   hetee infer --model ID IMAGES [--labels LABELS] [--count N]
 * Every command takes --home DIR (default ~/.hetee) and --server URL
 * (default http://127.0.0.1:8470).
 */
#include <errno.h>
#include <getopt.h>
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
#define KEYGEN_USAGE                                                                                           \
  "usage: hetee keygen --role mp|dp --home DIR [--trust-platform DIR --trust-measurement HEX] [--force]\n" \
  "       hetee keygen --role mp|dp --out FILE\n"                                                            \
  "  --home DIR   identity in DIR/id (secret, 0600) and DIR/id.pub; trust in DIR/trust\n"                    \
  "  --force      replace an existing identity in DIR\n"

int hetee_cli_keygen_home(int argc, char **argv) {
  static const struct option opts[] = {{"role", required_argument, 0, 'r'},
                                       {"home", required_argument, 0, 'H'},
                                       {"trust-platform", required_argument, 0, 'p'},
                                       {"trust-measurement", required_argument, 0, 'm'},
                                       {"force", no_argument, 0, 'f'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *role = NULL, *home = NULL, *plat = NULL, *meas = NULL;
  int force = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'r': role = optarg; break;
    case 'H': home = optarg; break;
    case 'p': plat = optarg; break;
    case 'm': meas = optarg; break;
    case 'f': force = 1; break;
    case 'h': printf(KEYGEN_USAGE); return 0;
    default: fprintf(stderr, KEYGEN_USAGE); return 2;
    }
  }
  int r = role && !strcmp(role, "mp") ? HETEE_PARTY_MP : role && !strcmp(role, "dp") ? HETEE_PARTY_DP : 0;
  if (!r || !home || optind != argc || (!plat != !meas)) {
    fprintf(stderr, KEYGEN_USAGE);
    return 2;
  }
  char path[1024];
  if (mkdir(home, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "hetee keygen: cannot create %s: %s\n", home, strerror(errno));
    return 1;
  }
  snprintf(path, sizeof path, "%s/id", home);
  if (!force && access(path, F_OK) == 0) {
    fprintf(stderr, "hetee keygen: %s already holds an identity (--force replaces it)\n", home);
    return 1;
  }
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

int hetee_cmd_trust(int argc, char **argv) {
  static const struct option opts[] = {{"home", required_argument, 0, 'H'},
                                       {"trust-platform", required_argument, 0, 'p'},
                                       {"trust-measurement", required_argument, 0, 'm'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *usage = "usage: hetee trust [--home DIR] --trust-platform DIR --trust-measurement HEX\n"
                      "  records the platform key and enclave measurement the party accepts (DIR/trust)\n";
  char hb[1024];
  const char *home = default_home(hb, sizeof hb), *plat = NULL, *meas = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'H': home = optarg; break;
    case 'p': plat = optarg; break;
    case 'm': meas = optarg; break;
    case 'h': printf("%s", usage); return 0;
    default: fprintf(stderr, "%s", usage); return 2;
    }
  }
  if (!plat || !meas || optind != argc) {
    fprintf(stderr, "%s", usage);
    return 2;
  }
  int rc = hetee_client_home_trust(home, plat, meas);
  if (rc) return fail("trust", "trust", rc);
  printf("%s trusts platform %s, enclave measurement %s\n", home, plat, meas);
  return 0;
}

/* ---- attest --server ---------------------------------------------------- */
int hetee_cli_attest_server(int argc, char **argv) {
  static const struct option opts[] = {{"server", required_argument, 0, 's'},
                                       {"home", required_argument, 0, 'H'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *usage = "usage: hetee attest --server URL [--home DIR]\n";
  char hb[1024];
  const char *home = default_home(hb, sizeof hb), *url = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 's': url = optarg; break;
    case 'H': home = optarg; break;
    case 'h': printf("%s", usage); return 0;
    default: fprintf(stderr, "%s", usage); return 2;
    }
  }
  if (!url || optind != argc) {
    fprintf(stderr, "%s", usage);
    return 2;
  }
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
#define MODEL_USAGE                                                                                             \
  "usage: hetee model upload MODEL.onnx [--allow DP.pub[:BUDGET]]... [--output label|probs|logits|topK]\n"    \
  "                          [--batch N] [--name NAME] [--home DIR] [--server URL]\n"                          \
  "       hetee model list|show ID|delete ID [--home DIR] [--server URL]\n"                                    \
  "  upload attests the server's enclave, encrypts the model under its key, uploads it and sets the\n"       \
  "  release policy: the data providers allowed (each DP.pub, optionally :BUDGET images) and what they\n"    \
  "  get (label: the class; probs: rounded probabilities; logits; topK: the K best classes).\n"              \
  "  Prints the new model id alone on the last line.\n"

static int model_upload(hetee_client_conn *cn, const char *onnx, int nallow, char **allow, const char *output,
                        unsigned batch, const char *name) {
  uint8_t dps[HETEE_POLICY_MAX_DPS][32];
  int64_t budgets[HETEE_POLICY_MAX_DPS];
  for (int i = 0; i < nallow; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s", allow[i]);
    char *colon = strrchr(path, ':');
    budgets[i] = -1;
    if (colon) {
      *colon = 0;
      unsigned b = hetee_cli_u32("model upload", "--allow BUDGET", colon + 1, 1u << 30);
      if (!b) return 2;
      budgets[i] = b;
    }
    int role = 0;
    if (hetee_party_public_load(path, &role, dps[i]) || role != HETEE_PARTY_DP) {
      fprintf(stderr, "hetee model upload: %s is not a data provider's public key\n", path);
      return 2;
    }
  }
  hetee_client_model_options o = {.name = name, .batch = batch, .output = output, .dps = (const uint8_t(*)[32])dps,
                                  .budgets = budgets, .ndps = (size_t)nallow};
  if (!strncmp(output, "top", 3) && strcmp(output, "topk")) {
    o.output = "topk";
    o.k = (int)hetee_cli_u32("model upload", "--output topK", output + 3, 255);
    if (!o.k) return 2;
  }
  double t = now_s();
  int64_t id = 0;
  int rc = hetee_client_model_upload(cn, onnx, &o, &id);
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

int hetee_cmd_model(int argc, char **argv) {
  static const struct option opts[] = {{"allow", required_argument, 0, 'a'}, {"output", required_argument, 0, 'o'},
                                       {"batch", required_argument, 0, 'b'}, {"name", required_argument, 0, 'n'},
                                       {"home", required_argument, 0, 'H'},  {"server", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
  char hb[1024];
  const char *home = default_home(hb, sizeof hb), *url = DEFAULT_SERVER, *output = "label", *name = NULL;
  char *allow[HETEE_POLICY_MAX_DPS];
  int nallow = 0, c;
  unsigned batch = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'a':
      if (nallow >= HETEE_POLICY_MAX_DPS) {
        fprintf(stderr, "hetee model: at most %d --allow\n", HETEE_POLICY_MAX_DPS);
        return 2;
      }
      allow[nallow++] = optarg;
      break;
    case 'o': output = optarg; break;
    case 'b': if (!(batch = hetee_cli_u32("model", "--batch", optarg, 4096))) return 2; break;
    case 'n': name = optarg; break;
    case 'H': home = optarg; break;
    case 's': url = optarg; break;
    case 'h': printf(MODEL_USAGE); return 0;
    default: fprintf(stderr, MODEL_USAGE); return 2;
    }
  }
  const char *sub = optind < argc ? argv[optind] : NULL;
  int nargs = argc - optind - 1;
  if (!sub || (!strcmp(sub, "upload") && (nargs != 1 || !nallow)) || (!strcmp(sub, "list") && nargs != 0) ||
      ((!strcmp(sub, "show") || !strcmp(sub, "delete")) && nargs != 1) ||
      (strcmp(sub, "upload") && strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "delete"))) {
    fprintf(stderr, MODEL_USAGE);
    return 2;
  }
  if (strcmp(output, "label") && strcmp(output, "probs") && strcmp(output, "logits") && strncmp(output, "top", 3)) {
    fprintf(stderr, "hetee model: --output label|probs|logits|topK\n");
    return 2;
  }
  if (!name && !strcmp(sub, "upload")) {
    /* the file's base name without .onnx, as the model's name */
    static char nb[65];
    const char *b = strrchr(argv[optind + 1], '/');
    snprintf(nb, sizeof nb, "%s", b ? b + 1 : argv[optind + 1]);
    char *dot = strstr(nb, ".onnx");
    if (dot) *dot = 0;
    name = nb;
  }
  hetee_client_conn *cn = NULL;
  int rc = hetee_client_connect(url, home, &cn);
  if (rc) return fail("model", "connect", rc);
  int code;
  char target[128];
  if (!strcmp(sub, "upload")) {
    code = model_upload(cn, argv[optind + 1], nallow, allow, output, batch, name);
  } else if (!strcmp(sub, "list")) {
    code = print_json(cn, "GET", "/v1/models");
  } else {
    unsigned id = hetee_cli_u32("model", sub, argv[optind + 1], 0x7fffffff);
    if (!id) {
      hetee_client_disconnect(cn);
      return 2;
    }
    snprintf(target, sizeof target, "/v1/models/%u", id);
    code = print_json(cn, !strcmp(sub, "show") ? "GET" : "DELETE", target);
  }
  hetee_client_disconnect(cn);
  return code;
}

/* ---- infer -------------------------------------------------------------- */
#define INFER_USAGE                                                                                           \
  "usage: hetee infer --model ID IMAGES [--labels LABELS] [--count N] [--home DIR] [--server URL]\n"        \
  "  attests the server's enclave, encrypts the images (IDX or .npy) under its key, submits them,\n"         \
  "  waits, opens the results (sealed to this data provider's session) and prints one predicted\n"          \
  "  label per line; with --labels, a last line 'accuracy: 0.xxxx'.\n"

int hetee_cmd_infer(int argc, char **argv) {
  static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"labels", required_argument, 0, 'l'},
                                       {"count", required_argument, 0, 'n'}, {"home", required_argument, 0, 'H'},
                                       {"server", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  char hb[1024];
  const char *home = default_home(hb, sizeof hb), *url = DEFAULT_SERVER, *labels_path = NULL;
  unsigned model = 0, count = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'm': if (!(model = hetee_cli_u32("infer", "--model", optarg, 0x7fffffff))) return 2; break;
    case 'l': labels_path = optarg; break;
    case 'n': if (!(count = hetee_cli_u32("infer", "--count", optarg, 1u << 20))) return 2; break;
    case 'H': home = optarg; break;
    case 's': url = optarg; break;
    case 'h': printf(INFER_USAGE); return 0;
    default: fprintf(stderr, INFER_USAGE); return 2;
    }
  }
  if (!model || optind != argc - 1) {
    fprintf(stderr, INFER_USAGE);
    return 2;
  }
  hetee_nn_data *images = NULL, *labels = NULL;
  if (hetee_nn_images_load(argv[optind], &images)) return fail("infer", argv[optind], HETEE_ERR_FORMAT);
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
  rc = hetee_client_job_submit(cn, model, x, n, &job);
  double t1 = now_s();
  if (!rc) rc = hetee_client_job_wait(cn, job);
  if (!rc) rc = hetee_client_job_results(cn, job, &res, &nres);
  double t2 = now_s();
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
