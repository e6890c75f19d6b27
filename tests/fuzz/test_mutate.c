/*
 * test_mutate.c — deterministic mutation fuzzing of one target (fuzz.h), the
 * ctest twin of the libFuzzer runs: starting from the target's valid seeds it
 * feeds a few thousand mutants (bit flips, truncations, edits of the header
 * and length fields with boundary values, random byte runs, insertions and
 * deletions, whole random buffers) and asserts that every answer is either
 * "accepted" (the target itself checks the object: it re-serializes to the
 * same bytes) or a valid negative hetee_status — never a crash, abort or
 * leak (ASan/LSan in the sanitizer build). It also asserts that every seed is
 * accepted, so a loader that refuses everything fails, and that most mutants
 * are refused, so a loader that accepts everything fails too, and that the
 * regression inputs of past findings (fuzz_known_bad) are refused.
 * The PRNG is a fixed-seed xorshift64*: the same mutants on every run.
 * HETEE_FUZZ_ITERS overrides the mutant count; HETEE_TEST_QUICK=1 (the ASan
 * run of `make test`) uses a third of it.
 * `test_fuzz_<name> --seeds DIR` writes the seeds as files for libFuzzer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"
#include "hetee/common.h"

#ifndef FUZZ_ITERS
#define FUZZ_ITERS 3000
#endif

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545f4914f6cdd1dull;
}
static size_t rnd_below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

/* A position biased towards the start, where headers and counts live. */
static size_t rnd_pos(size_t len) {
  if (!len) return 0;
  if (rnd() & 1) return rnd_below(len < 96 ? len : 96);
  return rnd_below(len);
}

static const uint64_t interesting[] = {0,          1,          2,          3,          7,          8,
                                       0x7f,       0x80,       0xff,       0x100,      0x7fff,     0x8000,
                                       0xffff,     0x10000,    0x7fffffff, 0x80000000, 0xffffffff, 1ull << 32,
                                       1ull << 62, ~0ull,      4096,       8192,       65536,      1u << 24};

/* Returns a malloc'd mutant of s and its length; kind = mutation used. */
static uint8_t *mutate(const fuzz_buf *s, size_t *outlen, int *kind) {
  size_t len = s->len;
  uint8_t *m = malloc(len + 64);
  assert_non_null(m);
  memcpy(m, s->p, len);
  *kind = (int)rnd_below(8);
  switch (*kind) {
  case 0: /* 1..4 bit flips */
    for (size_t k = 1 + rnd_below(4); k > 0 && len; k--) {
      size_t p = rnd_pos(len);
      m[p] ^= (uint8_t)(1u << rnd_below(8));
    }
    break;
  case 1: /* truncation */
    len = rnd_below(len);
    break;
  case 2: { /* a 1/2/4/8-byte little-endian field set to a boundary value (+-1) */
    size_t w = (size_t)1 << rnd_below(4);
    if (len < w) break;
    size_t p = rnd_pos(len - w + 1);
    uint64_t v = interesting[rnd_below(sizeof interesting / sizeof *interesting)];
    if (rnd() % 3 == 0) v = (uint64_t)len; /* the buffer's own length */
    v += (uint64_t)(int64_t)((int)rnd_below(3) - 1);
    for (size_t b = 0; b < w; b++) m[p + b] = (uint8_t)(v >> (8 * b));
    break;
  }
  case 3: { /* a run of random bytes */
    if (!len) break;
    size_t p = rnd_pos(len), n = 1 + rnd_below(16);
    for (size_t b = 0; b < n && p + b < len; b++) m[p + b] = (uint8_t)rnd();
    break;
  }
  case 4: { /* insert random bytes */
    size_t p = rnd_pos(len + 1), n = 1 + rnd_below(64);
    memmove(m + p + n, m + p, len - p);
    for (size_t b = 0; b < n; b++) m[p + b] = (uint8_t)rnd();
    len += n;
    break;
  }
  case 5: { /* delete bytes */
    if (!len) break;
    size_t p = rnd_pos(len), n = 1 + rnd_below(64);
    if (n > len - p) n = len - p;
    memmove(m + p, m + p + n, len - p - n);
    len -= n;
    break;
  }
  case 6: { /* copy one byte range over another (moves fields around) */
    if (len < 2) break;
    size_t a = rnd_pos(len), b = rnd_pos(len), n = 1 + rnd_below(32);
    if (n > len - a) n = len - a;
    if (n > len - b) n = len - b;
    memmove(m + b, m + a, n);
    break;
  }
  default: { /* a whole random buffer (keeping the first 4 bytes: magic) */
    size_t n = rnd_below(len + 64);
    uint8_t *r = malloc(n ? n : 1);
    assert_non_null(r);
    for (size_t b = 0; b < n; b++) r[b] = b < 4 && b < len ? m[b] : (uint8_t)rnd();
    free(m);
    m = r;
    len = n;
    break;
  }
  }
  *outlen = len;
  return m;
}

