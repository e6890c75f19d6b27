/*
 * hetee/common.h — status codes, error reporting and export macros shared by
 * every layer of hetee.
 *
 * Convention (STYLE.md): every fallible function returns int, 0 on success or
 * a negative hetee_status. hetee_strerror() gives the fixed text of a code;
 * hetee_last_error() gives the calling thread's detail message for the most
 * recent failure ("cannot rescale: ciphertext already at level 0").
 * Thread-safety: all functions here are thread-safe (the detail is per thread).
 */
#ifndef HETEE_COMMON_H
#define HETEE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HETEE_API __attribute__((visibility("default")))
#define HETEE_WUR __attribute__((warn_unused_result))
#else
#define HETEE_API
#define HETEE_WUR
#endif

typedef enum hetee_status {
  HETEE_OK = 0,
  HETEE_ERR_INVALID_ARG = -1,  /* NULL pointer, out-of-range argument */
  HETEE_ERR_NOMEM = -2,        /* allocation failed */
  HETEE_ERR_PARAMS = -3,       /* parameter set malformed (N, prime sizes...) */
  HETEE_ERR_INSECURE = -4,     /* parameters below 128-bit security */
  HETEE_ERR_LEVEL = -5,        /* level mismatch or no level left */
  HETEE_ERR_SCALE = -6,        /* scale mismatch or out of range */
  HETEE_ERR_FORM = -7,         /* NTT/coefficient form or degree mismatch */
  HETEE_ERR_CONTEXT = -8,      /* object made under other parameters */
  HETEE_ERR_NO_KEY = -9,       /* missing relinearization/Galois key */
  HETEE_ERR_FORMAT = -10,      /* malformed serialized data */
  HETEE_ERR_VERSION = -11,     /* unsupported format version */
  HETEE_ERR_TRUNCATED = -12,   /* serialized data shorter than announced */
  HETEE_ERR_RANGE = -13,       /* value out of range (e.g. residue >= q) */
  HETEE_ERR_IO = -14,          /* file / socket I/O failed */
  HETEE_ERR_CRYPTO = -15,      /* libsodium primitive failed */
  HETEE_ERR_UNSUPPORTED = -16, /* feature or operator not supported */
  HETEE_ERR_BAD_SIGNATURE = -17, /* signature does not verify */
  HETEE_ERR_MEASUREMENT = -18, /* enclave measurement not the expected one */
  HETEE_ERR_KEY_BINDING = -19, /* evidence does not bind the keys in use */
  HETEE_ERR_REPLAY = -20,      /* replayed or out-of-order message */
  HETEE_ERR_AUTH = -21,        /* message authentication failed */
  HETEE_ERR_PROTOCOL = -22,    /* malformed or unexpected protocol message */
  HETEE_ERR_SHAPE = -23,       /* tensor / graph shape mismatch */
  HETEE_ERR_NOT_FOUND = -24,   /* named object does not exist */
  HETEE_ERR_LIMIT = -25,       /* a hard size limit was exceeded */
  HETEE_ERR_STATE = -26,       /* call not valid in the current state */
  HETEE_ERR_INTERNAL = -27,    /* invariant violated: a bug in hetee */
  HETEE_ERR_INTEGRITY = -28    /* the enclave's check of the host's work failed (job stopped) */
} hetee_status;

/* Fixed English text of a status code; never NULL. */
HETEE_API const char *hetee_strerror(int status);

/* Detail message of the calling thread's last failure ("" if none). The
 * pointer stays valid until the next hetee call on this thread. */
HETEE_API const char *hetee_last_error(void);

/* Records a detail message for the calling thread and returns `status`, so
 * that failure paths read `return hetee_error(HETEE_ERR_LEVEL, "...", ...);`.
 * For use by hetee's own layers. */
HETEE_API int hetee_error(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears the calling thread's detail message. */
HETEE_API void hetee_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif
