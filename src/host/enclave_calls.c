/*
 * enclave_calls.c — the typed host API over the framed protocol: one
 * function per enclave operation, each encoding its request, checking the
 * reply's exact layout and turning enclave errors into status codes.
 */
#include <stdlib.h>
#include <string.h>

#include "host/host_internal.h"

static int reply_bad(hetee_frame *f, const char *what) {
  hetee_frame_clear(f);
  return hetee_error(HETEE_ERR_PROTOCOL, "malformed %s reply from the enclave", what);
}

static int parse_info(hetee_frame *f, hetee_host_info *out) {
  hetee_rbuf r;
  hetee_rbuf_init(&r, f->body, f->len);
  memset(out, 0, sizeof *out);
  out->pid = (int)hetee_rbuf_u32(&r);
  hetee_rbuf_copy(&r, out->measurement, 32);
  hetee_rbuf_copy(&r, out->channel_pk, 32);
  hetee_rbuf_copy(&r, out->bundle_fp, 32);
  out->have_keys = hetee_rbuf_u8(&r);
  out->slots = hetee_rbuf_u32(&r);
  size_t n;
  (void)hetee_rbuf_blob(&r, 256, &n); /* build tag */
  const uint8_t *cfg = hetee_rbuf_blob(&r, sizeof out->config - 1, &n);
  out->secrets_locked = hetee_rbuf_u8(&r);
  if (r.err || hetee_rbuf_left(&r)) return reply_bad(f, "INFO");
  memcpy(out->config, cfg, n);
  out->config[n] = 0;
  hetee_frame_clear(f);
  return 0;
}

int hetee_host_info_get_noretry(hetee_host_enclave *e, hetee_host_info *out) {
  hetee_frame f;
  int rc = hetee_host_call_frame(e, HETEE_MSG_INFO, NULL, 0, &f, 0);
  return rc ? rc : parse_info(&f, out);
}

int hetee_host_info_get(hetee_host_enclave *e, hetee_host_info *out) {
  if (!e || !out) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  hetee_frame f;
  int rc = hetee_host_call_frame(e, HETEE_MSG_INFO, NULL, 0, &f, 1);
  return rc ? rc : parse_info(&f, out);
}

int hetee_host_keygen(hetee_host_enclave *e, const int *steps, size_t n) {
  if (!e || (n && !steps) || n > 65536) return hetee_error(HETEE_ERR_INVALID_ARG, "bad argument");
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, (uint32_t)n);
  for (size_t i = 0; i < n; i++) hetee_wbuf_u32(&w, (uint32_t)(int32_t)steps[i]);
  if (w.err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  hetee_frame f;
  int rc = hetee_host_call_frame(e, HETEE_MSG_KEYGEN, w.p, w.len, &f, 1);
  hetee_wbuf_free(&w);
  if (rc) return rc;
  if (f.len != 32) return reply_bad(&f, "KEYGEN");
  hetee_frame_clear(&f);
  return 0;
}

int hetee_host_public_keys(hetee_host_enclave *e, uint8_t **bundle, size_t *len) {
  return hetee_host_call(e, HETEE_MSG_PUBLIC_KEYS, NULL, 0, bundle, len);
}

