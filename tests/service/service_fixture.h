/*
 * service_fixture.h — integration tests of `hetee server`: a temporary
 * directory with a sim platform, MP and DP identities (home directories
 * with their trust), the real `hetee server` binary started on a free
 * loopback port (port 0, read back from --port-file), kill -9 and restart,
 * and a raw HTTP sender for requests the client library would never send.
 */
#ifndef HETEE_TEST_SERVICE_FIXTURE_H
#define HETEE_TEST_SERVICE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hetee/api_client.h"
#include "hetee/client.h"
#include "hetee/enclave.h"
#include "hetee/nn.h"

typedef struct sfx {
  char dir[256], plat[300], data[300], url[64];
  char mp[300], dp1[300], dp2[300];
  uint8_t mp_pk[32], dp1_pk[32], dp2_pk[32];
  char config[HETEE_ENCLAVE_CONFIG_MAX + 1];
  pid_t pid;
  unsigned port;
  char job_ttl[16]; /* non-empty: the server gets --job-ttl job_ttl */
} sfx;

static inline const char *sfx_bin(void) {
  const char *d = getenv("HETEE_BIN_DIR");
  return d ? d : "./bin";
}

static inline void sfx_identity(sfx *f, const char *name, int role, char *home, uint8_t pk[32], const char *mhex) {
  snprintf(home, 300, "%s/%s", f->dir, name);
  assert_int_equal(mkdir(home, 0700), 0);
  hetee_party_key *k;
  char p[400];
  snprintf(p, sizeof p, "%s/id", home);
  assert_int_equal(hetee_party_key_generate(role, &k), 0);
  assert_int_equal(hetee_party_key_save(k, p), 0);
  hetee_party_key_public(k, pk);
  hetee_party_key_free(k);
  if (mhex) assert_int_equal(hetee_client_home_trust(home, f->plat, mhex), 0);
}

static inline void sfx_start(sfx *f) {
  char pf[400], mpp[400], bin[512];
  snprintf(pf, sizeof pf, "%s/port", f->dir);
  unlink(pf);
  snprintf(mpp, sizeof mpp, "%s/id.pub", f->mp);
  snprintf(bin, sizeof bin, "%s/hetee", sfx_bin());
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char log[400];
    snprintf(log, sizeof log, "%s/server.log", f->dir);
    if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr)) _exit(126);
    char *av[] = {"hetee", "server", "--listen", "127.0.0.1:0", "--data-dir", f->data, "--platform", f->plat, "--mp",
                  mpp, "--port-file", pf, "--workers", "2", NULL, NULL, NULL};
    if (f->job_ttl[0]) {
      av[14] = "--job-ttl";
      av[15] = f->job_ttl;
    }
    execv(bin, av);
    _exit(127);
  }
  f->pid = pid;
  /* the port file appears once the enclave runs and the socket listens */
  for (int i = 0; i < 6000; i++) {
    FILE *p = fopen(pf, "r");
    if (p) {
      int ok = fscanf(p, "%u", &f->port) == 1;
      fclose(p);
      if (ok) break;
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) fail_msg("hetee server exited at start (see %s/server.log)", f->dir);
    usleep(10 * 1000);
  }
  assert_true(f->port > 0);
  snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u", f->port);
}

static inline void sfx_stop(sfx *f, int sig) {
  if (f->pid <= 0) return;
  kill(f->pid, sig);
  int st;
  assert_int_equal(waitpid(f->pid, &st, 0), f->pid);
  if (sig == SIGTERM) assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  f->pid = 0;
}

/* Platform, MP + two DP identities trusting the enclave measured with the
 * MP in mp= (its hex measurement in mhex, for more identities), no server. */
