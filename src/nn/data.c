/*
 * data.c — loading arrays (images, labels, logits) from files: reads the
 * file under a hard size limit, inflates gzip (zlib, RFC 1952) when the
 * bytes start with the gzip magic, recognises IDX (LeCun's MNIST format) or
 * .npy (NumPy format 1.0-3.0) by content, and checks image / label shapes.
 * Every size read from a file is checked before it is used: untrusted bytes
 * are answered with an error code and a detail, never a crash.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nn/nn_internal.h"

int nn_checked_count(const size_t *dims, size_t rank, size_t limit, const char *what, size_t *out) {
  size_t n = 1;
  for (size_t i = 0; i < rank; i++) {
    if (dims[i] != 0 && n > limit / dims[i]) {
      return hetee_error(HETEE_ERR_LIMIT, "%s: more than %zu elements", what, limit);
    }
    n *= dims[i];
  }
  if (n > limit) return hetee_error(HETEE_ERR_LIMIT, "%s: more than %zu elements", what, limit);
  *out = n;
  return 0;
}

int nn_read_file(const char *path, size_t limit, uint8_t **buf, size_t *len) {
  uint8_t *b = NULL;
  size_t n = 0, cap = 0;
  int rc;
  FILE *f = fopen(path, "rb");
  if (!f) return hetee_error(HETEE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  for (;;) {
    if (n == cap) {
      if (cap > limit) {
        rc = hetee_error(HETEE_ERR_LIMIT, "%s: file larger than %zu bytes", path, limit);
        goto err;
      }
      size_t ncap = cap ? cap * 2 : 65536;
      uint8_t *nb = realloc(b, ncap);
      if (!nb) {
        rc = hetee_error(HETEE_ERR_NOMEM, "reading %s", path);
        goto err;
      }
      b = nb;
      cap = ncap;
    }
    size_t got = fread(b + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  if (ferror(f)) {
    rc = hetee_error(HETEE_ERR_IO, "cannot read %s", path);
    goto err;
  }
  if (n > limit) {
    rc = hetee_error(HETEE_ERR_LIMIT, "%s: file larger than %zu bytes", path, limit);
    goto err;
  }
  fclose(f);
  *buf = b;
  *len = n;
  return 0;
err:
  fclose(f);
  free(b);
  return rc;
}

int nn_gunzip(const uint8_t *in, size_t in_len, size_t limit, uint8_t **out, size_t *out_len) {
  z_stream zs;
  uint8_t *b = NULL;
  size_t cap = 0, n = 0;
  int rc, zr = Z_OK;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return hetee_error(HETEE_ERR_NOMEM, "zlib init");
  zs.next_in = (Bytef *)(uintptr_t)in;
  size_t in_left = in_len;
  for (;;) {
    if (zs.avail_in == 0 && in_left > 0) {
      uInt chunk = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
      zs.avail_in = chunk;
      in_left -= chunk;
    }
    if (n == cap) {
      if (cap >= limit + 1) {
        rc = hetee_error(HETEE_ERR_LIMIT, "gzip data inflates to more than %zu bytes", limit);
        goto err;
      }
      size_t ncap = cap ? cap * 2 : in_len * 4 + 4096;
      if (ncap > limit + 1) ncap = limit + 1;
      uint8_t *nb = realloc(b, ncap);
      if (!nb) {
        rc = hetee_error(HETEE_ERR_NOMEM, "inflating gzip data");
        goto err;
      }
      b = nb;
      cap = ncap;
    }
    size_t room = cap - n;
    zs.next_out = b + n;
    zs.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
    uInt before = zs.avail_out;
    zr = inflate(&zs, Z_NO_FLUSH);
    n += before - zs.avail_out;
    if (zr == Z_STREAM_END) {
      /* Another gzip member may follow (concatenated .gz files). */
      if (zs.avail_in == 0 && in_left == 0) break;
      if (inflateReset(&zs) != Z_OK) {
        rc = hetee_error(HETEE_ERR_FORMAT, "corrupt gzip data");
        goto err;
      }
      continue;
    }
    if (zr == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0) {
      rc = hetee_error(HETEE_ERR_TRUNCATED, "gzip data ends early (truncated file)");
      goto err;
    }
    if (zr != Z_OK && zr != Z_BUF_ERROR) {
      rc = hetee_error(zr == Z_MEM_ERROR ? HETEE_ERR_NOMEM : HETEE_ERR_FORMAT, "corrupt gzip data: %s",
                       zs.msg ? zs.msg : "inflate failed");
      goto err;
    }
  }
  if (n > limit) {
    rc = hetee_error(HETEE_ERR_LIMIT, "gzip data inflates to more than %zu bytes", limit);
    goto err;
  }
  inflateEnd(&zs);
  *out = b;
  *out_len = n;
  return 0;
