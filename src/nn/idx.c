/*
 * idx.c — parser of the IDX format (Y. LeCun's MNIST distribution format,
 * also used by Fashion-MNIST): 2 zero bytes, a type byte, a rank byte, then
 * `rank` big-endian uint32 dimensions and the values in C order. Only the
 * unsigned-byte type (0x08) is accepted, as in every MNIST-style file; the
 * other IDX types are refused by name.
 */
#include <string.h>

#include "nn/nn_internal.h"

static const char *idx_type_name(uint8_t t) {
  switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
  }
  return NULL;
}

int nn_idx_parse(const uint8_t *buf, size_t len, hetee_nn_data **out) {
  size_t dims[HETEE_NN_MAX_RANK];
  if (len < 4 || buf[0] != 0 || buf[1] != 0) return hetee_error(HETEE_ERR_FORMAT, "IDX: bad magic");
  uint8_t type = buf[2], rank = buf[3];
  if (type != 0x08) {
    const char *tn = idx_type_name(type);
    if (tn) return hetee_error(HETEE_ERR_FORMAT, "IDX: data type %s not supported (only unsigned byte)", tn);
    return hetee_error(HETEE_ERR_FORMAT, "IDX: bad magic (unknown data type 0x%02x)", type);
  }
  if (rank < 1 || rank > HETEE_NN_MAX_RANK) {
    return hetee_error(HETEE_ERR_FORMAT, "IDX: rank %u not supported (1..%d)", rank, HETEE_NN_MAX_RANK);
  }
  size_t header = 4 + 4 * (size_t)rank;
  if (len < header) return hetee_error(HETEE_ERR_TRUNCATED, "IDX: header truncated");
  for (size_t i = 0; i < rank; i++) {
    const uint8_t *p = buf + 4 + 4 * i;
    dims[i] = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
    if (dims[i] == 0) return hetee_error(HETEE_ERR_FORMAT, "IDX: dimension %zu is 0", i);
  }
  size_t count = 0;
  int rc = nn_checked_count(dims, rank, HETEE_NN_MAX_ELEMENTS, "IDX", &count);
  if (rc) return rc;
  if (len - header < count) {
    return hetee_error(HETEE_ERR_TRUNCATED, "IDX: truncated: header announces %zu values, file holds %zu", count,
                       len - header);
  }
  if (len - header > count) {
    return hetee_error(HETEE_ERR_TRUNCATED, "IDX: %zu bytes after the %zu announced values", len - header - count,
                       count);
  }
  hetee_nn_data *d = NULL;
  rc = nn_data_new(HETEE_NN_U8, rank, dims, &d);
  if (rc) return rc;
  const uint8_t *v = buf + header;
  for (size_t i = 0; i < count; i++) d->values[i] = (float)v[i];
  *out = d;
  return 0;
}
