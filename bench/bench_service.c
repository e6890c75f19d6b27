/*
 * bench_service.c — `hetee-bench service --clients C --batch B [--images N]
 * [--model M.onnx] [--workers W] [--threads T] [--no-infer] [--json]`: the
 * three-party service under load, as deployed. Starts the real `hetee
 * server` binary (next to hetee-bench) on a free loopback port with its own
 * temporary data directory and sim platform, creates one model provider
 * and C data provider identities (home directories trusting the platform
 * and the enclave's measurement), uploads the model encrypted with a
 * policy naming all C data providers, then C client threads (one
 * connection each, the client library hetee/api_client.h) take jobs of B
 * images until N images are done: encrypt + seal the input witnesses +
 * sign + submit (hetee_client_job_submit), wait + fetch (one long poll,
 * hetee_client_job_await), open.
 *
 * With --prepared each client first encrypts, witnesses and signs all its
 * jobs (hetee_client_job_prepare; untimed, prepare_s), waits for the others
 * at a barrier, then sends them one after the other (hetee_client_job_send,
 * wait + fetch, open): the timed window then starts, like infer's total_s,
 * with the encrypted inputs ready, and ends with the opened results.
 *
 * Reports: throughput (images / wall time from the first submission to the
 * last opened result — without --prepared the clients' encryption runs in
 * that window, on the same machine),
 * job latency p50/p95/p99 (submit to opened results), errors, the enclave's
 * share as the server's metrics endpoint gives it (enclave CPU seconds over
 * job wall seconds, hetee_enclave_time_share), and the peak RSS (VmHWM) of
 * the server process and of its enclave processes. Then, unless --no-infer,
 * it runs `hetee-bench infer` on the same model, batch and image count
 * (--threads T) and prints the ratio of the two throughputs, against
 * infer's images / total_s (host + enclave work only) and against infer's
 * images / (data provider encryption + input load + total_s + opening),
 * which covers the same steps as a service job.
 */
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hetee/api_client.h"
#include "hetee/client.h"
#include "hetee/enclave.h"
#include "hetee/host.h"
#include "hetee/nn.h"
#include "bench_util.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"
#define NAME "hetee-bench service"

static int usage(void) {
  fprintf(stderr, "usage: hetee-bench service --clients C --batch B [--images N] [--model M.onnx] [--workers W] "
                  "[--threads T] [--prepared] [--no-infer] [--json]\n");
  return 2;
}

static int arg_long(const char *v, long lo, long hi, long *out) {
  char *e;
  long x = strtol(v, &e, 10);
  if (e == v || *e || x < lo || x > hi) return -1;
  *out = x;
  return 0;
}

/* ---- shared state of the client threads --------------------------------- */
typedef struct {
  const char *url;
  int64_t model;
  const float *x; /* all 10000 test images, scaled */
  size_t nimg_file, batch;
  long njobs;
  long next; /* next job index (under mu) */
  pthread_mutex_t mu;
  double *lat;   /* per job, seconds (-1: failed) */
  double *phase; /* per job: submit (encrypt, sign, upload; the first job of a connection also attests and opens a session), wait (hetee_client_job_await: the long poll that also fetches, and the opening), results (what follows: the count check) */
  double first, last;
  long errors;
  char first_error[256];
  /* --prepared: each client encrypts its jobs (j = its index + k x clients)
   * before the barrier; the clock covers send, wait + fetch, open */
  int prepared;
  long clients;
  pthread_barrier_t ready;
  double prepare_s; /* the slowest client's preparation */
} shared;

typedef struct {
  shared *S;
  long idx;
  char home[300];
} client_arg;

static void record(shared *S, long j, int rc, double t0, double ts, double tw, double t1) {
  pthread_mutex_lock(&S->mu);
  if (S->first == 0 || t0 < S->first) S->first = t0;
  if (t1 > S->last) S->last = t1;
  S->lat[j] = rc ? -1 : t1 - t0;
  S->phase[3 * j] = ts - t0;
  S->phase[3 * j + 1] = tw - ts;
  S->phase[3 * j + 2] = t1 - tw;
  if (rc && S->errors++ == 0)
    snprintf(S->first_error, sizeof S->first_error, "%s: %s", hetee_strerror(rc), hetee_last_error());
  pthread_mutex_unlock(&S->mu);
}