err:
  inflateEnd(&zs);
  free(b);
  return rc;
}

int nn_data_new(hetee_nn_dtype dtype, size_t rank, const size_t *dims, hetee_nn_data **out) {
  size_t count = 0;
  if (rank < 1 || rank > HETEE_NN_MAX_RANK) {
    return hetee_error(HETEE_ERR_LIMIT, "array of rank %zu (supported: 1..%d)", rank, HETEE_NN_MAX_RANK);
  }
  int rc = nn_checked_count(dims, rank, HETEE_NN_MAX_ELEMENTS, "array", &count);
  if (rc) return rc;
  hetee_nn_data *d = calloc(1, sizeof *d);
  if (!d) return hetee_error(HETEE_ERR_NOMEM, "array");
  d->values = calloc(count ? count : 1, sizeof(float));
  if (!d->values) {
    free(d);
    return hetee_error(HETEE_ERR_NOMEM, "array of %zu elements", count);
  }
  d->dtype = dtype;
  d->rank = rank;
  memcpy(d->dims, dims, rank * sizeof *dims);
  d->count = count;
  *out = d;
  return 0;
}

void hetee_nn_data_free(hetee_nn_data *d) {
  if (!d) return;
  free(d->values);
  free(d);
}

int hetee_nn_data_from_memory(const uint8_t *buf, size_t len, hetee_nn_data **out) {
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  int rc;
  if (!out || (!buf && len)) return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_nn_data_from_memory: NULL");
  *out = NULL;
  if (len > HETEE_NN_MAX_DATA_BYTES) {
    return hetee_error(HETEE_ERR_LIMIT, "data larger than %zu bytes", HETEE_NN_MAX_DATA_BYTES);
  }
  if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
    rc = nn_gunzip(buf, len, HETEE_NN_MAX_DATA_BYTES, &plain, &plain_len);
    if (rc) return rc;
    buf = plain;
    len = plain_len;
  }
  if (len >= 6 && !memcmp(buf, "\x93NUMPY", 6)) {
    rc = nn_npy_parse(buf, len, out);
  } else if (len >= 4 && buf[0] == 0 && buf[1] == 0) {
    rc = nn_idx_parse(buf, len, out);
  } else {
    rc = hetee_error(HETEE_ERR_FORMAT, "neither an IDX nor a .npy file (bad magic)");
  }
  free(plain);
  return rc;
}

int hetee_nn_data_load(const char *path, hetee_nn_data **out) {
  uint8_t *buf = NULL;
  size_t len = 0;
  if (!path || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "hetee_nn_data_load: NULL");
  *out = NULL;
  int rc = nn_read_file(path, HETEE_NN_MAX_DATA_BYTES, &buf, &len);
  if (rc) return rc;
  rc = hetee_nn_data_from_memory(buf, len, out);
  free(buf);
  if (rc) {
    /* Prefix the file name to the parser's detail. */
    char detail[512];
    snprintf(detail, sizeof detail, "%s", hetee_last_error());
    return hetee_error(rc, "%s: %s", path, detail);
  }
  return 0;
}

