/*
 * config.c — parser of the enclave configuration string (measured by the
 * launcher together with the binary), e.g.
 *   logn=13;q=60,40,40;p=60;scale=40;budget=268435456;max_galois=64;mp=<hex>,<hex>
 * Strict: unknown keys, missing keys, keys given twice (parties read this
 * string to decide whom to trust: one string, one meaning, so no "last one
 * wins"), out-of-range numbers are errors. The
 * optional mp= key lists the model providers (Ed25519 public keys, 64
 * lowercase hex digits, the form config_mps.c writes) allowed to set release
 * policies; without it no policy can be set (sessions.c). The optional
 * threads= key (1..64, default 1) is the number of threads refresh and
 * release use (pool.c): it changes the speed, never a result.
 */
#include <stdlib.h>
#include <string.h>

#include "enclave/trusted/enclave_internal.h"

static int parse_list(const char *v, int *out, int max, int lo, int hi) {
  int n = 0;
  while (*v) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || x < lo || x > hi || n >= max) return -1;
    out[n++] = (int)x;
    v = end;
    if (*v == ',') v++;
    else if (*v) return -1;
  }
  return n;
}

static int hex_nibble(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1; /* upper case too: one spelling per key, so one measurement */
}

/* "hex,hex,...": 1..HETEE_ENCLAVE_MAX_MPS distinct keys. */
static int parse_mps(const char *v, enclave_config *c) {
  c->n_mp = 0;
  for (;;) {
    if (c->n_mp >= HETEE_ENCLAVE_MAX_MPS)
      return hetee_error(HETEE_ERR_PARAMS, "config mp: more than %d model providers", HETEE_ENCLAVE_MAX_MPS);
    uint8_t *k = c->mp[c->n_mp];
    for (int i = 0; i < 32; i++) {
      int hi = hex_nibble(v[2 * i]), lo = hi < 0 ? -1 : hex_nibble(v[2 * i + 1]);
      if (hi < 0 || lo < 0)
        return hetee_error(HETEE_ERR_PARAMS, "config mp: model provider %d is not 64 lowercase hex digits", c->n_mp + 1);
      k[i] = (uint8_t)(hi << 4 | lo);
    }
    v += 64;
    for (int j = 0; j < c->n_mp; j++)
      if (!memcmp(c->mp[j], k, 32)) return hetee_error(HETEE_ERR_PARAMS, "config mp: model provider listed twice");
    c->n_mp++;
    if (!*v) return 0;
    if (*v++ != ',') return hetee_error(HETEE_ERR_PARAMS, "config mp: keys must be separated by ','");
  }
}

int enclave_config_parse(const char *s, enclave_config *c) {
  memset(c, 0, sizeof *c);
  char buf[1100];
  if (strlen(s) >= sizeof buf) return hetee_error(HETEE_ERR_LIMIT, "configuration too long");
  strcpy(buf, s);
  int seen = 0;
  char *save = NULL;
  for (char *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) return hetee_error(HETEE_ERR_PARAMS, "configuration item '%s' has no '='", kv);
    *eq = 0;
    const char *k = kv, *v = eq + 1;
    char *end;
    if (!strcmp(k, "logn")) {
      if (seen & 1) return hetee_error(HETEE_ERR_PARAMS, "config key 'logn' given twice");
      long x = strtol(v, &end, 10);
      if (*end || x < 12 || x > 16) return hetee_error(HETEE_ERR_PARAMS, "config logn '%s'", v);
      c->log_n = (int)x, seen |= 1;
    } else if (!strcmp(k, "q")) {
      if (seen & 2) return hetee_error(HETEE_ERR_PARAMS, "config key 'q' given twice");
      c->nq = parse_list(v, c->q_bits, 8, 20, 61);
      if (c->nq < 1) return hetee_error(HETEE_ERR_PARAMS, "config q '%s'", v);
      seen |= 2;
    } else if (!strcmp(k, "p")) {
      if (seen & 4) return hetee_error(HETEE_ERR_PARAMS, "config key 'p' given twice");
      c->np = parse_list(v, c->p_bits, 4, 20, 61);
      if (c->np < 1) return hetee_error(HETEE_ERR_PARAMS, "config p '%s'", v);
      seen |= 4;
    } else if (!strcmp(k, "scale")) {
      if (seen & 8) return hetee_error(HETEE_ERR_PARAMS, "config key 'scale' given twice");
      long x = strtol(v, &end, 10);
      if (*end || x < 10 || x > 60) return hetee_error(HETEE_ERR_PARAMS, "config scale '%s'", v);
      c->scale_bits = (int)x, seen |= 8;
    } else if (!strcmp(k, "budget")) {
      if (seen & 16) return hetee_error(HETEE_ERR_PARAMS, "config key 'budget' given twice");
      unsigned long long x = strtoull(v, &end, 10);
      if (*end || x < (1u << 20) || x > (1ull << 40)) return hetee_error(HETEE_ERR_PARAMS, "config budget '%s'", v);
      c->budget = (size_t)x, seen |= 16;
    } else if (!strcmp(k, "max_galois")) {
      if (seen & 32) return hetee_error(HETEE_ERR_PARAMS, "config key 'max_galois' given twice");
      long x = strtol(v, &end, 10);
      if (*end || x < 0 || x > 1024) return hetee_error(HETEE_ERR_PARAMS, "config max_galois '%s'", v);
      c->max_galois = (int)x, seen |= 32;
    } else if (!strcmp(k, "threads")) {
      if (seen & 128) return hetee_error(HETEE_ERR_PARAMS, "config key 'threads' given twice");
      long x = strtol(v, &end, 10);
      if (*end || end == v || x < 1 || x > ENCLAVE_MAX_THREADS)
        return hetee_error(HETEE_ERR_PARAMS, "config threads '%s' (1..%d)", v, ENCLAVE_MAX_THREADS);
      c->threads = (int)x, seen |= 128;
    } else if (!strcmp(k, "mp")) {
      if (seen & 64) return hetee_error(HETEE_ERR_PARAMS, "config mp given twice");
      int rc = parse_mps(v, c);
      if (rc) return rc;
      seen |= 64;
    } else {
      return hetee_error(HETEE_ERR_PARAMS, "unknown configuration key '%s'", k);
    }
  }
  if ((seen & 63) != 63) return hetee_error(HETEE_ERR_PARAMS, "configuration lacks a key (need logn, q, p, scale, budget, max_galois)");
  if (!(seen & 128)) c->threads = 1;
  return 0;
}

size_t enclave_locked_need(const enclave_config *c) {
  size_t n = (size_t)1 << c->log_n, nt = (size_t)(c->nq + c->np);
  /* secret key (N ternary bytes + nt NTT rows) and three key-generation
   * temporaries of nt rows, the refresh/release workspace (the budget),
   * session keys and small buffers (1 MiB) */
  return n + 4 * nt * n * 8 + c->budget + ((size_t)1 << 20);
}