static inline sfx *sfx_parties(char mhex[65]) {
  sfx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/hetee-svc-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->plat, sizeof f->plat, "%s/plat", f->dir);
  snprintf(f->data, sizeof f->data, "%s/data", f->dir);
  assert_int_equal(hetee_platform_init(f->plat), 0);
  sfx_identity(f, "mp", HETEE_PARTY_MP, f->mp, f->mp_pk, NULL);
  assert_int_equal(hetee_enclave_config_with_mps(NULL, (const uint8_t(*)[32])f->mp_pk, 1, f->config, sizeof f->config), 0);
  char enc[512];
  uint8_t m[32];
  snprintf(enc, sizeof enc, "%s/hetee-enclave", sfx_bin());
  assert_int_equal(hetee_measure_file(enc, f->config, m), 0);
  hetee_hex_encode32(m, mhex);
  assert_int_equal(hetee_client_home_trust(f->mp, f->plat, mhex), 0);
  sfx_identity(f, "dp1", HETEE_PARTY_DP, f->dp1, f->dp1_pk, mhex);
  sfx_identity(f, "dp2", HETEE_PARTY_DP, f->dp2, f->dp2_pk, mhex);
  return f;
}

/* sfx_parties and a running server. */
static inline sfx *sfx_new(void) {
  char mhex[65];
  sfx *f = sfx_parties(mhex);
  sfx_start(f);
  return f;
}

static inline void sfx_free(sfx *f) {
  sfx_stop(f, SIGTERM);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
}

/* First n Fashion-MNIST test images scaled to [0, 1], and their labels. */
static inline float *sfx_images(size_t n, int *labels) {
  hetee_nn_data *im, *lb;
  assert_int_equal(hetee_nn_images_load("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", &im), 0);
  assert_int_equal(hetee_nn_labels_load("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", &lb), 0);
  float *x = malloc(n * 784 * sizeof *x);
  for (size_t i = 0; i < n * 784; i++) x[i] = hetee_nn_data_values(im)[i] / 255.0f;
  for (size_t i = 0; labels && i < n; i++) labels[i] = (int)hetee_nn_data_values(lb)[i];
  hetee_nn_data_free(im);
  hetee_nn_data_free(lb);
  return x;
}

/* Plaintext reference labels of model path on x. */
static inline void sfx_plain_labels(const char *model, const float *x, size_t n, int *out) {
  hetee_nn_model *m;
  assert_int_equal(hetee_nn_model_load(model, &m), 0);
  size_t k = hetee_nn_model_output_size(m);
  float *y = malloc(n * k * sizeof *y);
  assert_int_equal(hetee_nn_forward(m, x, n, y), 0);
  for (size_t i = 0; i < n; i++) {
    int best = 0;
    for (size_t j = 1; j < k; j++)
      if (y[i * k + j] > y[i * k + (size_t)best]) best = (int)j;
    out[i] = best;
  }
  free(y);
  hetee_nn_model_free(m);
}

static inline void sfx_model_path(char *out, size_t n, const char *name) {
  const char *src = getenv("HETEE_SOURCE_DIR");
  snprintf(out, n, "%s/models/%s.onnx", src ? src : ".", name);
}

/* Sends raw bytes to the server and returns the HTTP status of the answer
 * (0: connection closed without one); *body (may be NULL) gets it. */
static inline int sfx_raw(sfx *f, const void *req, size_t len, char **body) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof a), 0);
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(s, (const char *)req + off, len - off, MSG_NOSIGNAL);
    if (w <= 0) break;
    off += (size_t)w;
  }
  shutdown(s, SHUT_WR);
  char *buf = malloc(1 << 16);
  size_t n = 0;
  for (;;) {
    ssize_t r = recv(s, buf + n, (1 << 16) - 1 - n, 0);
    if (r <= 0) break;
    n += (size_t)r;
    if (n >= (1 << 16) - 1) break;
  }
  buf[n] = 0;
  close(s);
  int st = 0;
  if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1) st = 0;
  if (body) *body = buf;
  else free(buf);
  return st;
}

#endif