int hetee_host_evidence(hetee_host_enclave *e, const uint8_t nonce[32], uint8_t **ev, size_t *len, uint8_t ch_pk[32],
                           uint8_t bundle_fp[32]) {
  if (!e || !nonce || !ev || !len || !ch_pk || !bundle_fp) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *ev = NULL;
  *len = 0;
  hetee_frame f;
  int rc = hetee_host_call_frame(e, HETEE_MSG_EVIDENCE, nonce, 32, &f, 1);
  if (rc) return rc;
  hetee_rbuf r;
  hetee_rbuf_init(&r, f.body, f.len);
  size_t n;
  const uint8_t *p = hetee_rbuf_blob(&r, 4096, &n);
  hetee_rbuf_copy(&r, ch_pk, 32);
  hetee_rbuf_copy(&r, bundle_fp, 32);
  if (r.err || hetee_rbuf_left(&r)) return reply_bad(&f, "EVIDENCE");
  *ev = malloc(n ? n : 1);
  if (!*ev) {
    hetee_frame_clear(&f);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  memcpy(*ev, p, n);
  *len = n;
  hetee_frame_clear(&f);
  return 0;
}

int hetee_host_seal(hetee_host_enclave *e, const char *path) {
  if (!e || !path) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t *b;
  size_t n;
  int rc = hetee_host_call(e, HETEE_MSG_SEAL, NULL, 0, &b, &n);
  if (rc) return rc;
  rc = hetee_file_write_atomic(path, b, n, 0600);
  free(b);
  return rc;
}

int hetee_host_unseal(hetee_host_enclave *e, const char *path) {
  if (!e || !path) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  uint8_t *b;
  size_t n;
  int rc = hetee_file_read(path, HETEE_FRAME_MAX_BODY, &b, &n);
  if (rc) return rc;
  hetee_frame f;
  rc = hetee_host_call_frame(e, HETEE_MSG_UNSEAL, b, n, &f, 0);
  free(b);
  if (!rc) hetee_frame_clear(&f);
  return rc;
}

int hetee_host_session_open(hetee_host_enclave *e, const uint8_t *hs, size_t len, uint8_t **reply, size_t *rlen) {
  return hetee_host_call(e, HETEE_MSG_SESSION_OPEN, hs, len, reply, rlen);
}

int hetee_host_session_msg(hetee_host_enclave *e, const uint8_t *msg, size_t len, uint8_t **reply, size_t *rlen) {
  return hetee_host_call(e, HETEE_MSG_SESSION_MSG, msg, len, reply, rlen);
}

void hetee_host_cts_free(uint8_t **cts, size_t *lens, size_t n) {
  if (cts)
    for (size_t i = 0; i < n; i++) free(cts[i]);
  free(cts);
  free(lens);
}

static void put_cts(hetee_wbuf *w, const uint8_t *const *cts, const size_t *lens, size_t n) {
  /* one allocation for the whole list: growing a buffer of tens of MiB by
   * doubling copies (and wipes) it several times */
  size_t total = 4;
  for (size_t i = 0; i < n; i++) total += 8 + lens[i];
  (void)hetee_wbuf_reserve(w, total);
  hetee_wbuf_u32(w, (uint32_t)n);
  for (size_t i = 0; i < n; i++) hetee_wbuf_blob(w, cts[i], lens[i]);
}

/* Appends the reply's ciphertexts to (*out, *out_lens, *nout). */
static int take_cts(hetee_frame *f, uint8_t ***out, size_t **out_lens, size_t *nout) {
  hetee_rbuf r;
  hetee_rbuf_init(&r, f->body, f->len);
  uint32_t n = hetee_rbuf_u32(&r);
  if (r.err || n > 65536) return reply_bad(f, "ciphertext list");
  uint8_t **no = realloc(*out, (*nout + n + 1) * sizeof *no);
  if (no) *out = no;
  size_t *nl = realloc(*out_lens, (*nout + n + 1) * sizeof *nl);
  if (nl) *out_lens = nl;
  if (!no || !nl) {
    hetee_frame_clear(f);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  for (uint32_t i = 0; i < n; i++) {
    size_t len;
    const uint8_t *p = hetee_rbuf_blob(&r, f->len, &len);
    uint8_t *c = p ? malloc(len ? len : 1) : NULL;
    if (!c) {
      hetee_frame_clear(f);
      return p ? hetee_error(HETEE_ERR_NOMEM, "no memory") : hetee_error(HETEE_ERR_PROTOCOL, "truncated reply");
    }
    memcpy(c, p, len);
    (*out)[*nout] = c;
    (*out_lens)[*nout] = len;
    (*nout)++;
  }
  int bad = hetee_rbuf_left(&r) != 0;
  hetee_frame_clear(f);
  return bad ? hetee_error(HETEE_ERR_PROTOCOL, "trailing bytes in a ciphertext list") : 0;
}

/* The request is the spec, then u32 n and n blobs (u64 length, bytes):
 * sent in parts straight from the caller's ciphertexts (megabytes per
 * request; no copy into one buffer). */
static int refresh_one(hetee_host_enclave *e, const uint8_t *spec, size_t slen, const uint8_t *const *cts,
                       const size_t *lens, size_t n, uint8_t ***out, size_t **out_lens, size_t *nout) {
  hetee_frame_part *parts = malloc((2 * n + 2) * sizeof *parts);
  uint8_t *hdr = malloc(4 + 8 * n);
  if (!parts || !hdr) {
    free(parts);
    free(hdr);
    return hetee_error(HETEE_ERR_NOMEM, "no memory");
  }
  size_t k = 0;
  parts[k++] = (hetee_frame_part){spec, slen};
  hetee_le32(hdr, (uint32_t)n);
  parts[k++] = (hetee_frame_part){hdr, 4};
  for (size_t i = 0; i < n; i++) {
    hetee_le64(hdr + 4 + 8 * i, (uint64_t)lens[i]);
    parts[k++] = (hetee_frame_part){hdr + 4 + 8 * i, 8};
    parts[k++] = (hetee_frame_part){cts[i], lens[i]};
  }
  hetee_frame f;
  int rc = hetee_host_call_parts(e, HETEE_MSG_REFRESH, parts, k, &f, 1);
  free(parts);
  free(hdr);
  return rc ? rc : take_cts(&f, out, out_lens, nout);
}

int hetee_host_refresh_stream(hetee_host_enclave *e, const hetee_refresh_spec *spec, size_t group,
                                 const uint8_t *const *cts, const size_t *lens, size_t n, uint8_t ***out,
                                 size_t **out_lens, size_t *nout) {
  if (!e || !spec || !cts || !lens || !out || !out_lens || !nout || group == 0 || n % group)
    return hetee_error(HETEE_ERR_INVALID_ARG, "bad argument (n must be a multiple of group)");
  *out = NULL;
  *out_lens = NULL;
  *nout = 0;
  uint8_t *sb = NULL;
  size_t slen = 0;
  int rc = hetee_refresh_spec_encode(spec, &sb, &slen);
  for (size_t i = 0; i < n && !rc; i += group)
    rc = refresh_one(e, sb, slen, cts + i, lens + i, group, out, out_lens, nout);
  free(sb);
  if (rc) {
    hetee_host_cts_free(*out, *out_lens, *nout);
    *out = NULL;
    *out_lens = NULL;
    *nout = 0;
  }
  return rc;
}

int hetee_host_refresh(hetee_host_enclave *e, const hetee_refresh_spec *spec, const uint8_t *const *cts,
                          const size_t *lens, size_t n, uint8_t ***out, size_t **out_lens, size_t *nout) {
  return hetee_host_refresh_stream(e, spec, n ? n : 1, cts, lens, n, out, out_lens, nout);
}

int hetee_host_release(hetee_host_enclave *e, uint32_t model_id, const uint8_t sid[16], const hetee_release_spec *spec,
                          const uint8_t *const *cts, const size_t *lens, size_t n, uint8_t **sealed, size_t *len) {
  if (!e || !sid || !spec || !spec->map || !cts || !lens || !sealed || !len || spec->n > HETEE_RELEASE_MAX_VALUES)
    return hetee_error(HETEE_ERR_INVALID_ARG, "bad argument");
  hetee_wbuf w;
  hetee_wbuf_init(&w);
  hetee_wbuf_u32(&w, model_id);
  hetee_wbuf_put(&w, sid, 16);
  hetee_wbuf_u32(&w, (uint32_t)(int32_t)spec->in_level);
  hetee_wbuf_f64(&w, spec->in_scale);
  hetee_wbuf_u8(&w, (uint8_t)spec->in_encoding);
  hetee_wbuf_u32(&w, (uint32_t)spec->n);
  for (size_t i = 0; i < spec->n; i++) hetee_wbuf_u32(&w, spec->map[i]);
  put_cts(&w, cts, lens, n);
  if (w.err) return hetee_error(HETEE_ERR_NOMEM, "no memory");
  int rc = hetee_host_call(e, HETEE_MSG_RELEASE, w.p, w.len, sealed, len);
  hetee_wbuf_free(&w);
  return rc;
}

/* The body of a STATS reply into out[0..max); the frame is cleared. */
static int parse_stats(hetee_frame *f, hetee_enclave_op_stats *out, size_t max, size_t *n) {
  hetee_rbuf r;
  hetee_rbuf_init(&r, f->body, f->len);
  uint32_t cnt = hetee_rbuf_u32(&r);
  for (uint32_t i = 0; i < cnt && !r.err; i++) {
    hetee_enclave_op_stats s;
    s.type = hetee_rbuf_u16(&r);
    s.count = hetee_rbuf_u64(&r);
    s.cpu_ns = hetee_rbuf_u64(&r);
    s.bytes_in = hetee_rbuf_u64(&r);
    s.bytes_out = hetee_rbuf_u64(&r);
    s.items = hetee_rbuf_u64(&r);
    if (!r.err && *n < max) out[(*n)++] = s;
  }
  if (r.err || hetee_rbuf_left(&r)) return reply_bad(f, "STATS");
  hetee_frame_clear(f);
  return 0;
}

int hetee_host_stats(hetee_host_enclave *e, hetee_enclave_op_stats *out, size_t max, size_t *n) {
  if (!e || (!out && max) || !n) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *n = 0;
  hetee_frame f;
  int rc = hetee_host_call_frame(e, HETEE_MSG_STATS, NULL, 0, &f, 1);
  return rc ? rc : parse_stats(&f, out, max, n);
}

int hetee_host_stats_followed(hetee_host_enclave *e, hetee_enclave_op_stats *out, size_t max, size_t *n) {
  if (!e || (!out && max) || !n) return hetee_error(HETEE_ERR_INVALID_ARG, "NULL argument");
  *n = 0;
  if (!e->stats_have) return hetee_error(HETEE_ERR_STATE, "no STATS reply followed the last request");
  e->stats_have = 0;
  return parse_stats(&e->stats_reply, out, max, n);
}
