/*
 * test_data.c — the IDX and .npy loaders on good and bad files: Debian's
 * Fashion-MNIST test set (known facts: 10000 images of 28x28, labels 0..9,
 * 1000 of each class), files written here byte by byte following the IDX
 * and NPY format descriptions (raw and gzip'd), and bad files (wrong magic,
 * dtype, order, truncated, trailing bytes, absurd sizes, corrupt gzip) that
 * must be refused with the given status and detail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "nn_test_util.h"

typedef struct {
  uint8_t *p;
  size_t n;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
  b->p = realloc(b->p, b->n + n + 1);
  assert_non_null(b->p);
  memcpy(b->p + b->n, src, n);
  b->n += n;
}

static bytes idx_file(uint8_t type, uint8_t rank, const uint32_t *dims, size_t values) {
  bytes b = {0};
  uint8_t head[4] = {0, 0, type, rank};
  put(&b, head, 4);
  for (size_t i = 0; i < rank; i++) {
    uint8_t be[4] = {(uint8_t)(dims[i] >> 24), (uint8_t)(dims[i] >> 16), (uint8_t)(dims[i] >> 8), (uint8_t)dims[i]};
    put(&b, be, 4);
  }
  for (size_t i = 0; i < values; i++) {
    uint8_t v = (uint8_t)(i % 251);
    put(&b, &v, 1);
  }
  return b;
}

/* .npy 1.0 with the given header dict (padded to 64 bytes) and data. */
static bytes npy_file(const char *dict, const void *data, size_t len) {
  bytes b = {0};
  size_t hl = strlen(dict) + 1;
  size_t pad = (64 - (10 + hl) % 64) % 64;
  uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)((hl + pad) & 0xff), (uint8_t)((hl + pad) >> 8)};
  put(&b, pre, 10);
  put(&b, dict, strlen(dict));
  for (size_t i = 0; i < pad; i++) put(&b, " ", 1);
  put(&b, "\n", 1);
  if (len) put(&b, data, len);
  return b;
}

static bytes gzip_bytes(const bytes *in) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  bytes out = {0};
  out.p = malloc(deflateBound(&zs, in->n) + 64);
  assert_non_null(out.p);
  zs.next_in = in->p;
  zs.avail_in = (uInt)in->n;
  zs.next_out = out.p;
  zs.avail_out = (uInt)(deflateBound(&zs, in->n) + 64);
  assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.n = zs.total_out;
  deflateEnd(&zs);
  return out;
}

static char tmp_paths[64][64];
static int n_tmp;

static const char *write_tmp(const bytes *b) {
  assert_true(n_tmp < 64);
  char *p = tmp_paths[n_tmp++];
  snprintf(p, sizeof tmp_paths[0], "/tmp/hetee_nn_data_XXXXXX");
  int fd = mkstemp(p);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, b->p, b->n), (ssize_t)b->n);
  close(fd);
  return p;
}

static void expect_bad(const bytes *b, int status, const char *detail) {
  hetee_nn_data *d = (hetee_nn_data *)1;
  int rc = hetee_nn_data_from_memory(b->p, b->n, &d);
  if (rc != status) fprintf(stderr, "status %d: %s\n", rc, hetee_last_error());
  assert_int_equal(rc, status);
  assert_null(d);
  if (detail) assert_string_equal(hetee_last_error(), detail);
}

static void test_fashion_mnist(void **state) {
  (void)state;
  hetee_nn_data *img = NULL, *lab = NULL;
  assert_int_equal(hetee_nn_images_load(FMNIST_DIR "/t10k-images-idx3-ubyte.gz", &img), 0);
  assert_int_equal(hetee_nn_labels_load(FMNIST_DIR "/t10k-labels-idx1-ubyte.gz", &lab), 0);
  assert_int_equal(hetee_nn_data_rank(img), 4);
  const size_t *d = hetee_nn_data_dims(img);
  assert_true(d[0] == 10000 && d[1] == 1 && d[2] == 28 && d[3] == 28);
  assert_int_equal(hetee_nn_data_dtype(img), HETEE_NN_U8);
  assert_int_equal(hetee_nn_data_count(lab), 10000);
  size_t per_class[10] = {0};
  for (size_t i = 0; i < 10000; i++) {
    float v = hetee_nn_data_values(lab)[i];
    assert_true(v >= 0 && v <= 9 && v == (float)(int)v);
    per_class[(int)v]++;
  }
  for (int c = 0; c < 10; c++) assert_int_equal(per_class[c], 1000);
  float mx = 0;
  for (size_t i = 0; i < hetee_nn_data_count(img); i++) mx = hetee_nn_data_values(img)[i] > mx ? hetee_nn_data_values(img)[i] : mx;
  assert_true(mx == 255.0f);
  hetee_nn_data_free(img);
  hetee_nn_data_free(lab);
}

