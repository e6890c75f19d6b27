/*
 * hetee/enclave.h — the enclave's interface as seen from outside: the framed
 * message protocol between host and enclave, the sim platform (the stand-in
 * for the CPU vendor's root: attestation key + sealing secret), enclave
 * measurement, attestation evidence, the CKKS key bundle the enclave
 * publishes, and the refresh / release operation descriptions.
 *
 * Everything here is pure formatting and cryptography over libsodium; the
 * trusted code itself (key custody, refresh ops, sealing) runs only inside
 * the `hetee-enclave` process and is not callable from this header. The host
 * API that starts and drives that process is in hetee/host.h; the party side
 * (evidence verification, sessions) in hetee/client.h. docs/enclave.md
 * describes every format byte by byte.
 *
 * Thread-safety: all functions are reentrant (no global state).
 */
#ifndef HETEE_ENCLAVE_H
#define HETEE_ENCLAVE_H

#include "hetee/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Framed protocol (host <-> enclave, enclave <-> launcher).
 * Frame: u32 length (bytes after this field = 12 + body) | u16 version |
 *        u16 type | u64 request id | body.  All little-endian.
 * A reply carries the request's id and type | HETEE_MSG_REPLY, or
 * HETEE_MSG_ERROR with body i32 status | u16 n | n bytes of detail text.
 * ------------------------------------------------------------------------- */
#define HETEE_PROTO_VERSION 1
#define HETEE_FRAME_HEADER_BYTES 16
#define HETEE_FRAME_MAX_BODY (64u << 20) /* hard limit; larger frames are drained and refused */

typedef enum hetee_msg_type {
  HETEE_MSG_PING = 1,         /* body echoed back */
  HETEE_MSG_INFO = 2,         /* -> pid, measurement, channel pk, bundle fp, config */
  HETEE_MSG_KEYGEN = 3,       /* u32 n, i32 steps[n] -> CKKS keys generated (once) */
  HETEE_MSG_PUBLIC_KEYS = 4,  /* -> key bundle */
  HETEE_MSG_EVIDENCE = 5,     /* nonce[32] -> evidence blob, channel pk, bundle fp */
  HETEE_MSG_SEAL = 6,         /* -> sealed state blob */
  HETEE_MSG_UNSEAL = 7,       /* sealed state blob -> ok */
  HETEE_MSG_SESSION_OPEN = 8, /* party handshake -> session id + sealed confirmation */
  HETEE_MSG_SESSION_MSG = 9,  /* sealed party message -> sealed reply */
  HETEE_MSG_REFRESH = 10,     /* refresh job -> fresh ciphertexts */
  HETEE_MSG_RELEASE = 11,     /* release job -> result sealed to a DP session */
  HETEE_MSG_STATS = 12,       /* -> per-operation counters */
  HETEE_MSG_SHUTDOWN = 13,    /* -> ok, then the enclave exits */
  /* bound inference (docs/security.md, "Integrity of the host's work") */
  HETEE_MSG_MODEL_LOAD = 14,  /* u32 model | u8 phase (0 plan, 1 cts, 2 end) | ... -> ok */
  HETEE_MSG_JOB_START = 15,   /* u32 model | u32 batch | u32 k | k x blob ct -> u32 job | u64 ns */
  HETEE_MSG_JOB_REFRESH = 16, /* u32 job | u32 stage | spec | u32 k | k x blob -> u32 m | m x blob | u64 ns */
  HETEE_MSG_JOB_RELEASE = 17, /* u32 job | session id[16] -> u32 n | n x blob sealed */
  /* enclave <-> launcher (the sim "CPU") */
  HETEE_MSG_PLAT_HELLO = 0x100,  /* -> measurement, sealing key, config */
  HETEE_MSG_PLAT_REPORT = 0x101, /* report_data[32] -> signed evidence */
  HETEE_MSG_ERROR = 0x7fff,
  HETEE_MSG_REPLY = 0x8000 /* or'ed into the request type of a reply */
} hetee_msg_type;

/* ---------------------------------------------------------------------------
 * Sim platform: a directory standing for the CPU vendor's root, holding
 *   platform.key    Ed25519 secret key (64 bytes, mode 0600)
 *   platform.pub    Ed25519 public key (32 bytes)
 *   platform.secret 32-byte sealing root (mode 0600)
 * Only the launcher (hetee-launcher) reads the secret files.
 * ------------------------------------------------------------------------- */
#define HETEE_PLATFORM_PK_BYTES 32

/* Creates DIR (if missing) and the three files. Refuses to overwrite an
 * existing platform (HETEE_ERR_STATE). Errors: HETEE_ERR_IO. */
