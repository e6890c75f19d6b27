/*
 * proto.h — internal helpers shared by the enclave process, the sim launcher,
 * the host library and the client library: frame I/O on a blocking stream
 * socket, the party session channel (X25519 + XChaCha20-Poly1305 with
 * per-direction counters), the sealed-blob format, atomic file writes and
 * the refresh-spec decoder. Not part of the public API.
 */
#ifndef HETEE_ENCLAVE_PROTO_H
#define HETEE_ENCLAVE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "enclave/wire/wire.h"
#include "hetee/enclave.h"

/* Request types beyond hetee/enclave.h's list (internal to the service path):
 * u32 model | dp_pk[32] | nonce[16] | u32 n | n x (u32 batch | digest[32]) |
 * sig[64] -> ok (enclave/trusted/integrity_auth.h). */
#define HETEE_MSG_JOB_AUTH 18

/* ---- refining (issue 11): src/enclave/trusted/refine.c, docs/refine.md --
 * Lists are u32 n | n x (u64 len | serialized ciphertext); every step reply
 * ends with u64 encryptions | u64 decryptions (the job's counters).
 *   OPEN    u32 model | blob spec | blob sealed authorization -> u32 job
 *   FORWARD u32 job | u32 layer | u32 count | list out -> list next_in | list next_gw
 *   LOSS    u32 job | u32 count | list logits | list labels -> list dG | list dT
 *   BACK    u32 job | u32 layer | u32 count | list u -> list dG | list dT
 *   GRAD    u32 job | u32 layer | u32 first | list -> counters: gradient
 *           ciphertexts first.. decrypted on arrival (gradients above a frame)
 *   UPDATE  u32 job | u32 layer | u32 samples | list gacc (empty: the GRAD
 *           parts) | list W | list bias | list V -> list W | list bias |
 *           list W^T | list V
 *   FETCH   u32 job | u32 layer -> blob sealed to the MP (the kept W, bias)
 *   PUT     u32 job | list -> empty: ciphertexts staged for the next
 *           FORWARD / LOSS / BACK whose input list is then empty (u32 0);
 *           for inputs above one frame
 *   CLOSE   u32 job -> empty */
#define HETEE_MSG_REFINE_OPEN 0x40
#define HETEE_MSG_REFINE_FORWARD 0x41
#define HETEE_MSG_REFINE_LOSS 0x42
#define HETEE_MSG_REFINE_BACK 0x43
#define HETEE_MSG_REFINE_UPDATE 0x44
#define HETEE_MSG_REFINE_FETCH 0x45
#define HETEE_MSG_REFINE_GRAD 0x46
#define HETEE_MSG_REFINE_PUT 0x47
#define HETEE_MSG_REFINE_CLOSE 0x48
#define HETEE_REFINE_MAX_JOBS 4 /* open refine jobs per enclave */
/* Durable jobs (docs/refine.md "Durable enclave jobs"):
 *   SAVE    u32 job | u32 epoch | u32 next | u64 steps | u64 updates (the
 *           host's cursor) -> uid[16] | u64 samples | u64 updates | blob
 *           sealed job state (under a key derived from the sealing key)
 *   RESUME  uid[16] | blob spec | blob sealed job state -> u32 job | u32 epoch
 *           | u32 next | u64 steps | u64 updates | u32 t | t x (u8 held
 *           [| list W | list bias | list W^T | list V]) for each trained layer
 *   STATUS  u32 job -> uid[16] | u64 samples | u64 updates | u32 e | e x u64
 *           samples applied in each epoch the host closed (at a SAVE) */
#define HETEE_MSG_REFINE_SAVE 0x49
#define HETEE_MSG_REFINE_RESUME 0x4a
#define HETEE_MSG_REFINE_STATUS 0x4b
/* Validation set (docs/refine.md "Validation set"):
 *   VFORWARD u32 job | u32 layer | u32 count | list out -> list next_in | counters
 *   VLOSS    u32 job | u32 count | list logits | list labels -> counters
 *            (loss, correct predictions and the labels' digest accumulated)
 *   VREPORT  u32 job | u32 discard -> blob: the report sealed to the job's
 *            MP session (fixed size; discard = 1: no report, empty reply);
 *            the accumulator starts again either way */