static void test_idx_raw_and_gzip(void **state) {
  (void)state;
  uint32_t dims[3] = {3, 28, 28};
  bytes raw = idx_file(0x08, 3, dims, 3 * 784), gz = gzip_bytes(&raw);
  for (int pass = 0; pass < 2; pass++) {
    hetee_nn_data *d = NULL;
    assert_int_equal(hetee_nn_images_load(write_tmp(pass ? &gz : &raw), &d), 0);
    assert_int_equal(hetee_nn_data_dims(d)[0], 3);
    for (size_t i = 0; i < 3 * 784; i++) assert_true(hetee_nn_data_values(d)[i] == (float)(i % 251));
    hetee_nn_data_free(d);
  }
  /* Two concatenated gzip members inflate to their concatenation. */
  uint32_t one = 6;
  bytes lab = idx_file(0x08, 1, &one, 6), lgz = gzip_bytes(&lab), tail = {0};
  uint8_t extra[3] = {1, 2, 3};
  put(&tail, extra, 3);
  bytes tgz = gzip_bytes(&tail);
  lab.p[7] = 9; /* dims[0] = 9 */
  free(lgz.p);
  bytes head6 = {0};
  put(&head6, lab.p, lab.n);
  lgz = gzip_bytes(&head6);
  put(&lgz, tgz.p, tgz.n);
  hetee_nn_data *d = NULL;
  assert_int_equal(hetee_nn_labels_load(write_tmp(&lgz), &d), 0);
  assert_int_equal(hetee_nn_data_count(d), 9);
  assert_true(hetee_nn_data_values(d)[6] == 1 && hetee_nn_data_values(d)[8] == 3);
  hetee_nn_data_free(d);
  free(raw.p);
  free(gz.p);
  free(lab.p);
  free(lgz.p);
  free(tail.p);
  free(tgz.p);
  free(head6.p);
}

static void test_npy_types_and_shapes(void **state) {
  (void)state;
  float f[2 * 784];
  double g[784];
  uint8_t u[784];
  for (size_t i = 0; i < 2 * 784; i++) f[i] = (float)i * 0.25f;
  for (size_t i = 0; i < 784; i++) g[i] = -(double)i / 8.0, u[i] = (uint8_t)(255 - i % 256);
  bytes a = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 784), }", f, sizeof f);
  bytes b = npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 28, 28), }", g, sizeof g);
  bytes c = npy_file("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 28, 28), }", u, sizeof u);
  hetee_nn_data *d = NULL;
  assert_int_equal(hetee_nn_images_load(write_tmp(&a), &d), 0);
  assert_int_equal(hetee_nn_data_dtype(d), HETEE_NN_F32);
  assert_int_equal(hetee_nn_data_rank(d), 4);
  assert_memory_equal(hetee_nn_data_values(d), f, sizeof f);
  hetee_nn_data_free(d);
  assert_int_equal(hetee_nn_images_load(write_tmp(&b), &d), 0);
  assert_int_equal(hetee_nn_data_dtype(d), HETEE_NN_F64);
  for (size_t i = 0; i < 784; i++) assert_true(hetee_nn_data_values(d)[i] == (float)g[i]);
  hetee_nn_data_free(d);
  assert_int_equal(hetee_nn_images_load(write_tmp(&c), &d), 0);
  assert_int_equal(hetee_nn_data_dtype(d), HETEE_NN_U8);
  for (size_t i = 0; i < 784; i++) assert_true(hetee_nn_data_values(d)[i] == (float)u[i]);
  hetee_nn_data_free(d);
  /* Labels: int64 and uint8 vectors. */
  int64_t l64[4] = {0, 9, 3, 255};
  bytes l = npy_file("{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", l64, sizeof l64);
  assert_int_equal(hetee_nn_labels_load(write_tmp(&l), &d), 0);
  assert_true(hetee_nn_data_values(d)[1] == 9 && hetee_nn_data_values(d)[3] == 255);
  hetee_nn_data_free(d);
  free(a.p);
  free(b.p);
  free(c.p);
  free(l.p);
}

