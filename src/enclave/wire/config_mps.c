/*
 * config_mps.c — builds the enclave configuration string that names the
 * model providers allowed to set release policies (`;mp=<hex>,<hex>...`
 * appended to a base configuration). Parties compute the expected
 * measurement from this exact string (measure.c), so the construction is
 * fixed: keys in the given order, 64 lowercase hex digits each, one comma
 * between them. The enclave's parser (config.c) accepts exactly this form.
 */
#include <sodium.h>
#include <string.h>

#include "enclave/wire/proto.h"

static int has_mp_key(const char *s) {
  for (const char *p = s; *p; p++)
    if ((p == s || p[-1] == ';') && !strncmp(p, "mp=", 3)) return 1;
  return 0;
}

int hetee_enclave_config_with_mps(const char *base, const uint8_t (*pks)[32], size_t n, char *out, size_t cap) {
  if (!out || !cap || (!pks && n)) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  out[0] = 0;
  if (!base) base = HETEE_ENCLAVE_DEFAULT_CONFIG;
  if (n > HETEE_ENCLAVE_MAX_MPS)
    return hetee_error(HETEE_ERR_LIMIT, "%zu model providers, at most %d", n, HETEE_ENCLAVE_MAX_MPS);
  if (n && has_mp_key(base)) return hetee_error(HETEE_ERR_INVALID_ARG, "base configuration already has an mp= key");
  size_t blen = strlen(base), need = blen + (n ? 4 + n * 65 - 1 : 0);
  if (need > HETEE_ENCLAVE_CONFIG_MAX || need >= cap)
    return hetee_error(HETEE_ERR_LIMIT, "configuration of %zu bytes does not fit", need);
  memcpy(out, base, blen);
  char *p = out + blen;
  for (size_t i = 0; i < n; i++) {
    memcpy(p, i ? "," : ";mp=", i ? 1 : 4);
    p += i ? 1 : 4;
    sodium_bin2hex(p, 65, pks[i], 32);
    p += 64;
  }
  *p = 0;
  return 0;
}