static int iters(void) {
  const char *e = getenv("HETEE_FUZZ_ITERS");
  if (e && *e) return atoi(e);
  const char *q = getenv("HETEE_TEST_QUICK");
  return q && *q && strcmp(q, "0") ? FUZZ_ITERS / 3 : FUZZ_ITERS;
}

static void test_seeds_accepted(void **state) {
  (void)state;
  fuzz_buf *s = NULL;
  size_t n = fuzz_seeds(&s);
  assert_true(n > 0);
  for (size_t i = 0; i < n; i++) {
    int rc = fuzz_one(s[i].p, s[i].len);
    if (rc) fprintf(stderr, "seed %zu refused: %s (%s)\n", i, hetee_strerror(rc), hetee_last_error());
    assert_int_equal(rc, 0);
  }
  fuzz_seeds_free(s, n);
}

static void test_known_bad_refused(void **state) {
  (void)state;
  fuzz_buf *s = NULL;
  size_t n = fuzz_known_bad(&s);
  for (size_t i = 0; i < n; i++) assert_int_not_equal(fuzz_one(s[i].p, s[i].len), 0);
  fuzz_seeds_free(s, n);
}

static void test_mutants(void **state) {
  (void)state;
  fuzz_buf *s = NULL;
  size_t n = fuzz_seeds(&s);
  assert_true(n > 0);
  int total = iters(), accepted = 0, refused_by_kind[8] = {0}, tried_by_kind[8] = {0};
  for (int it = 0; it < total; it++) {
    const fuzz_buf *seed = &s[(size_t)it % n];
    size_t len;
    int kind;
    uint8_t *m = mutate(seed, &len, &kind);
    int rc = fuzz_one(m, len);
    free(m);
    /* the contract: accepted, or a documented negative status */
    /* (HETEE_ERR_INTERNAL would be an invariant violated: a bug) */
    assert_true(rc == 0 || (rc <= HETEE_ERR_INVALID_ARG && rc > HETEE_ERR_INTERNAL));
    tried_by_kind[kind]++;
    if (rc == 0) accepted++;
    else refused_by_kind[kind]++;
  }
  fprintf(stderr, "%s: %d mutants, %d accepted (flip/trunc/field/rand/ins/del/move/random refused:", fuzz_target_name,
          total, accepted);
  for (int k = 0; k < 8; k++) fprintf(stderr, " %d/%d", refused_by_kind[k], tried_by_kind[k]);
  fprintf(stderr, ")\n");
  /* truncations and random buffers must essentially all be refused */
  if (tried_by_kind[1] > 10 && !fuzz_prefixes_valid) assert_true(refused_by_kind[1] * 10 >= tried_by_kind[1] * 9);
  if (tried_by_kind[7] > 10) assert_true(refused_by_kind[7] * 10 >= tried_by_kind[7] * 9);
  fuzz_seeds_free(s, n);
}

static int write_seeds(const char *dir) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return 1;
  fuzz_buf *s = NULL;
  size_t n = fuzz_seeds(&s);
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%03zu", dir, i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s[i].p, 1, s[i].len, f) != s[i].len) return 1;
    fclose(f);
  }
  fprintf(stderr, "%zu seeds written to %s\n", n, dir);
  fuzz_seeds_free(s, n);
  return 0;
}

static int group_setup(void **state) {
  (void)state;
  return fuzz_setup();
}
static int group_teardown(void **state) {
  (void)state;
  fuzz_teardown();
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--seeds")) {
    if (fuzz_setup()) return 1;
    int rc = write_seeds(argv[2]);
    fuzz_teardown();
    return rc;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seeds_accepted),
      cmocka_unit_test(test_known_bad_refused),
      cmocka_unit_test(test_mutants),
  };
  return cmocka_run_group_tests_name(fuzz_target_name, tests, group_setup, group_teardown);
}
