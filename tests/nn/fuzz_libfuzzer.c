/*
 * fuzz_libfuzzer.c — optional coverage-guided fuzz targets (libFuzzer) for
 * the loaders and the ONNX importer, built only with clang (see
 * tests/nn/CMakeLists.txt); the deterministic test nn/fuzz runs everywhere.
 * FUZZ_ONNX selects the importer, otherwise the IDX/.npy/gzip loader.
 * For coverage of the library itself configure with
 *   CC=clang cmake -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link,address ...
 * and run e.g. `build/tests/fuzz_nn_onnx tests/nn/data/`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "hetee/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
#ifdef FUZZ_ONNX
  hetee_nn_model *m = NULL;
  if (hetee_nn_model_from_memory(data, size, &m) == 0) {
    size_t in = hetee_nn_model_input_size(m), out = hetee_nn_model_output_size(m);
    if (in <= 4096 && out <= 4096) {
      float *x = calloc(in, sizeof *x), *y = calloc(out, sizeof *y);
      if (x && y) (void)hetee_nn_forward(m, x, 1, y);
      free(x);
      free(y);
    }
  }
  hetee_nn_model_free(m);
#else
  hetee_nn_data *d = NULL;
  if (hetee_nn_data_from_memory(data, size, &d) == 0) {
    volatile float s = 0;
    for (size_t i = 0; i < hetee_nn_data_count(d); i++) s += hetee_nn_data_values(d)[i];
    (void)s;
  }
  hetee_nn_data_free(d);
#endif
  return 0;
}