HETEE_API int hetee_platform_init(const char *dir) HETEE_WUR;
/* Reads DIR/platform.pub. Errors: HETEE_ERR_NOT_FOUND, HETEE_ERR_FORMAT. */
HETEE_API int hetee_platform_load_public(const char *dir, uint8_t pk[HETEE_PLATFORM_PK_BYTES]) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Measurement = SHA-256("hetee-measure-v1\0" || u64 len(binary) || binary ||
 *                        u32 len(config) || config).
 * The config is the enclave's configuration string (CKKS parameters, memory
 * budget, the model providers allowed to set release policies), measured
 * because it changes what the enclave does.
 * ------------------------------------------------------------------------- */
#define HETEE_MEASUREMENT_BYTES 32
/* The configuration used when none is given (logN 13, q {60,40,40},
 * p {60}, scale 2^40, 256 MiB budget, at most 32 Galois steps, refresh and
 * release on 2 threads). The optional key threads=N (1..64; 1 when absent)
 * sets how many threads the enclave computes with: it changes only the
 * speed (docs/enclave.md, "Configuration keys"). */
#define HETEE_ENCLAVE_DEFAULT_CONFIG "logn=13;q=60,40,40;p=60;scale=40;budget=268435456;max_galois=32;threads=2"

/* Model providers allowed to set release policies: the configuration key
 *   mp=<hex>[,<hex>...]
 * (Ed25519 identity public keys, 64 lowercase hex digits each, at most
 * HETEE_ENCLAVE_MAX_MPS, no repeats). Being measured, the list is part of
 * what every party verifies. Without the key no session may set a release
 * policy, so nothing can be released. docs/enclave.md, "Who may set release
 * policies". */
#define HETEE_ENCLAVE_MAX_MPS 8
/* Longest configuration string the launcher accepts (bytes, without NUL). */
#define HETEE_ENCLAVE_CONFIG_MAX 1024

/* Writes into out (cap bytes) the configuration `base` (NULL: the default)
 * followed by ";mp=" and the hex keys pks[0..n) in this order — the exact
 * string to measure, so that every party derives the same measurement from
 * the same keys. n = 0 copies base unchanged. Errors: HETEE_ERR_INVALID_ARG
 * (NULL out/pks; n > 0 and base already has an mp= key), HETEE_ERR_LIMIT (n above
 * HETEE_ENCLAVE_MAX_MPS, result longer than HETEE_ENCLAVE_CONFIG_MAX or than
 * cap - 1). */
HETEE_API int hetee_enclave_config_with_mps(const char *base, const uint8_t (*pks)[32], size_t n, char *out,
                                            size_t cap) HETEE_WUR;

HETEE_API int hetee_measure_bytes(const uint8_t *bin, size_t len, const char *config,
                                  uint8_t out[HETEE_MEASUREMENT_BYTES]) HETEE_WUR;
/* Measures the file at path. config NULL means HETEE_ENCLAVE_DEFAULT_CONFIG.
 * Errors: HETEE_ERR_NOT_FOUND, HETEE_ERR_IO, HETEE_ERR_LIMIT (> 256 MiB). */
HETEE_API int hetee_measure_file(const char *path, const char *config,
                                 uint8_t out[HETEE_MEASUREMENT_BYTES]) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Evidence (136 bytes):
 *   "HTEV" | u16 version (1) | u16 backend | measurement[32] |
 *   report_data[32] | signature[64]
 * signature = Ed25519(platform key, "hetee-evidence-v1\0" || bytes[0..72)).
 * report_data = SHA-256("hetee-report-v1\0" || bundle_fp[32] ||
 *                       channel_pk[32] || nonce[32]).
 * ------------------------------------------------------------------------- */
#define HETEE_EVIDENCE_BYTES 136
#define HETEE_EVIDENCE_SIGNED_BYTES 72
#define HETEE_BACKEND_SIM 1
#define HETEE_NONCE_BYTES 32
#define HETEE_FINGERPRINT_BYTES 32
#define HETEE_CHANNEL_PK_BYTES 32

typedef struct hetee_evidence {
  uint16_t version;
  uint16_t backend;
  uint8_t measurement[HETEE_MEASUREMENT_BYTES];
  uint8_t report_data[32];
  uint8_t signature[64];
} hetee_evidence;

/* Parses (no signature check). Errors: HETEE_ERR_FORMAT, HETEE_ERR_VERSION. */
HETEE_API int hetee_evidence_parse(const uint8_t *buf, size_t len, hetee_evidence *out) HETEE_WUR;
HETEE_API void hetee_report_data(const uint8_t bundle_fp[32], const uint8_t channel_pk[32],
                                 const uint8_t nonce[32], uint8_t out[32]);
