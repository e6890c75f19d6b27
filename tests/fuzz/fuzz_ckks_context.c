/*
 * fuzz_ckks_context.c — fuzz target of hetee_ckks_context_load (the
 * parameter object, serialize.c). An accepted object must save back to the
 * same bytes, except the allow_insecure field, which the loader ignores on
 * purpose (loaded parameters always pass the 128-bit check).
 */
#include "fuzz/fuzz.h"
#include "fuzz/fuzz_ckks.h"

const char fuzz_target_name[] = "ckks_context";
const int fuzz_prefixes_valid = 0;

#define INSECURE_FIELD_OFFSET (52 + 12) /* header, then u32 logn, nq, np, insecure */

int fuzz_setup(void) { return 0; }
void fuzz_teardown(void) {}

int fuzz_one(const uint8_t *data, size_t len) {
  hetee_ckks_context *ctx = NULL;
  int rc = hetee_ckks_context_load(data, len, &ctx);
  if (rc) {
    FUZZ_CHECK(ctx == NULL);
    return rc;
  }
  FUZZ_CHECK(ctx != NULL && hetee_ckks_context_log_n(ctx) >= 12);
  uint8_t *b = NULL;
  size_t n = 0;
  FUZZ_CHECK(hetee_ckks_literal_save(ctx, &b, &n) == 0);
  FUZZ_CHECK(n == len && len > INSECURE_FIELD_OFFSET + 4);
  FUZZ_CHECK(memcmp(b, data, INSECURE_FIELD_OFFSET) == 0);
  FUZZ_CHECK(memcmp(b + INSECURE_FIELD_OFFSET + 4, data + INSECURE_FIELD_OFFSET + 4, len - INSECURE_FIELD_OFFSET - 4) == 0);
  free(b);
  hetee_ckks_context_free(ctx);
  return 0;
}

size_t fuzz_seeds(fuzz_buf **out) {
  fuzz_buf *s = NULL;
  size_t n = 0;
  hetee_ckks_context *ctx = fuzz_ckks_ctx();
  FUZZ_CHECK(ctx != NULL);
  uint8_t *b = NULL;
  size_t len = 0;
  FUZZ_CHECK(hetee_ckks_literal_save(ctx, &b, &len) == 0);
  fuzz_seed_add(&s, &n, b, len);
  free(b);
  hetee_ckks_context_free(ctx);
  *out = s;
  return n;
}

FUZZ_NO_KNOWN_BAD