#define HETEE_MSG_REFINE_VFORWARD 0x4c
#define HETEE_MSG_REFINE_VLOSS 0x4d
#define HETEE_MSG_REFINE_VREPORT 0x4e
/* The data provider's witness and the frozen layers (docs/refine.md "What
 * is checked"; formats in hemat/refine_internal.h):
 *   WITNESS u32 job | u32 count | u64 batch_no | dp_pk[32] | sig[64] |
 *           blob sealed -> counters (before FORWARD 0 of every step)
 *   FROZEN  u32 job | u32 layer | u32 first | list (W then bias of a
 *           frozen layer, in order) -> counters (once per job, before
 *           the first step) */
#define HETEE_MSG_REFINE_WITNESS 0x4f
#define HETEE_MSG_REFINE_FROZEN 0x50
/* A trained layer's weights of the job's start (docs/refine.md "What is
 * checked"):
 *   INIT    u32 job | u32 layer | list W | list bias | list momentum ->
 *           counters (once per job and trained layer, before the first
 *           step; digest checked against the MP's authorization) */
#define HETEE_MSG_REFINE_INIT 0x51
/* The model provider's witness of one validation chunk (docs/refine.md
 * "Validation set"; formats in hemat/refine_internal.h):
 *   VWITNESS u32 job | u32 count | u32 chunk | u32 nchunks | mp_pk[32] |
 *            sig[64] | blob sealed -> counters (before VFORWARD 0 of
 *            every chunk; chunks in order 0..nchunks-1 within a pass) */
#define HETEE_MSG_REFINE_VWITNESS 0x52
#define HETEE_MSG_REFINE_LAST HETEE_MSG_REFINE_VWITNESS

/* ---- input witness (bound jobs; docs/security.md "Integrity of the host's
 * work") ------------------------------------------------------------------
 * The data provider's stage-0 input values of one micro-batch, sealed to the
 * enclave's release key (crypto_box_seal, X25519 + XSalsa20-Poly1305):
 *   plain  = "hetee-witness-v1\0" | u32 model | u32 batch | u32 in_size |
 *            batch x in_size x f32 (little-endian; per sample in the plan's
 *            unpadded C, H, W order: exactly the values it encoded)
 *   sealed = crypto_box_seal(plain): HETEE_WITNESS_SEALED_LEN bytes, a
 *            function of the public batch and input size only
 *   digest = BLAKE2b-256("hetee-witness-d2\0" | u32 model | u32 batch |
 *            u64 len | sealed[0..48)), what the DP authorizes (session
 *            command 4 or a signed JOB_AUTH) in place of its ciphertexts'
 *            digest. sealed[0..48) is the box's ephemeral public key and
 *            its Poly1305 tag: the box's key is the X25519 product of that
 *            ephemeral key's secret (the DP's) and the release key's (the
 *            enclave's), so no one else can make another box with these 48
 *            bytes that opens (XSalsa20-Poly1305's ciphertext integrity),
 *            and the enclave opens the box before it uses a value. The
 *            first form hashed all sealed bytes ("hetee-witness-v1\0" |
 *            ... | sealed; hetee_witness_digest_v1): still accepted from
 *            authorizations made before, at the cost of that hash.
 * JOB_START with a witness: u32 model | u32 batch | u32 0 | u64 len | sealed
 * (the ciphertext form has u32 k >= 1 | k x (u64 len | ciphertext)).
 * Values must be finite with |v| <= HETEE_WITNESS_MAX_ABS. */
#define HETEE_WITNESS_TAG "hetee-witness-v1"
#define HETEE_WITNESS_DIGEST_TAG "hetee-witness-d2"
#define HETEE_WITNESS_HEAD 48 /* crypto_box_PUBLICKEYBYTES + crypto_box_MACBYTES */
#define HETEE_WITNESS_HDR (sizeof HETEE_WITNESS_TAG + 12)
#define HETEE_WITNESS_SEALBYTES 48 /* crypto_box_SEALBYTES */
#define HETEE_WITNESS_MAX_ABS 0x1p20
#define HETEE_WITNESS_SEALED_LEN(batch, in_size) \
  (HETEE_WITNESS_HDR + (size_t)(batch) * (size_t)(in_size) * 4u + HETEE_WITNESS_SEALBYTES)