/* SHA-256 of the evidence bytes: what a session binds to. */
HETEE_API void hetee_evidence_hash(const uint8_t *buf, size_t len, uint8_t out[32]);

/* ---------------------------------------------------------------------------
 * Key bundle: what the enclave publishes for encryptors and the evaluator.
 *   "HTKB" | u16 version (1) | u16 count | count x (u16 kind | u64 n | n bytes)
 * The items are hetee_ckks serializations. Fingerprint =
 * SHA-256("hetee-keybundle-v1\0" || whole bundle).
 * ------------------------------------------------------------------------- */
typedef enum hetee_bundle_kind {
  HETEE_BUNDLE_PARAMS = 1,
  HETEE_BUNDLE_PUBLIC_KEY = 2,
  HETEE_BUNDLE_RELIN_KEY = 3,
  HETEE_BUNDLE_GALOIS_KEYS = 4
} hetee_bundle_kind;

HETEE_API void hetee_key_bundle_fingerprint(const uint8_t *buf, size_t len, uint8_t out[32]);
/* Finds item `kind`; *item points into buf. Errors: HETEE_ERR_FORMAT,
 * HETEE_ERR_NOT_FOUND. */
HETEE_API int hetee_key_bundle_get(const uint8_t *buf, size_t len, int kind, const uint8_t **item,
                                   size_t *item_len) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Refresh: decrypt a batch of ciphertexts, gather the values a layer wrote
 * into `batch` samples of shape (C, H, W), apply an operation list to each
 * sample, scatter the result into fresh ciphertexts.
 *
 * Values are addressed globally:
 *   HETEE_ENC_SLOTS  g = ct_index * slots + slot (canonical-embedding slots)
 *   HETEE_ENC_COEFFS g = ct_index * N + k (coefficient k / scale)
 *   in_map[i]  = global input index of tensor value i (i < batch*C*H*W,
 *                sample-major: sample b's values are [b*C*H*W, (b+1)*C*H*W))
 *   out pairs  = (out_dst[k] global output index, out_src[k] index into the
 *                final tensor of batch * final_size values, sample-major):
 *                any permutation / replication; unnamed slots are zero.
 *
 * Everything the host can observe of a refresh (success or failure, error
 * code and text, reply size, time) depends only on the spec, the parameters
 * and the ciphertexts' public metadata, never on what they decrypt to:
 * the spec is checked against the parameters before anything is decrypted,
 * every input ciphertext must have exactly the declared level and scale
 * (refused before decryption otherwise), values are saturated at public
 * bounds after decoding, after every op and before encoding, and the
 * encoder's path is chosen from those bounds. docs/security.md, "Refresh
 * and release as oracles".
 * ------------------------------------------------------------------------- */
typedef enum hetee_op_kind {
  HETEE_OP_ADD_BIAS = 1,   /* a: n values (one per element) or C (per channel) */
  HETEE_OP_RELU = 2,
  HETEE_OP_LEAKY_RELU = 3, /* alpha */
  HETEE_OP_SIGMOID = 4,
  HETEE_OP_TANH = 5,
  HETEE_OP_SQUARE = 6,
  HETEE_OP_MAXPOOL = 7,    /* window x window, stride; no padding */
  HETEE_OP_AVGPOOL = 8,
  HETEE_OP_BATCHNORM = 9,  /* y = a[c] * x + b[c] per channel */
  HETEE_OP_RESHAPE = 10,   /* shape[3], same element count (flatten = {n,1,1}) */
  HETEE_OP_SCALE = 11      /* y = alpha * x (e.g. undo a packing factor) */
} hetee_op_kind;

/* Encodings of refresh / release inputs and refresh outputs. */
typedef enum hetee_encoding {
  HETEE_ENC_SLOTS = 0, /* canonical-embedding slots (hetee_ckks_encode_real) */
  HETEE_ENC_COEFFS = 1 /* coefficients / scale (hetee_ckks_encode_coeffs) */
} hetee_encoding;

#define HETEE_REFRESH_MAX_OPS 32
#define HETEE_REFRESH_MAX_VALUES (1u << 24) /* batch * C * H * W */
/* Wire format version of the refresh spec (docs/enclave.md). */
#define HETEE_REFRESH_SPEC_VERSION 2
/* Op constants (alpha, a[], b[]) must be finite with |c| <= 2^64. */
#define HETEE_REFRESH_MAX_CONST 18446744073709551616.0
/* Values are saturated at +-2^256 after decoding and after every op (so no
 * op sequence overflows: 2^256 squared, or times 2^64, stays finite). */
#define HETEE_REFRESH_VALUE_BOUND 0x1p256
/* Scales accepted for inputs and outputs: scale >= 2^20 and
 * scale * 2^HETEE_SCALE_HEADROOM_BITS <= Q_level (the product of the
 * level's primes), so that at least 2^(headroom - 4) of magnitude remains
 * for the values. */
#define HETEE_SCALE_MIN_BITS 20
#define HETEE_SCALE_HEADROOM_BITS 10

typedef struct hetee_refresh_op {
  int kind;
  double alpha;
  int window, stride;
  int shape[3];
  const double *a;
  size_t na;
  const double *b;
  size_t nb;
} hetee_refresh_op;

typedef struct hetee_refresh_spec {
  int shape[3]; /* C, H, W of one gathered input sample */
  uint32_t batch; /* samples (0 means 1) */
  const uint32_t *in_map; /* batch * C*H*W global input indices */
  int in_level;      /* level of every input ciphertext (-1: top) */
  double in_scale;   /* scale the inputs are decoded with (0: default) */
  int in_encoding;   /* HETEE_ENC_SLOTS or HETEE_ENC_COEFFS */
  size_t nops;
  const hetee_refresh_op *ops;
  uint32_t out_ncts; /* output ciphertexts */
  size_t out_n;
  const uint32_t *out_dst;
  const uint32_t *out_src;
  int out_level;    /* -1: top level */
  double out_scale; /* 0: the context's default scale */
  int out_encoding; /* HETEE_ENC_SLOTS or HETEE_ENC_COEFFS */
} hetee_refresh_spec;

/* Serializes the spec (without ciphertexts) into *buf (malloc'd). */
HETEE_API int hetee_refresh_spec_encode(const hetee_refresh_spec *spec, uint8_t **buf, size_t *len) HETEE_WUR;

/* ---------------------------------------------------------------------------
 * Release policy, set by a model provider listed in the configuration's
 * mp= key through its session; the first accepted policy for a model id
 * makes that MP the model's owner (only it may change the policy later).
 * A policy names 1 to HETEE_POLICY_MAX_DPS data providers, the only
 * possible recipients.
 * ------------------------------------------------------------------------- */
#define HETEE_POLICY_MAX_DPS 16
typedef enum hetee_release_kind {
  HETEE_RELEASE_VALUES = 1,  /* rounded values */
  HETEE_RELEASE_SOFTMAX = 2, /* rounded probabilities */
  HETEE_RELEASE_ARGMAX = 3,  /* index of the largest value */
  HETEE_RELEASE_TOPK = 4     /* indices of the k largest, best first */
} hetee_release_kind;

#define HETEE_RELEASE_MAX_VALUES 65536

/* What a release decrypts: values at global indices map[0..n) of
 * ciphertexts that must all have level in_level (-1: top) and scale
 * in_scale (0: default; refused before decryption otherwise), decoded with
 * that scale. Before rounding to the policy's precision every value gets
 * uniform noise in [-a, a], a = n * 2^(HETEE_RELEASE_ERR_BITS +
 * HETEE_RELEASE_STAT_BITS - 1) / in_scale (docs/security.md, "Noise
 * flooding"); a release whose a exceeds the policy's rounding unit
 * 2^-precision is refused (HETEE_ERR_SCALE: decode at a larger scale). */
typedef struct hetee_release_spec {
  int in_level;
  double in_scale;
  int in_encoding; /* HETEE_ENC_SLOTS or HETEE_ENC_COEFFS */
  const uint32_t *map;
  size_t n;
} hetee_release_spec;
/* Public bound assumed on the decryption error of a released value, in
 * units of 1/in_scale, and the statistical security of the flooding. */
#define HETEE_RELEASE_ERR_BITS 24
#define HETEE_RELEASE_STAT_BITS 40

/* ---------------------------------------------------------------------------
 * Counters the enclave keeps per message type (CPU time of the enclave
 * process, all its threads, while it handled the requests; bytes in and
 * out).
 * ------------------------------------------------------------------------- */
typedef struct hetee_enclave_op_stats {
  uint16_t type;
  uint64_t count;
  uint64_t cpu_ns;
  uint64_t bytes_in;
  uint64_t bytes_out;
  uint64_t items; /* ciphertexts processed (refresh/release) */
} hetee_enclave_op_stats;

#ifdef __cplusplus
}
#endif
#endif