/* --prepared: all of this client's jobs encrypted, witnessed and signed
 * first (untimed), then after the barrier sent one after the other. */
static void *client_prepared(void *arg) {
  client_arg *a = arg;
  shared *S = a->S;
  hetee_client_conn *c = NULL;
  double tp = bench_now();
  int rc = hetee_client_connect(S->url, a->home, &c);
  long mine = a->idx < S->njobs ? (S->njobs - a->idx + S->clients - 1) / S->clients : 0;
  hetee_client_prepared **pj = calloc((size_t)(mine ? mine : 1), sizeof *pj);
  if (!pj) rc = HETEE_ERR_NOMEM;
  for (long k = 0; !rc && k < mine; k++) {
    long j = a->idx + k * S->clients;
    size_t off = ((size_t)j * S->batch) % (S->nimg_file - S->batch + 1);
    rc = hetee_client_job_prepare(c, S->model, S->x + off * 784, S->batch, &pj[k]);
  }
  tp = bench_now() - tp;
  pthread_mutex_lock(&S->mu);
  if (tp > S->prepare_s) S->prepare_s = tp;
  pthread_mutex_unlock(&S->mu);
  int prc = rc;
  char perr[200];
  snprintf(perr, sizeof perr, "%s", rc ? hetee_last_error() : "");
  pthread_barrier_wait(&S->ready);
  if (a->idx == 0 && getenv("HETEE_BENCH_MARK")) { /* for a profiler attached to the timed window only */
    fprintf(stderr, NAME ": clock starts\n");
    fflush(stderr);
  }
  for (long k = 0; k < mine; k++) {
    long j = a->idx + k * S->clients;
    double t0 = bench_now(), ts = t0, tw = t0;
    hetee_client_job *job = NULL;
    hetee_release_result *res = NULL;
    size_t nres = 0;
    rc = prc ? hetee_error(prc, "preparing: %s", perr) : pj[k] ? 0 : HETEE_ERR_INTERNAL;
    if (!rc) rc = hetee_client_job_send(c, pj[k], &job);
    ts = bench_now();
    if (!rc) rc = hetee_client_job_await(c, job, &res, &nres); /* wait + fetch: one long poll */
    tw = bench_now();
    if (!rc && nres != S->batch) rc = HETEE_ERR_STATE;
    record(S, j, rc, t0, ts, tw, bench_now());
    hetee_client_results_free(res, nres);
    hetee_client_job_free(job);
  }
  for (long k = 0; pj && k < mine; k++) hetee_client_prepared_free(pj[k]);
  free(pj);
  hetee_client_disconnect(c);
  return NULL;
}

static void *client_main(void *arg) {
  client_arg *a = arg;
  shared *S = a->S;
  hetee_client_conn *c = NULL;
  int rc = hetee_client_connect(S->url, a->home, &c);
  for (;;) {
    pthread_mutex_lock(&S->mu);
    long j = S->next < S->njobs ? S->next++ : -1;
    pthread_mutex_unlock(&S->mu);
    if (j < 0) break;
    size_t off = ((size_t)j * S->batch) % (S->nimg_file - S->batch + 1);
    double t0 = bench_now();
    hetee_client_job *job = NULL;
    hetee_release_result *res = NULL;
    size_t nres = 0;
    if (!rc) rc = hetee_client_job_submit(c, S->model, S->x + off * 784, S->batch, &job);
    double ts = bench_now();
    if (!rc) rc = hetee_client_job_await(c, job, &res, &nres); /* wait + fetch: one long poll */
    double tw = bench_now();
    if (!rc && nres != S->batch) rc = HETEE_ERR_STATE;
    record(S, j, rc, t0, ts, tw, bench_now());
    hetee_client_results_free(res, nres);
    hetee_client_job_free(job);
    if (rc) { /* a broken connection: reconnect for the next job */
      hetee_client_disconnect(c);
      c = NULL;
      rc = hetee_client_connect(S->url, a->home, &c);
    }
  }
  hetee_client_disconnect(c);
  return NULL;
}

