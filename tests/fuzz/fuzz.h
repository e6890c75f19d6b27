/*
 * fuzz.h — the interface every hetee fuzz target implements, shared by the
 * two drivers of tests/fuzz/: the libFuzzer entry point (libfuzzer_main.c,
 * clang only) and the deterministic mutation test run by ctest
 * (test_mutate.c, any compiler, normal and ASan builds).
 *
 * A target parses untrusted bytes with one hetee loader. fuzz_one() returns
 * 0 when the bytes were accepted as a valid object (and then checks that the
 * object really is valid, e.g. re-serializes to the same bytes, aborting
 * otherwise) or the negative hetee_status the loader answered with. It must
 * free everything it allocated: leaks are findings too (LeakSanitizer).
 * fuzz_seeds() returns valid inputs built at run time from deterministic
 * keys; they must all be accepted (the mutation test checks it, so a loader
 * that refuses everything fails the test).
 */
#ifndef HETEE_TESTS_FUZZ_H
#define HETEE_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct fuzz_buf {
  uint8_t *p;
  size_t len;
} fuzz_buf;

/* Name of the target (fuzz/<name> in ctest, fuzz_<name> for libFuzzer). */
extern const char fuzz_target_name[];
/* 1 when a prefix of a valid input can itself be valid (a stream of
 * frames); otherwise the mutation test requires truncations to be refused. */
extern const int fuzz_prefixes_valid;
/* One-time set-up (contexts, keys, an in-process enclave); 0 on success. */
int fuzz_setup(void);
void fuzz_teardown(void);
/* 0: accepted and valid; < 0: the hetee_status of the refusal. */
int fuzz_one(const uint8_t *data, size_t len);
/* Valid inputs (malloc'd, free with fuzz_seeds_free); returns the count. */
size_t fuzz_seeds(fuzz_buf **out);
/* Regression inputs of fixed findings (each explained where it is built):
 * they must be refused. Returns the count (0: none). */
size_t fuzz_known_bad(fuzz_buf **out);

static inline void fuzz_seeds_free(fuzz_buf *s, size_t n) {
  for (size_t i = 0; i < n; i++) free(s[i].p);
  free(s);
}

/* Appends a copy of p[0..len) to the seed list (aborts on no memory). */
static inline void fuzz_seed_add(fuzz_buf **s, size_t *n, const void *p, size_t len) {
  fuzz_buf *t = realloc(*s, (*n + 1) * sizeof *t);
  uint8_t *c = malloc(len ? len : 1);
  if (!t || !c) abort();
  for (size_t i = 0; i < len; i++) c[i] = ((const uint8_t *)p)[i];
  t[*n].p = c;
  t[*n].len = len;
  *s = t;
  (*n)++;
}

/* Defines fuzz_known_bad() for a target without regression inputs. */
#define FUZZ_NO_KNOWN_BAD                                                                                \
  size_t fuzz_known_bad(fuzz_buf **out) {                                                                \
    *out = NULL;                                                                                         \
    return 0;                                                                                            \
  }

/* Invariant of an accepted object; a violation is a finding (abort). */
#define FUZZ_CHECK(cond)                                                                                 \
  do {                                                                                                   \
    if (!(cond)) {                                                                                       \
      fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);                 \
      abort();                                                                                           \
    }                                                                                                    \
  } while (0)

#endif