static const char *dtype_name(hetee_nn_dtype t) {
  switch (t) {
    case HETEE_NN_U8: return "uint8";
    case HETEE_NN_I32: return "int32";
    case HETEE_NN_I64: return "int64";
    case HETEE_NN_F32: return "float32";
    case HETEE_NN_F64: return "float64";
  }
  return "?";
}

int hetee_nn_images_load(const char *path, hetee_nn_data **out) {
  hetee_nn_data *d = NULL;
  int rc = hetee_nn_data_load(path, &d);
  if (rc) return rc;
  if (d->dtype != HETEE_NN_U8 && d->dtype != HETEE_NN_F32 && d->dtype != HETEE_NN_F64) {
    rc = hetee_error(HETEE_ERR_FORMAT, "%s: images of type %s (supported: uint8, float32, float64)", path,
                     dtype_name(d->dtype));
    goto err;
  }
  int ok = d->dims[0] >= 1 &&
           ((d->rank == 2 && d->dims[1] == 784) || (d->rank == 3 && d->dims[1] == 28 && d->dims[2] == 28) ||
            (d->rank == 4 && d->dims[1] == 1 && d->dims[2] == 28 && d->dims[3] == 28));
  if (!ok) {
    char shape[128];
    int p = snprintf(shape, sizeof shape, "[");
    for (size_t i = 0; i < d->rank; i++) {
      p += snprintf(shape + p, sizeof shape - (size_t)p, "%s%zu", i ? "," : "", d->dims[i]);
    }
    snprintf(shape + p, sizeof shape - (size_t)p, "]");
    rc = hetee_error(HETEE_ERR_SHAPE, "%s: images of shape %s (supported: [N,784], [N,28,28], [N,1,28,28])",
                     path, shape);
    goto err;
  }
  size_t n = d->dims[0];
  d->rank = 4;
  d->dims[0] = n;
  d->dims[1] = 1;
  d->dims[2] = 28;
  d->dims[3] = 28;
  *out = d;
  return 0;
err:
  hetee_nn_data_free(d);
  return rc;
}

int hetee_nn_labels_load(const char *path, hetee_nn_data **out) {
  hetee_nn_data *d = NULL;
  int rc = hetee_nn_data_load(path, &d);
  if (rc) return rc;
  if (d->dtype != HETEE_NN_U8 && d->dtype != HETEE_NN_I32 && d->dtype != HETEE_NN_I64) {
    rc = hetee_error(HETEE_ERR_FORMAT, "%s: labels of type %s (supported: uint8, int32, int64)", path,
                     dtype_name(d->dtype));
    goto err;
  }
  if (d->rank != 1 || d->dims[0] < 1) {
    rc = hetee_error(HETEE_ERR_SHAPE, "%s: labels must be a non-empty vector [N], got rank %zu", path, d->rank);
    goto err;
  }
  for (size_t i = 0; i < d->count; i++) {
    if (!(d->values[i] >= 0.0f && d->values[i] <= 255.0f)) {
      rc = hetee_error(HETEE_ERR_RANGE, "%s: label %zu is %.0f (must be 0..255)", path, i, (double)d->values[i]);
      goto err;
    }
  }
  *out = d;
  return 0;
err:
  hetee_nn_data_free(d);
  return rc;
}

size_t hetee_nn_data_rank(const hetee_nn_data *d) { return d ? d->rank : 0; }
const size_t *hetee_nn_data_dims(const hetee_nn_data *d) { return d ? d->dims : NULL; }
size_t hetee_nn_data_count(const hetee_nn_data *d) { return d ? d->count : 0; }
const float *hetee_nn_data_values(const hetee_nn_data *d) { return d ? d->values : NULL; }
hetee_nn_dtype hetee_nn_data_dtype(const hetee_nn_data *d) { return d ? d->dtype : (hetee_nn_dtype)0; }