/* The witness digest above, the one definition the data provider's client
 * (hetee_engine_witness_digest) and the enclave's JOB_START both use
 * (wire/refresh_spec.c). */
void hetee_witness_digest(uint32_t model, uint32_t batch, const uint8_t *sealed, size_t len, uint8_t out[32]);
/* The first form (all sealed bytes hashed), for authorizations made before
 * the digest above. */
void hetee_witness_digest_v1(uint32_t model, uint32_t batch, const uint8_t *sealed, size_t len, uint8_t out[32]);

/* ---- shared-memory transport (docs/enclave.md "Transport") --------------
 * The host creates a sealed memfd of HETEE_SHM_BYTES at spawn (fd
 * HETEE_SHM_FD of the launcher and of the enclave): a request area at
 * offset 0 and a reply area at HETEE_SHM_AREA, each as large as the frame
 * limit. The socket keeps carrying every frame header; a frame whose type
 * has HETEE_MSG_SHM or'ed in (HETEE_MSG_REPLY clear for requests, set for
 * replies) has as socket body only a descriptor, u64 length, and its body
 * is the first `length` bytes of the request (reply) area. Only the types
 * below may use it: requests whose body is public (ids, specs, plans,
 * ciphertexts the host holds anyway) and replies that are public (fresh
 * ciphertexts). The enclave copies a request body into its private buffer
 * before anything parses it (the host can write the region at any time).
 *   SHM_HELLO  (socket only) empty -> u64 area | the first
 *              HETEE_SHM_PROBE_BYTES of the request area as the enclave
 *              reads them (the host checks they are what it wrote);
 *              HETEE_ERR_STATE when the enclave has no region. */
#define HETEE_MSG_SHM 0x4000
/* Or'ed into a request type (not a reply's): a scheduling hint from the
 * host, "serve this request on the enclave's calling thread only" (its
 * pool's workers stay asleep). A host whose own threads keep the CPUs busy
 * meanwhile (pipelined micro-batches, overlapping runs) gains nothing from
 * the enclave's parallel loops and pays their wake-ups and contention in
 * enclave CPU time (docs/enclave.md, "Serial requests"). The enclave strips
 * it as it reads the frame; the reply's type does not carry it. Public:
 * the same work in a fixed order instead of the pool's. */
#define HETEE_MSG_SERIAL 0x2000
#define HETEE_MSG_SHM_HELLO 0x30
#define HETEE_SHM_FD 5
#define HETEE_SHM_AREA ((size_t)HETEE_FRAME_MAX_BODY)
#define HETEE_SHM_BYTES (2 * HETEE_SHM_AREA)
#define HETEE_SHM_DESC_BYTES 8
#define HETEE_SHM_PROBE_BYTES 16
#define HETEE_SHM_ENV "HETEE_ENCLAVE_SHM" /* "0": the host creates no region (socket only) */

static inline int hetee_msg_is_refine(uint16_t t) { return t >= HETEE_MSG_REFINE_OPEN && t <= HETEE_MSG_REFINE_LAST; }
/* Request types whose body is public: the enclave does not wipe them after
 * use, and only they may travel through the shared region. */
static inline int hetee_msg_public_body(uint16_t t) {
  return t == HETEE_MSG_REFRESH || t == HETEE_MSG_RELEASE || t == HETEE_MSG_MODEL_LOAD || t == HETEE_MSG_JOB_START ||
         t == HETEE_MSG_JOB_REFRESH || hetee_msg_is_refine(t); /* REFINE_*: ciphertexts, or sealed to the MP */
}
/* Request types whose reply is public (fresh ciphertexts, counters the host
 * is told anyway): not wiped, and only they may be answered in the region. */