static double pct(const double *v, size_t n, double p) {
  if (!n) return 0;
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

/* VmHWM (peak resident set) of a process in KiB, 0 if unreadable. */
static long vm_hwm_kib(pid_t pid) {
  char p[64], line[256];
  snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
  FILE *f = fopen(p, "r");
  long kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

/* The sum of VmHWM over pid's descendants (the launcher and the enclave). */
static long descendants_hwm_kib(pid_t root) {
  pid_t set[64];
  int n = 1;
  set[0] = root;
  long sum = 0;
  for (int grew = 1; grew;) {
    grew = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      int pid = atoi(e->d_name);
      if (pid <= 0) continue;
      char p[64], buf[512];
      snprintf(p, sizeof p, "/proc/%d/stat", pid);
      FILE *f = fopen(p, "r");
      if (!f) continue;
      size_t len = fread(buf, 1, sizeof buf - 1, f);
      fclose(f);
      buf[len] = 0;
      char *rp = strrchr(buf, ')'); /* comm may hold spaces */
      int ppid = 0;
      if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1) continue;
      int known = 0, parent = 0;
      for (int i = 0; i < n; i++) {
        known |= set[i] == pid;
        parent |= set[i] == ppid;
      }
      if (parent && !known && n < 64) {
        set[n++] = pid;
        sum += vm_hwm_kib(pid);
        grew = 1;
      }
    }
    if (d) closedir(d);
  }
  return sum;
}

/* A metric's value from the Prometheus text (-1: absent). */
static double metric(const char *text, const char *name) {
  size_t l = strlen(name);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (!strncmp(p, name, l) && p[l] == ' ') return atof(p + l + 1);
  return -1;
}

/* The enclave's own CPU seconds per message type, from the server's
 * /metrics (its STATS counters since the enclave started; 0 when absent). */
#define N_EOPS 8
static const char *const EOPS[N_EOPS] = {"job_auth", "job_start", "job_refresh", "job_release",
                                          "session_open", "session_msg", "seal", "model_load"};
static void enclave_ops(const char *text, double out[N_EOPS]) {
  for (int k = 0; k < N_EOPS; k++) {
    char name[96];
    snprintf(name, sizeof name, "hetee_enclave_message_cpu_seconds_total{type=\"%s\"}", EOPS[k]);
    double v = text ? metric(text, name) : -1;
    out[k] = v > 0 ? v : 0;
  }
}

static int make_identity(const char *home, int role, const char *plat, const char *mhex, uint8_t pk[32]) {
  char p[400];
  if (mkdir(home, 0700)) return HETEE_ERR_IO;
  snprintf(p, sizeof p, "%s/id", home);
  hetee_party_key *k = NULL;
  int rc = hetee_party_key_generate(role, &k);
  if (!rc) rc = hetee_party_key_save(k, p);
  if (!rc) hetee_party_key_public(k, pk);
  hetee_party_key_free(k);
  if (!rc && mhex) rc = hetee_client_home_trust(home, plat, mhex);
  return rc;
}