static void test_shape_and_type_checks(void **state) {
  (void)state;
  float f[20] = {0};
  hetee_nn_data *d = (hetee_nn_data *)1;
  bytes a = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 10), }", f, sizeof f);
  const char *p = write_tmp(&a);
  char want[256];
  assert_int_equal(hetee_nn_images_load(p, &d), HETEE_ERR_SHAPE);
  snprintf(want, sizeof want, "%s: images of shape [2,10] (supported: [N,784], [N,28,28], [N,1,28,28])", p);
  assert_string_equal(hetee_last_error(), want);
  assert_int_equal(hetee_nn_labels_load(p, &d), HETEE_ERR_FORMAT); /* float labels */
  int64_t big[2] = {1, 300};
  bytes b = npy_file("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", big, sizeof big);
  p = write_tmp(&b);
  assert_int_equal(hetee_nn_labels_load(p, &d), HETEE_ERR_RANGE);
  snprintf(want, sizeof want, "%s: label 1 is 300 (must be 0..255)", p);
  assert_string_equal(hetee_last_error(), want);
  int64_t two[4] = {0};
  bytes c = npy_file("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", two, sizeof two);
  assert_int_equal(hetee_nn_labels_load(write_tmp(&c), &d), HETEE_ERR_SHAPE);
  assert_int_equal(hetee_nn_data_load("/nonexistent/file.npy", &d), HETEE_ERR_IO);
  free(a.p);
  free(b.p);
  free(c.p);
}

static void test_bad_files(void **state) {
  (void)state;
  uint32_t dims[3] = {2, 28, 28};
  float f4[4] = {1, 2, 3, 4};
  bytes b;

  b = (bytes){0};
  put(&b, "GIF89a..", 8);
  expect_bad(&b, HETEE_ERR_FORMAT, "neither an IDX nor a .npy file (bad magic)");
  free(b.p);
  expect_bad(&(bytes){(uint8_t *)"", 0}, HETEE_ERR_FORMAT, "neither an IDX nor a .npy file (bad magic)");

  b = idx_file(0x0D, 3, dims, 2 * 784);
  expect_bad(&b, HETEE_ERR_FORMAT, "IDX: data type float32 not supported (only unsigned byte)");
  free(b.p);
  b = idx_file(0x42, 3, dims, 2 * 784);
  expect_bad(&b, HETEE_ERR_FORMAT, "IDX: bad magic (unknown data type 0x42)");
  free(b.p);
  b = idx_file(0x08, 3, dims, 2 * 784 - 5);
  expect_bad(&b, HETEE_ERR_TRUNCATED, "IDX: truncated: header announces 1568 values, file holds 1563");
  free(b.p);
  b = idx_file(0x08, 3, dims, 2 * 784 + 2);
  expect_bad(&b, HETEE_ERR_TRUNCATED, "IDX: 2 bytes after the 1568 announced values");
  free(b.p);
  uint32_t huge[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
  b = idx_file(0x08, 3, huge, 16);
  expect_bad(&b, HETEE_ERR_LIMIT, "IDX: more than 268435456 elements");
  free(b.p);
  b = idx_file(0x08, 3, dims, 0);
  b.n = 9; /* header cut */
  expect_bad(&b, HETEE_ERR_TRUNCATED, "IDX: header truncated");
  free(b.p);
  uint32_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  b = idx_file(0x08, 9, nine, 1);
  expect_bad(&b, HETEE_ERR_FORMAT, "IDX: rank 9 not supported (1..4)");
  free(b.p);

  /* headers the .npy reader refuses, each over the same 16 data bytes */
  static const struct {
    const char *header;
    int status;
    const char *detail; /* NULL: not checked */
  } bad_npy[] = {
      {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", HETEE_ERR_UNSUPPORTED,
       "npy: Fortran-order arrays not supported (save in C order)"},
      {"{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", HETEE_ERR_FORMAT,
       "npy: dtype '>f4' not supported (float32 '<f4', float64 '<f8', uint8 '|u1', int32 '<i4', int64 '<i8'; "
       "little-endian)"},
      {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", HETEE_ERR_FORMAT, NULL},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", HETEE_ERR_TRUNCATED,
       "npy: truncated: shape needs 24 data bytes, file holds 16"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000, 100000000), }", HETEE_ERR_LIMIT,
       "npy: more than 268435456 elements"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", HETEE_ERR_LIMIT,
       "npy: dimension too large"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", HETEE_ERR_FORMAT, "npy: malformed 'shape'"},
  };
  for (size_t i = 0; i < sizeof bad_npy / sizeof bad_npy[0]; i++) {
    b = npy_file(bad_npy[i].header, f4, sizeof f4);
    expect_bad(&b, bad_npy[i].status, bad_npy[i].detail);
    free(b.p);
  }
  float nan4[4] = {1, NAN, 3, 4};
  b = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", nan4, sizeof nan4);
  expect_bad(&b, HETEE_ERR_RANGE, "npy: element 1 is not a finite number");
  free(b.p);
  b = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", f4, sizeof f4);
  b.p[6] = 4;
  expect_bad(&b, HETEE_ERR_VERSION, "npy: format version 4.0 not supported (1.0-3.0)");
  b.p[6] = 1;
  b.p[9] = 0x7f; /* header length beyond the file */
  expect_bad(&b, HETEE_ERR_TRUNCATED, "npy: header truncated");
  free(b.p);

  /* gzip: cut in the middle, and corrupted. */
  bytes raw = idx_file(0x08, 3, dims, 2 * 784), gz = gzip_bytes(&raw);
  bytes cut = {0};
  put(&cut, gz.p, gz.n / 2);
  expect_bad(&cut, HETEE_ERR_TRUNCATED, "gzip data ends early (truncated file)");
  gz.p[12] ^= 0xff;
  gz.p[13] ^= 0x55;
  hetee_nn_data *d = NULL;
  int rc = hetee_nn_data_from_memory(gz.p, gz.n, &d);
  assert_true(rc == HETEE_ERR_FORMAT || rc == HETEE_ERR_TRUNCATED);
  assert_null(d);
  free(raw.p);
  free(gz.p);
  free(cut.p);
}