static inline int hetee_msg_public_reply(uint16_t t) {
  return t == HETEE_MSG_REFRESH || t == HETEE_MSG_JOB_REFRESH || hetee_msg_is_refine(t);
}

/* ---- frames ------------------------------------------------------------- */
typedef struct hetee_frame {
  uint16_t version;
  uint16_t type;
  uint64_t id;
  uint8_t *body; /* malloc'd, may be NULL when len == 0 */
  size_t len;
} hetee_frame;

/* Writes one frame (header + body) completely. HETEE_ERR_IO on failure
 * (EPIPE/EOF: peer gone). */
int hetee_frame_write(int fd, uint16_t type, uint64_t id, const void *body, size_t len);
/* The same frame with its body given in parts (concatenated in order):
 * written with sendmsg/writev from the parts themselves, no copy. */
typedef struct hetee_frame_part {
  const void *p;
  size_t len;
} hetee_frame_part;
int hetee_frame_write_parts(int fd, uint16_t type, uint64_t id, const hetee_frame_part *parts, size_t nparts);
/* The header of a frame of `len` body bytes, for a caller that sends
 * several frames in one write (hetee_frame_write_raw: all of p[0..n)). */
void hetee_frame_header(uint8_t h[HETEE_FRAME_HEADER_BYTES], uint16_t type, uint64_t id, size_t len);
int hetee_frame_write_raw(int fd, const uint8_t *p, size_t n);
/* The same, and when type2 is not 0 an empty frame (type2, id2) behind it
 * in the same sendmsg (host side: the enclave's filter allows no sendmsg). */
int hetee_frame_write_parts_then(int fd, uint16_t type, uint64_t id, const hetee_frame_part *parts, size_t nparts,
                                 uint16_t type2, uint64_t id2);
/* Writes an error reply: body i32 status | u16 n | text. */
int hetee_frame_write_error(int fd, uint64_t id, int status, const char *detail);
/* Reads one frame. Returns 0, HETEE_ERR_IO (EOF or read error: the stream is
 * unusable), or a recoverable error after which the stream is still in sync:
 * HETEE_ERR_PROTOCOL (length field below the header size; the bytes it
 * announced were consumed), HETEE_ERR_LIMIT (body above max_body; drained
 * without buffering, f->type/id filled in). */
int hetee_frame_read(int fd, size_t max_body, hetee_frame *f);
/* The same, with the body read into a buffer the caller keeps between
 * frames (*buf, *cap bytes; replaced by a larger malloc'd one when a body
 * does not fit): f->body points into it, so f must not be
 * hetee_frame_clear'ed. A reader of many large frames (the enclave) then
 * neither allocates nor faults pages in per frame. */
int hetee_frame_read_into(int fd, size_t max_body, hetee_frame *f, uint8_t **buf, size_t *cap);
void hetee_frame_clear(hetee_frame *f);
/* Parses an error reply body; returns the (negative) status carried, or
 * HETEE_ERR_PROTOCOL if malformed, and records the detail with hetee_error. */
int hetee_frame_error_status(const hetee_frame *f);

/* Shared-memory transport (above): writes the header of a frame of `type`
 * (HETEE_MSG_SHM is or'ed in) whose `len`-byte body the caller has put in
 * the region, with the u64 descriptor as its socket body. */
int hetee_frame_write_shm(int fd, uint16_t type, uint64_t id, size_t len);
/* The same, and when type2 is not 0 an empty frame (type2, id2) behind it,
 * in one send (the host's STATS request that follows a call: the enclave,
 * woken once, finds both frames whole). */
int hetee_frame_write_shm_then(int fd, uint16_t type, uint64_t id, size_t len, uint16_t type2, uint64_t id2);
/* Reads the descriptor of a frame marked HETEE_MSG_SHM: its socket body
 * must be exactly HETEE_SHM_DESC_BYTES, the length <= max. HETEE_ERR_PROTOCOL
 * / HETEE_ERR_LIMIT otherwise (the stream stays in sync). */
int hetee_frame_shm_len(const hetee_frame *f, size_t max, size_t *len);