static pid_t start_server(const char *bin, const char *dir, const char *plat, const char *mp_pub, long workers,
                          long threads, unsigned *port) {
  char pf[400], data[400], w[16], t[16], q[16];
  snprintf(pf, sizeof pf, "%s/port", dir);
  snprintf(data, sizeof data, "%s/data", dir);
  snprintf(w, sizeof w, "%ld", workers);
  snprintf(t, sizeof t, "%ld", threads);
  snprintf(q, sizeof q, "%d", 64);
  char exe[600];
  snprintf(exe, sizeof exe, "%s/hetee", bin);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    char log[400];
    snprintf(log, sizeof log, "%s/server.log", dir);
    if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr)) _exit(126);
    execl(exe, "hetee", "server", "--listen", "127.0.0.1:0", "--data-dir", data, "--platform", plat, "--mp", mp_pub,
          "--port-file", pf, "--workers", w, "--threads", t, "--max-queue", q, "--max-party-jobs", "4", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 12000; i++) { /* up to 2 minutes on a loaded machine */
    FILE *f = fopen(pf, "r");
    if (f) {
      int ok = fscanf(f, "%u", port) == 1;
      fclose(f);
      if (ok && *port) return pid;
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) return -1;
    usleep(10 * 1000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* `hetee-bench infer` on the same work, its JSON line parsed. */
static int run_infer(const char *bin, const char *model, long batch, long images, long threads, double *ips,
                     double *ips_e2e, double *share) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s/hetee-bench' infer --model '%s' --batch %ld --images %ld --threads %ld --json", bin,
           model, batch, images, threads);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char *buf = malloc(1 << 20);
  size_t n = buf ? fread(buf, 1, (1 << 20) - 1, p) : 0;
  int st = pclose(p);
  if (!buf) return -1;
  buf[n] = 0;
  char *brace = strchr(buf, '{');
  json_t *j = brace && st == 0 ? json_loads(brace, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
  free(buf);
  if (!j) return -1;
  double total = json_number_value(json_object_get(j, "total_s"));
  double imgs = json_number_value(json_object_get(j, "images"));
  *share = json_number_value(json_object_get(j, "enclave_share"));
  /* what one data provider sees end to end in that process: its encryption,
   * the inputs loaded at the host, the run, the opening of the results */
  double e2e = total + json_number_value(json_object_get(j, "dp_encrypt_s")) +
               json_number_value(json_object_get(j, "input_load_s")) + json_number_value(json_object_get(j, "dp_open_s"));
  json_decref(j);
  if (!(total > 0)) return -1;
  *ips = imgs / total;
  *ips_e2e = imgs / e2e;
  return 0;
}

int hetee_bench_service(int argc, char **argv) {
  long clients = 0, batch = 0, images = 0, workers = 3, threads = 2;
  int json = 0, no_infer = 0, prepared = 0;
  const char *model = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--no-infer")) no_infer = 1;
    else if (!strcmp(a, "--prepared")) prepared = 1;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage();
      return 0;
    } else if (!v) {
      fprintf(stderr, NAME ": unknown option or missing value: '%s'\n", a);
      return 2;
    } else if (!strcmp(a, "--model")) model = argv[++i];
    else if (!strcmp(a, "--clients") && !arg_long(v, 1, HETEE_POLICY_MAX_DPS, &clients)) i++;
    else if (!strcmp(a, "--batch") && !arg_long(v, 1, 4096, &batch)) i++;
    else if (!strcmp(a, "--images") && !arg_long(v, 1, 1000000, &images)) i++;
    else if (!strcmp(a, "--workers") && !arg_long(v, 1, 64, &workers)) i++;
    else if (!strcmp(a, "--threads") && !arg_long(v, 1, 64, &threads)) i++;
    else {
      fprintf(stderr, NAME ": bad option '%s %s' (--clients 1..%d, --batch 1..4096)\n", a, v, HETEE_POLICY_MAX_DPS);
      return 2;
    }
  }
  if (!clients || !batch) return usage();
  if (!images) images = clients * batch * 2;
  if (images < batch) images = batch;
  char modelbuf[1024];
  if (!model) {
    const char *src = getenv("HETEE_SOURCE_DIR");
    snprintf(modelbuf, sizeof modelbuf, "%s/models/e2dm.onnx", src ? src : ".");
    model = modelbuf;
  }
  if (access(model, R_OK)) {
    fprintf(stderr, NAME ": cannot read the model %s\n", model);
    return 1;
  }
  char bin[512];
  if (hetee_host_bin_dir(bin, sizeof bin)) {
    fprintf(stderr, NAME ": cannot find the directory of hetee: %s\n", hetee_last_error());
    return 1;
  }
  if (sodium_init() < 0) return 1;

  int code = 1;
  pid_t srv = -1;
  float *x = NULL;
  hetee_nn_data *img = NULL;
  hetee_nn_model *m = NULL;
  hetee_client_conn *mpc = NULL;
  client_arg *ca = NULL;
  pthread_t *th = NULL;
  shared S;
  memset(&S, 0, sizeof S);
  pthread_mutex_init(&S.mu, NULL);
  char dir[] = "/tmp/hetee-bench-service-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char plat[300], mph[300], mppub[320], cfg[HETEE_ENCLAVE_CONFIG_MAX + 1], enc[600], mhex[65];
  uint8_t mpk[32], meas[32], (*dpk)[32] = calloc((size_t)clients, 32);
  snprintf(plat, sizeof plat, "%s/plat", dir);
  snprintf(mph, sizeof mph, "%s/mp", dir);
  snprintf(mppub, sizeof mppub, "%s/id.pub", mph);
  snprintf(enc, sizeof enc, "%s/hetee-enclave", bin);
  int rc = dpk ? hetee_platform_init(plat) : HETEE_ERR_NOMEM;
  if (!rc) rc = make_identity(mph, HETEE_PARTY_MP, plat, NULL, mpk);
  if (!rc) rc = hetee_enclave_config_with_mps(NULL, (const uint8_t(*)[32])mpk, 1, cfg, sizeof cfg);
  if (!rc) rc = hetee_measure_file(enc, cfg, meas);
  if (!rc) {
    hetee_hex_encode32(meas, mhex);
    rc = hetee_client_home_trust(mph, plat, mhex);
  }
  ca = calloc((size_t)clients, sizeof *ca);
  if (!ca) rc = HETEE_ERR_NOMEM;
  for (long i = 0; !rc && i < clients; i++) {
    snprintf(ca[i].home, sizeof ca[i].home, "%s/dp%ld", dir, i);
    ca[i].S = &S;
    ca[i].idx = i;
    rc = make_identity(ca[i].home, HETEE_PARTY_DP, plat, mhex, dpk[i]);
  }
  if (rc) {
    fprintf(stderr, NAME ": setup: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    goto out;
  }
  /* the images, scaled as the model was trained */
  if (hetee_nn_images_load(FMNIST "/t10k-images-idx3-ubyte.gz", &img) || hetee_nn_model_load(model, &m)) {
    fprintf(stderr, NAME ": %s\n", hetee_last_error());
    goto out;
  }
  S.nimg_file = hetee_nn_data_dims(img)[0];
  if ((size_t)batch > S.nimg_file || hetee_nn_model_input_size(m) != 784) {
    fprintf(stderr, NAME ": the batch must fit the %zu test images and the model take 28x28 images\n", S.nimg_file);
    goto out;
  }
  x = malloc(S.nimg_file * 784 * sizeof *x);
  if (!x) goto out;
  double scale = hetee_nn_model_input_scale(m);
  for (size_t i = 0; i < S.nimg_file * 784; i++) x[i] = (float)(hetee_nn_data_values(img)[i] * scale);

  unsigned port = 0;
  char url[64];
  srv = start_server(bin, dir, plat, mppub, workers, threads, &port);
  if (srv < 0) {
    fprintf(stderr, NAME ": hetee server did not start (see %s/server.log)\n", dir);
    goto out;
  }
  snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
  S.url = url;

  double tu = bench_now();
  hetee_client_model_options mo = {.name = "bench", .batch = (uint32_t)batch, .output = "label",
                                   .dps = (const uint8_t(*)[32])dpk, .ndps = (size_t)clients};
  rc = hetee_client_connect(url, mph, &mpc);
  if (!rc) rc = hetee_client_model_upload(mpc, model, &mo, &S.model);
  if (rc) {
    fprintf(stderr, NAME ": model upload: %s: %s\n", hetee_strerror(rc), hetee_last_error());
    goto out;
  }
  double upload_s = bench_now() - tu;
  /* the enclave's counters before the clients start (their jobs' messages: the difference) */
  double eops0[N_EOPS] = {0}, eops1[N_EOPS] = {0};
  {
    long st0 = 0;
    uint8_t *m0 = NULL;
    if (!hetee_client_request(mpc, "GET", "/metrics", NULL, NULL, 0, &st0, &m0, NULL) && st0 == 200 && m0)
      enclave_ops((char *)m0, eops0);
    free(m0);
  }

  S.batch = (size_t)batch;
  S.x = x;
  S.njobs = (images + batch - 1) / batch;
  S.lat = calloc((size_t)S.njobs, sizeof *S.lat);
  S.phase = calloc((size_t)S.njobs * 3, sizeof *S.phase);
  th = calloc((size_t)clients, sizeof *th);
  if (!S.lat || !S.phase || !th) goto out;
  S.prepared = prepared;
  S.clients = clients;
  if (prepared && pthread_barrier_init(&S.ready, NULL, (unsigned)clients)) goto out;
  long started = 0;
  for (; started < clients; started++)
    if (pthread_create(&th[started], NULL, prepared ? client_prepared : client_main, &ca[started])) break;
  if (started < clients) {
    /* the barrier counts every client: without them all, stop here */
    fprintf(stderr, NAME ": only %ld client threads started\n", started);
    if (prepared) _exit(1);
  }
  for (long i = 0; i < started; i++) pthread_join(th[i], NULL);
  if (getenv("HETEE_BENCH_MARK")) { /* the window's end: what follows (metrics, shutdown, removal) is not timed */
    fprintf(stderr, NAME ": clients done\n");
    fflush(stderr);
  }
  if (prepared) pthread_barrier_destroy(&S.ready);

  /* what the server says about its own work */
  long st = 0;
  uint8_t *mt = NULL;
  double share = -1, enclave_cpu = -1, job_wall = -1, batches = -1, batched = -1;
  if (!hetee_client_request(mpc, "GET", "/metrics", NULL, NULL, 0, &st, &mt, NULL) && st == 200 && mt) {
    share = metric((char *)mt, "hetee_enclave_time_share");
    enclave_cpu = metric((char *)mt, "hetee_enclave_cpu_seconds_total");
    job_wall = metric((char *)mt, "hetee_job_run_seconds_total");
    batches = metric((char *)mt, "hetee_job_batches_total");
    batched = metric((char *)mt, "hetee_batched_jobs_total");
    enclave_ops((char *)mt, eops1);
  }
  free(mt);
  long hwm_srv = vm_hwm_kib(srv), hwm_enc = descendants_hwm_kib(srv);

  size_t ok = 0;
  double *l = malloc((size_t)S.njobs * sizeof *l);
  if (!l) goto out;
  for (long j = 0; j < S.njobs; j++)
    if (S.lat[j] >= 0) l[ok++] = S.lat[j];
  qsort(l, ok, sizeof *l, bench_cmp_double);
  double med[3] = {0, 0, 0};
  double *ph = malloc((size_t)S.njobs * sizeof *ph);
  for (int k = 0; ph && k < 3; k++) {
    size_t cnt = 0;
    for (long j = 0; j < S.njobs; j++)
      if (S.lat[j] >= 0) ph[cnt++] = S.phase[3 * j + k];
    qsort(ph, cnt, sizeof *ph, bench_cmp_double);
    med[k] = pct(ph, cnt, 0.5);
  }
  free(ph);
  double wall = S.last - S.first, done_imgs = (double)ok * (double)batch;
  double ips = wall > 0 ? done_imgs / wall : 0;

  double infer_ips = 0, infer_e2e = 0, infer_share = 0;
  int infer_ok = 0;
  if (!no_infer) {
    fflush(stdout);
    infer_ok = !run_infer(bin, model, batch, S.njobs * batch, threads, &infer_ips, &infer_e2e, &infer_share);
    if (!infer_ok) fprintf(stderr, NAME ": hetee-bench infer failed; no ratio\n");
  }
  if (json) {
    printf("{\"mode\": \"%s\", \"prepare_s\": %.3f, \"model\": \"%s\", \"clients\": %ld, \"batch\": %ld, \"jobs\": %ld, \"images\": %.0f, \"workers\": %ld, "
           "\"threads\": %ld, \"upload_s\": %.3f, \"wall_s\": %.3f, \"images_per_s\": %.3f, \"latency_p50_s\": %.3f, "
           "\"latency_p95_s\": %.3f, \"latency_p99_s\": %.3f, \"submit_p50_s\": %.3f, \"wait_p50_s\": %.3f, "
           "\"results_p50_s\": %.3f, \"errors\": %ld, \"enclave_share\": %.4f, "
           "\"enclave_cpu_s\": %.3f, \"job_run_s\": %.3f, \"server_vmhwm_kib\": %ld, \"enclave_vmhwm_kib\": %ld, \"batches\": %.0f, \"batched_jobs\": %.0f",
           prepared ? "prepared" : "end_to_end", S.prepare_s, model, clients, batch, S.njobs, done_imgs, workers, threads, upload_s, wall, ips, pct(l, ok, 0.50),
           pct(l, ok, 0.95), pct(l, ok, 0.99), med[0], med[1], med[2], S.errors, share, enclave_cpu, job_wall, hwm_srv, hwm_enc, batches, batched);
    /* the enclave's CPU per job by message type, ms (its own counters) */
    printf(", \"enclave_ms_per_job\": {");
    for (int k = 0; k < N_EOPS; k++)
      printf("%s\"%s\": %.3f", k ? ", " : "", EOPS[k], ok ? 1e3 * (eops1[k] - eops0[k]) / (double)ok : 0.0);
    printf("}");
    if (infer_ok)
      printf(", \"infer_images_per_s\": %.3f, \"infer_e2e_images_per_s\": %.3f, \"infer_enclave_share\": %.4f, "
             "\"ratio\": %.4f, \"ratio_e2e\": %.4f",
             infer_ips, infer_e2e, infer_share, ips / infer_ips, ips / infer_e2e);
    printf("}\n");
  } else {
    printf("service: model %s, %ld clients, jobs of %ld images, %ld jobs (%.0f images done), server --workers %ld "
           "--threads %ld\n",
           model, clients, batch, S.njobs, done_imgs, workers, threads);
    printf("model upload (plan, encrypt, upload, policy) %.2f s\n", upload_s);
    if (prepared)
      printf("prepared: every job encrypted, witnessed and signed before the clock (slowest client %.2f s); "
             "timed: send, wait + fetch, open\n",
             S.prepare_s);
    printf("throughput %.1f images/s (%.2f s from the first %s to the last opened result)\n", ips, wall,
           prepared ? "send" : "submission (encryption included)");
    printf("job latency (%s + wait + fetch + open): p50 %.3f s, p95 %.3f s, p99 %.3f s\n",
           prepared ? "send" : "encrypt + submit", pct(l, ok, 0.50), pct(l, ok, 0.95), pct(l, ok, 0.99));
    printf("  medians of its phases: %s %.3f s, wait %.3f s, fetch + open "
           "%.3f s\n",
           prepared ? "send (upload)" : "submit (encrypt, sign, upload)", med[0], med[1], med[2]);
    printf("errors %ld%s%s\n", S.errors, S.errors ? ", first: " : "", S.errors ? S.first_error : "");
    printf("enclave share (server metrics: enclave CPU %.2f s / job run wall %.2f s) %.1f%%\n", enclave_cpu, job_wall,
           100 * share);
    printf("server engine runs of several jobs: %.0f, with %.0f of the %ld jobs\n", batches, batched, S.njobs);
    printf("peak RSS: server %.1f MiB, its enclave processes %.1f MiB (VmHWM)\n", hwm_srv / 1024.0, hwm_enc / 1024.0);
    if (infer_ok) {
      printf("hetee-bench infer, same model/batch/%ld images, --threads %ld: %.1f images/s (its total_s: host + "
             "enclave; enclave share %.1f%%), %.1f images/s with the data provider's encryption and opening\n",
             S.njobs * batch, threads, infer_ips, 100 * infer_share, infer_e2e);
      printf("service / infer = %.2f (against infer with encryption and opening: %.2f)\n", ips / infer_ips,
             ips / infer_e2e);
    }
  }
  free(l);
  code = S.errors ? 1 : 0;
out:
  if (srv > 0) {
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
  }
  hetee_client_disconnect(mpc);
  free(th);
  free(S.lat);
  free(S.phase);
  free(ca);
  free(dpk);
  free(x);
  hetee_nn_data_free(img);
  hetee_nn_model_free(m);
  pthread_mutex_destroy(&S.mu);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (getenv("HETEE_BENCH_KEEP")) /* the server's log and data stay for a look */
    fprintf(stderr, NAME ": kept %s (HETEE_BENCH_KEEP)\n", dir);
  else if (system(cmd)) fprintf(stderr, NAME ": could not remove %s\n", dir);
  return code;
}
