/*
 * test_secret_memory.c — the CKKS secret key lives in locked memory
 * (ckks/keys.c: sodium_malloc, i.e. mlock + guard pages, wiped by
 * sodium_free): the process's locked memory (VmLck in /proc/self/status)
 * grows by at least the key's size when a key is generated or loaded, the
 * temporary secret-derived buffers of public/relinearization/Galois key
 * generation are released again, and freeing the key gives every locked
 * page back (sodium_free wipes before unlocking; after that the pages are
 * unmapped, so the wipe itself is libsodium's documented behaviour, not
 * re-observed here). Skipped, with a message, where the process may not
 * lock that much memory (RLIMIT_MEMLOCK without CAP_IPC_LOCK) and in the
 * sanitizer build (ASan turns mlock into a no-op).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "hetee/ckks.h"

static long vm_locked_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  assert_non_null(f);
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmLck:", 6)) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  assert_true(kb >= 0);
  return kb;
}

/* Whether this process may lock `bytes` more: probe with mlock itself. */
static int can_lock(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  int ok = mlock(p, bytes) == 0;
  if (ok) munlock(p, bytes);
  munmap(p, bytes);
  return ok;
}

static hetee_ckks_context *ctx13(void) {
  hetee_ckks_literal lit;
  memset(&lit, 0, sizeof lit);
  lit.log_n = 13;
  lit.nq = 2;
  lit.q_bits[0] = 50;
  lit.q_bits[1] = 40;
  lit.np = 1;
  lit.p_bits[0] = 50;
  lit.default_scale = 1099511627776.0;
  hetee_ckks_context *ctx = NULL;
  assert_int_equal(hetee_ckks_context_new(&lit, &ctx), 0);
  return ctx;
}

static void test_secret_key_locked(void **state) {
  (void)state;
#ifdef HETEE_SANITIZE
  /* AddressSanitizer intercepts mlock/munlock as no-ops, so VmLck cannot be
   * observed in the sanitizer build; the normal build runs this test. */
  fprintf(stderr, "secret_key_memory: mlock is a no-op under AddressSanitizer, skipped\n");
  skip();
#endif
  hetee_ckks_context *ctx = ctx13();
  size_t n = hetee_ckks_context_n(ctx), key_bytes = n + 3 * n * 8; /* ternary bytes + 3 NTT rows */
  if (!can_lock(4 * key_bytes)) {
    fprintf(stderr, "secret_key_memory: mlock of %zu bytes refused here (RLIMIT_MEMLOCK), skipped\n", 4 * key_bytes);
    hetee_ckks_context_free(ctx);
    skip();
  }
  long before = vm_locked_kb();
  hetee_ckks_secret_key *sk = NULL;
  assert_int_equal(hetee_ckks_keygen_secret(ctx, &sk), 0);
  long with_key = vm_locked_kb();
  assert_true((with_key - before) * 1024 >= (long)key_bytes);

  /* a loaded key is locked as well */
  uint8_t *b = NULL;
  size_t len = 0;
  assert_int_equal(hetee_ckks_secret_key_save(ctx, sk, &b, &len), 0);
  hetee_ckks_secret_key *sk2 = NULL;
  assert_int_equal(hetee_ckks_secret_key_load(ctx, b, len, &sk2), 0);
  free(b);
  assert_true((vm_locked_kb() - with_key) * 1024 >= (long)key_bytes);
  hetee_ckks_secret_key_free(sk2);
  assert_int_equal(vm_locked_kb(), with_key);

  /* key generation's secret temporaries (error, s^2, s(X^g)) are released */
  hetee_ckks_public_key *pk = NULL;
  hetee_ckks_relin_key *rk = NULL;
  hetee_ckks_galois_keys *gk = NULL;
  const int steps[1] = {1};
  assert_int_equal(hetee_ckks_keygen_public(ctx, sk, &pk), 0);
  assert_int_equal(hetee_ckks_keygen_relin(ctx, sk, &rk), 0);
  assert_int_equal(hetee_ckks_keygen_galois(ctx, sk, steps, 1, 0, &gk), 0);
  assert_int_equal(vm_locked_kb(), with_key);

  /* the keys still work: a decryption of an encryption under pk */
  double v[4] = {1.5, -2.25, 0.125, 3.0}, out[4];
  hetee_ckks_plaintext *pt = NULL;
  hetee_ckks_ciphertext *ct = NULL;
  assert_int_equal(hetee_ckks_plaintext_new(ctx, &pt), 0);
  assert_int_equal(hetee_ckks_ciphertext_new(ctx, &ct), 0);
  assert_int_equal(hetee_ckks_encode_real(ctx, v, 4, hetee_ckks_context_default_scale(ctx), 1, pt), 0);
  assert_int_equal(hetee_ckks_encrypt_pk(ctx, pk, pt, ct), 0);
  assert_int_equal(hetee_ckks_decrypt(ctx, sk, ct, pt), 0);
  assert_int_equal(hetee_ckks_decode_real(ctx, pt, out, 4), 0);
  for (int i = 0; i < 4; i++) assert_true(out[i] - v[i] < 1e-6 && v[i] - out[i] < 1e-6);
  hetee_ckks_plaintext_free(pt);
  hetee_ckks_ciphertext_free(ct);
  hetee_ckks_public_key_free(pk);
  hetee_ckks_relin_key_free(rk);
  hetee_ckks_galois_keys_free(gk);

  hetee_ckks_secret_key_free(sk);
  assert_int_equal(vm_locked_kb(), before);
  hetee_ckks_secret_key_free(NULL);
  hetee_ckks_context_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_secret_key_locked)};
  return cmocka_run_group_tests_name("ckks/secret_key_memory", tests, NULL, NULL);
}
