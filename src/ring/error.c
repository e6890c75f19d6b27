/*
 * error.c — status code texts and the per-thread detail message
 * (hetee/common.h). Lives in ring/, the lowest layer, so every layer has it.
 */
#include "hetee/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_detail[512];

const char *hetee_strerror(int status) {
  switch (status) {
  case HETEE_OK: return "success";
  case HETEE_ERR_INVALID_ARG: return "invalid argument";
  case HETEE_ERR_NOMEM: return "out of memory";
  case HETEE_ERR_PARAMS: return "invalid parameters";
  case HETEE_ERR_INSECURE: return "parameters below 128-bit security";
  case HETEE_ERR_LEVEL: return "level mismatch";
  case HETEE_ERR_SCALE: return "scale mismatch";
  case HETEE_ERR_FORM: return "wrong form (NTT/coefficient) or degree";
  case HETEE_ERR_CONTEXT: return "object belongs to other parameters";
  case HETEE_ERR_NO_KEY: return "missing evaluation key";
  case HETEE_ERR_FORMAT: return "malformed serialized data";
  case HETEE_ERR_VERSION: return "unsupported format version";
  case HETEE_ERR_TRUNCATED: return "truncated data";
  case HETEE_ERR_RANGE: return "value out of range";
  case HETEE_ERR_IO: return "I/O error";
  case HETEE_ERR_CRYPTO: return "cryptographic primitive failed";
  case HETEE_ERR_UNSUPPORTED: return "unsupported";
  case HETEE_ERR_BAD_SIGNATURE: return "bad signature";
  case HETEE_ERR_MEASUREMENT: return "measurement mismatch";
  case HETEE_ERR_KEY_BINDING: return "key binding mismatch";
  case HETEE_ERR_REPLAY: return "replayed message";
  case HETEE_ERR_AUTH: return "authentication failed";
  case HETEE_ERR_PROTOCOL: return "protocol error";
  case HETEE_ERR_SHAPE: return "shape mismatch";
  case HETEE_ERR_NOT_FOUND: return "not found";
  case HETEE_ERR_LIMIT: return "size limit exceeded";
  case HETEE_ERR_STATE: return "invalid state";
  case HETEE_ERR_INTERNAL: return "internal error";
  case HETEE_ERR_INTEGRITY: return "integrity check failed";
  default: return "unknown error";
  }
}

const char *hetee_last_error(void) { return g_detail; }

void hetee_error_clear(void) { g_detail[0] = '\0'; }

int hetee_error(int status, const char *fmt, ...) {
  /* Formatted into a local buffer first: callers may pass the current
   * detail (hetee_last_error()) as an argument to wrap it, and vsnprintf
   * into the buffer it reads from would be undefined behaviour. */
  char tmp[sizeof g_detail];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  memcpy(g_detail, tmp, sizeof g_detail);
  return status;
}