/* ---- session channel ---------------------------------------------------- */
#define HETEE_SESSION_ID_BYTES 16
#define HETEE_SESSION_OVERHEAD (HETEE_SESSION_ID_BYTES + 1 + 8 + 16)
#define HETEE_ROLE_MP 1
#define HETEE_ROLE_DP 2

/* Keys of one established session, kept in sodium_malloc'd (locked) memory. */
typedef struct hetee_chan {
  uint8_t id[HETEE_SESSION_ID_BYTES];
  uint8_t k_send[32], k_recv[32];
  uint8_t dir_send, dir_recv; /* 0: party -> enclave, 1: enclave -> party */
  uint64_t next_send, next_recv;
  uint8_t role;
  uint8_t party_pk[32];
} hetee_chan;

/* Transcript signed by the party and hashed into the session keys. */
void hetee_session_transcript(uint8_t role, const uint8_t id_pk[32], const uint8_t eph_pk[32],
                              const uint8_t evidence_hash[32], const uint8_t channel_pk[32],
                              uint8_t out[32]);
/* Derives both direction keys and the session id from the X25519 shared
 * secret and the transcript hash. is_enclave picks which key sends. */
int hetee_session_derive(const uint8_t shared[32], const uint8_t transcript[32], int is_enclave,
                         hetee_chan *c);
/* Seals msg for the peer: id | dir | u64 counter | AEAD(msg). */
int hetee_chan_seal(hetee_chan *c, const uint8_t *msg, size_t len, uint8_t **out, size_t *outlen);
/* Opens a sealed message. HETEE_ERR_AUTH (other session, wrong direction,
 * tampered), HETEE_ERR_REPLAY (counter not the next expected), HETEE_ERR_FORMAT. */
int hetee_chan_open(hetee_chan *c, const uint8_t *in, size_t len, uint8_t **msg, size_t *msglen);

/* ---- sealed state ------------------------------------------------------- */
/* "HTSL" | u16 version | u16 reserved | nonce[24] | AEAD(plain), AD = first 8 bytes. */
int hetee_seal_blob(const uint8_t key[32], const uint8_t *plain, size_t len, uint8_t **out, size_t *outlen);
/* HETEE_ERR_FORMAT / HETEE_ERR_VERSION / HETEE_ERR_AUTH (other key: another
 * enclave binary or platform). *plain is sodium_malloc'd: free with sodium_free. */
int hetee_unseal_blob(const uint8_t key[32], const uint8_t *in, size_t len, uint8_t **plain, size_t *plainlen);

/* ---- files -------------------------------------------------------------- */
/* temp file in the same directory, write, fsync, rename, fsync directory. */
int hetee_file_write_atomic(const char *path, const void *data, size_t len, int mode);
/* Reads a whole file (at most max bytes). HETEE_ERR_NOT_FOUND / IO / LIMIT. */
int hetee_file_read(const char *path, size_t max, uint8_t **data, size_t *len);

/* ---- refresh spec ------------------------------------------------------- */
/* A decoded spec; the arrays it points to are owned by the job. */
typedef struct hetee_refresh_job {
  hetee_refresh_spec spec;
  hetee_refresh_op ops[HETEE_REFRESH_MAX_OPS];
  uint32_t *in_map, *out_dst, *out_src;
  double *arrays[2 * HETEE_REFRESH_MAX_OPS];
  int final_shape[3];
} hetee_refresh_job;
/* Decodes and validates every size and index (against slots and the shapes
 * the ops produce). Errors: HETEE_ERR_FORMAT, HETEE_ERR_SHAPE, HETEE_ERR_LIMIT. */
int hetee_refresh_spec_decode(hetee_rbuf *r, size_t slots, hetee_refresh_job *job);
void hetee_refresh_job_free(hetee_refresh_job *job);
/* Element count after op i (shape propagation); fills shape_out. Errors:
 * HETEE_ERR_SHAPE with a detail naming the op. */
int hetee_refresh_shapes(const hetee_refresh_spec *spec, int shape_out[3]);

#endif