static void test_npy_save_roundtrip(void **state) {
  (void)state;
  float v[30];
  for (int i = 0; i < 30; i++) v[i] = (float)i - 7.5f;
  char path[] = "/tmp/hetee_nn_save_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  size_t dims[2] = {3, 10};
  assert_int_equal(hetee_nn_npy_save_f32(path, v, 2, dims), 0);
  hetee_nn_data *d = NULL;
  assert_int_equal(hetee_nn_data_load(path, &d), 0);
  assert_int_equal(hetee_nn_data_rank(d), 2);
  assert_true(hetee_nn_data_dims(d)[0] == 3 && hetee_nn_data_dims(d)[1] == 10);
  assert_memory_equal(hetee_nn_data_values(d), v, sizeof v);
  hetee_nn_data_free(d);
  /* The header is the NEP-1 dict padded so the data starts at a multiple of 64. */
  FILE *f = fopen(path, "rb");
  uint8_t buf[256];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  assert_true(n == 64 + 120 || n == 128 + 120);
  size_t hl = buf[8] | (size_t)buf[9] << 8;
  assert_int_equal((10 + hl) % 64, 0);
  assert_non_null(strstr((const char *)buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 10), }"));
  size_t one = 5;
  assert_int_equal(hetee_nn_npy_save_f32(path, v, 1, &one), 0);
  f = fopen(path, "rb");
  n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  assert_non_null(strstr((const char *)buf + 10, "'shape': (5,), }"));
  unlink(path);
}

static int cleanup(void **state) {
  (void)state;
  for (int i = 0; i < n_tmp; i++) unlink(tmp_paths[i]);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fashion_mnist),       cmocka_unit_test(test_idx_raw_and_gzip),
      cmocka_unit_test(test_npy_types_and_shapes), cmocka_unit_test(test_shape_and_type_checks),
      cmocka_unit_test(test_bad_files),           cmocka_unit_test(test_npy_save_roundtrip),
  };
  return cmocka_run_group_tests_name("nn/data", tests, NULL, cleanup);
}
