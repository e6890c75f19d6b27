/*
 * libfuzzer_main.c — libFuzzer driver for one fuzz target (fuzz.h); built
 * only with clang and -DHETEE_FUZZ=ON. Seeds: `test_fuzz_<name> --seeds DIR`
 * writes the valid inputs the mutation test starts from (docs/security.md).
 */
#include <stdlib.h>

#include "fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (fuzz_setup() != 0) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  (void)fuzz_one(data, size);
  return 0;
}
