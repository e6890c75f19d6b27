/*
 * config.c — parser of the enclave configuration string (measured by the
 * launcher together with the binary), e.g.
 *   logn=13;q=60,40,40;p=60;scale=40;budget=268435456;max_galois=64
 * Strict: unknown keys, missing keys, out-of-range numbers are errors.
 */
#include <stdlib.h>
#include <string.h>

#include "enclave/enclave_internal.h"

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
      long x = strtol(v, &end, 10);
      if (*end || x < 12 || x > 16) return hetee_error(HETEE_ERR_PARAMS, "config logn '%s'", v);
      c->log_n = (int)x, seen |= 1;
    } else if (!strcmp(k, "q")) {
      c->nq = parse_list(v, c->q_bits, 8, 20, 61);
      if (c->nq < 1) return hetee_error(HETEE_ERR_PARAMS, "config q '%s'", v);
      seen |= 2;
    } else if (!strcmp(k, "p")) {
      c->np = parse_list(v, c->p_bits, 4, 20, 61);
      if (c->np < 1) return hetee_error(HETEE_ERR_PARAMS, "config p '%s'", v);
      seen |= 4;
    } else if (!strcmp(k, "scale")) {
      long x = strtol(v, &end, 10);
      if (*end || x < 10 || x > 60) return hetee_error(HETEE_ERR_PARAMS, "config scale '%s'", v);
      c->scale_bits = (int)x, seen |= 8;
    } else if (!strcmp(k, "budget")) {
      unsigned long long x = strtoull(v, &end, 10);
      if (*end || x < (1u << 20) || x > (1ull << 40)) return hetee_error(HETEE_ERR_PARAMS, "config budget '%s'", v);
      c->budget = (size_t)x, seen |= 16;
    } else if (!strcmp(k, "max_galois")) {
      long x = strtol(v, &end, 10);
      if (*end || x < 0 || x > 1024) return hetee_error(HETEE_ERR_PARAMS, "config max_galois '%s'", v);
      c->max_galois = (int)x, seen |= 32;
    } else {
      return hetee_error(HETEE_ERR_PARAMS, "unknown configuration key '%s'", k);
    }
  }
  if (seen != 63) return hetee_error(HETEE_ERR_PARAMS, "configuration lacks a key (need logn, q, p, scale, budget, max_galois)");
  return 0;
}
