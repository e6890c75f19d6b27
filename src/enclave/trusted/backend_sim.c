/*
 * backend_sim.c — the `sim` evidence backend (see backend.h): the platform
 * services of the sim launcher reached over the enclave's fd 4 with the
 * framed protocol (PLAT_HELLO at start-up, PLAT_REPORT per evidence).
 */
#include <sodium.h>
#include <string.h>

#include "enclave/trusted/backend.h"
#include "enclave/trusted/enclave_internal.h"

static int sim_init(enclave *e) {
  int rc = hetee_frame_write(e->plat_fd, HETEE_MSG_PLAT_HELLO, ++e->plat_id, NULL, 0);
  if (rc) return rc;
  hetee_frame f;
  rc = hetee_frame_read(e->plat_fd, 4096, &f);
  if (rc) return rc;
  if (f.type != (HETEE_MSG_PLAT_HELLO | HETEE_MSG_REPLY)) {
    rc = f.type == HETEE_MSG_ERROR ? hetee_frame_error_status(&f) : hetee_error(HETEE_ERR_PROTOCOL, "platform reply");
    hetee_frame_clear(&f);
    return rc;
  }
  hetee_rbuf r;
  hetee_rbuf_init(&r, f.body, f.len);
  hetee_rbuf_copy(&r, e->measurement, 32);
  hetee_rbuf_copy(&r, e->sec->seal_key, 32);
  size_t n;
  const uint8_t *cfg = hetee_rbuf_blob(&r, sizeof e->config_str - 1, &n);
  if (r.err || hetee_rbuf_left(&r)) rc = hetee_error(HETEE_ERR_PROTOCOL, "malformed platform hello");
  else {
    memcpy(e->config_str, cfg, n);
    e->config_str[n] = 0;
  }
  sodium_memzero(f.body, f.len);
  hetee_frame_clear(&f);
  return rc;
}

static int sim_report(enclave *e, const uint8_t rd[32], uint8_t *out, size_t cap, size_t *len) {
  int rc = hetee_frame_write(e->plat_fd, HETEE_MSG_PLAT_REPORT, ++e->plat_id, rd, 32);
  if (rc) return hetee_error(HETEE_ERR_IO, "platform unreachable");
  hetee_frame f;
  rc = hetee_frame_read(e->plat_fd, 4096, &f);
  if (rc) return hetee_error(HETEE_ERR_IO, "platform unreachable");
  if (f.type != (HETEE_MSG_PLAT_REPORT | HETEE_MSG_REPLY) || f.len != HETEE_EVIDENCE_BYTES || f.len > cap) {
    rc = f.type == HETEE_MSG_ERROR ? hetee_frame_error_status(&f) : hetee_error(HETEE_ERR_PROTOCOL, "platform report");
    hetee_frame_clear(&f);
    return rc;
  }
  memcpy(out, f.body, f.len);
  *len = f.len;
  hetee_frame_clear(&f);
  return 0;
}

const enclave_backend hetee_enclave_backend_sim = {"sim", HETEE_BACKEND_SIM, sim_init, sim_report};
