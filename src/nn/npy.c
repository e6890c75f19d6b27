/*
 * npy.c — reader and writer of NumPy's .npy format (numpy/lib/format.py,
 * "NEP 1"): magic "\x93NUMPY", major/minor version, a little-endian header
 * length (2 bytes in 1.0, 4 bytes in 2.0/3.0), an ASCII Python dict literal
 * {'descr': ..., 'fortran_order': ..., 'shape': (...)}, then raw data.
 * The header is parsed strictly as such a literal (no eval); only
 * little-endian C-order arrays of the types below are accepted.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct {
  const char *descr;
  hetee_nn_dtype dtype;
  size_t size;
} npy_type;

static const npy_type NPY_TYPES[] = {
    {"|u1", HETEE_NN_U8, 1}, {"<u1", HETEE_NN_U8, 1},  {"<i4", HETEE_NN_I32, 4},
    {"<i8", HETEE_NN_I64, 8}, {"<f4", HETEE_NN_F32, 4}, {"<f8", HETEE_NN_F64, 8},
};

/* Finds 'key' in the header dict and returns a pointer just after its ':'. */
static const char *npy_find_key(const char *h, const char *key) {
  char quoted[32];
  snprintf(quoted, sizeof quoted, "'%s'", key);
  const char *p = strstr(h, quoted);
  if (!p) return NULL;
  p += strlen(quoted);
  while (*p == ' ') p++;
  if (*p != ':') return NULL;
  p++;
  while (*p == ' ') p++;
  return p;
}

int nn_npy_parse(const uint8_t *buf, size_t len, hetee_nn_data **out) {
  char *h = NULL;
  size_t dims[HETEE_NN_MAX_RANK];
  size_t rank = 0, hlen, hstart;
  const npy_type *type = NULL;
  hetee_nn_data *d = NULL;
  int rc;
  if (len < 10 || memcmp(buf, "\x93NUMPY", 6)) return hetee_error(HETEE_ERR_FORMAT, "npy: bad magic");
  uint8_t major = buf[6];
  if (major == 1) {
    hlen = (size_t)buf[8] | ((size_t)buf[9] << 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12) return hetee_error(HETEE_ERR_TRUNCATED, "npy: header truncated");
    hlen = (size_t)buf[8] | ((size_t)buf[9] << 8) | ((size_t)buf[10] << 16) | ((size_t)buf[11] << 24);
    hstart = 12;
  } else {
    return hetee_error(HETEE_ERR_VERSION, "npy: format version %u.%u not supported (1.0-3.0)", major, buf[7]);
  }
  if (hlen > 65536) return hetee_error(HETEE_ERR_LIMIT, "npy: header of %zu bytes (limit 65536)", hlen);
  if (len - hstart < hlen) return hetee_error(HETEE_ERR_TRUNCATED, "npy: header truncated");
  h = malloc(hlen + 1);
  if (!h) return hetee_error(HETEE_ERR_NOMEM, "npy header");
  memcpy(h, buf + hstart, hlen);
  h[hlen] = 0;
  if (strlen(h) != hlen) {
    rc = hetee_error(HETEE_ERR_FORMAT, "npy: NUL byte in header");
    goto err;
  }
  /* descr */
  const char *p = npy_find_key(h, "descr");
  if (!p || *p != '\'') {
    rc = hetee_error(HETEE_ERR_FORMAT, "npy: header has no 'descr'");
    goto err;
  }
  const char *q = strchr(p + 1, '\'');
  if (!q || q - p - 1 > 16) {
    rc = hetee_error(HETEE_ERR_FORMAT, "npy: malformed 'descr'");
    goto err;
  }
  char descr[20];
  memcpy(descr, p + 1, (size_t)(q - p - 1));
  descr[q - p - 1] = 0;
  for (size_t i = 0; i < sizeof NPY_TYPES / sizeof NPY_TYPES[0]; i++) {
    if (!strcmp(descr, NPY_TYPES[i].descr)) type = &NPY_TYPES[i];
  }
  if (!type) {
    rc = hetee_error(HETEE_ERR_FORMAT,
                     "npy: dtype '%s' not supported (float32 '<f4', float64 '<f8', uint8 '|u1', int32 '<i4', "
                     "int64 '<i8'; little-endian)",
                     descr);
    goto err;
  }
  /* fortran_order */
  p = npy_find_key(h, "fortran_order");
  if (!p) {
    rc = hetee_error(HETEE_ERR_FORMAT, "npy: header has no 'fortran_order'");
    goto err;
  }
  if (!strncmp(p, "True", 4)) {
    rc = hetee_error(HETEE_ERR_UNSUPPORTED, "npy: Fortran-order arrays not supported (save in C order)");
    goto err;
  }
  if (strncmp(p, "False", 5)) {
    rc = hetee_error(HETEE_ERR_FORMAT, "npy: malformed 'fortran_order'");
    goto err;
  }
  /* shape: a tuple of non-negative integers, "()" "(5,)" "(2, 3)" */
  p = npy_find_key(h, "shape");
  if (!p || *p != '(') {
    rc = hetee_error(HETEE_ERR_FORMAT, "npy: header has no 'shape'");
    goto err;
  }
  p++;
  for (;;) {
    while (*p == ' ') p++;
    if (*p == ')') break;
    if (!isdigit((unsigned char)*p)) {
      rc = hetee_error(HETEE_ERR_FORMAT, "npy: malformed 'shape'");
      goto err;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || v > HETEE_NN_MAX_ELEMENTS) {
      rc = hetee_error(HETEE_ERR_LIMIT, "npy: dimension too large");
      goto err;
    }
    if (rank == HETEE_NN_MAX_RANK) {
      rc = hetee_error(HETEE_ERR_LIMIT, "npy: rank above %d", HETEE_NN_MAX_RANK);
      goto err;
    }
    dims[rank++] = (size_t)v;
    p = end;
    while (*p == ' ') p++;
    if (*p == ',') p++;
    else if (*p != ')') {
      rc = hetee_error(HETEE_ERR_FORMAT, "npy: malformed 'shape'");
      goto err;
    }
  }
  if (rank == 0) {
    rc = hetee_error(HETEE_ERR_SHAPE, "npy: scalar arrays not supported");
    goto err;
  }
  size_t count = 0;
  rc = nn_checked_count(dims, rank, HETEE_NN_MAX_ELEMENTS, "npy", &count);
  if (rc) goto err;
  size_t data_len = len - hstart - hlen, need = count * type->size;
  if (data_len < need) {
    rc = hetee_error(HETEE_ERR_TRUNCATED, "npy: truncated: shape needs %zu data bytes, file holds %zu", need,
                     data_len);
    goto err;
  }
  if (data_len > need) {
    rc = hetee_error(HETEE_ERR_TRUNCATED, "npy: %zu bytes after the data the shape announces", data_len - need);
    goto err;
  }
  rc = nn_data_new(type->dtype, rank, dims, &d);
  if (rc) goto err;
  const uint8_t *v = buf + hstart + hlen;
  for (size_t i = 0; i < count; i++) {
    const uint8_t *e = v + i * type->size;
    uint64_t u = 0;
    for (size_t k = 0; k < type->size; k++) u |= (uint64_t)e[k] << (8 * k);
    double x;
    switch (type->dtype) {
      case HETEE_NN_U8: x = (double)e[0]; break;
      case HETEE_NN_I32: x = (double)(int32_t)(uint32_t)u; break;
      case HETEE_NN_I64: x = (double)(int64_t)u; break;
      case HETEE_NN_F32: {
        uint32_t w = (uint32_t)u;
        float f;
        memcpy(&f, &w, 4);
        x = f;
        break;
      }
      default: memcpy(&x, &u, 8); break;
    }
    if (!isfinite(x)) {
      rc = hetee_error(HETEE_ERR_RANGE, "npy: element %zu is not a finite number", i);
      goto err;
    }
    if (fabs(x) > 3.0e38) {
      rc = hetee_error(HETEE_ERR_RANGE, "npy: element %zu does not fit a float", i);
      goto err;
    }
    d->values[i] = (float)x;
  }
  free(h);
  *out = d;
  return 0;
err:
  free(h);
  hetee_nn_data_free(d);
  return rc;
}

int hetee_nn_npy_save_f32(const char *path, const float *values, size_t rank, const size_t *dims) {
  char header[256];
  size_t count = 0;
  if (!path || !dims || rank < 1 || rank > HETEE_NN_MAX_RANK) {
    return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_nn_npy_save_f32: bad arguments");
  }
  int rc = nn_checked_count(dims, rank, HETEE_NN_MAX_ELEMENTS, "npy", &count);
  if (rc) return rc;
  if (count && !values) return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_nn_npy_save_f32: NULL values");
  int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  for (size_t i = 0; i < rank; i++) {
    n += snprintf(header + n, sizeof header - (size_t)n, "%s%zu", i ? ", " : "", dims[i]);
  }
  /* A 1-tuple is written "(a,)", as Python does. */
  n += snprintf(header + n, sizeof header - (size_t)n, "%s), }", rank == 1 ? "," : "");
  /* Pad with spaces so that magic + length + header is a multiple of 64,
   * ending with '\n' (format.py). */
  size_t total = 10 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  memset(header + n, ' ', pad);
  header[n + (int)pad] = '\n';
  size_t hlen = (size_t)n + pad + 1;
  uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff), (uint8_t)(hlen >> 8)};
  FILE *f = fopen(path, "wb");
  if (!f) return hetee_error(HETEE_ERR_IO, "cannot create %s: %s", path, strerror(errno));
  int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, hlen, f) == hlen;
  for (size_t i = 0; ok && i < count; i++) {
    uint32_t w;
    memcpy(&w, &values[i], 4);
    uint8_t le[4] = {(uint8_t)w, (uint8_t)(w >> 8), (uint8_t)(w >> 16), (uint8_t)(w >> 24)};
    ok = fwrite(le, 1, 4, f) == 4;
  }
  if (fclose(f) != 0) ok = 0;
  if (!ok) return hetee_error(HETEE_ERR_IO, "cannot write %s", path);
  return 0;
}
