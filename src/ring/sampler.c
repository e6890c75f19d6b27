/*
 * sampler.c — samplers over the PRG stream (prg.c).
 *
 * uniform  for each output: read B = ceil(b / 8) bytes (b = bitlen(q): 5
 *          for a 40-bit prime, 8 for a 60-bit one), little-endian word w,
 *          keep its low b bits, accept if < q else draw again (rejection:
 *          exactly uniform, no modulo bias; acceptance q / 2^b > 1/2). The
 *          accept/reject decision is on public randomness only (the
 *          uniform `a` is public). Until format version 2 (docs/ckks.md)
 *          every candidate took 8 bytes.
 * ternary  for each output: read 1 byte x, reject x = 255, output x mod 3 - 1
 *          (255 = 3 * 85 so the three values are exactly equiprobable; the
 *          rejection reveals nothing about the output).
 * cbd      centered binomial with k = 21 (Kyber-style, Alkim et al. 2016):
 *          read 6 bytes, little-endian 48-bit word w, output
 *          popcount(w & (2^21-1)) - popcount((w >> 21) & (2^21-1)); variance
 *          k/2 = 10.5, sigma ~ 3.24. Popcount by SWAR arithmetic, no table;
 *          8 samples at a time with AVX-512BW when the ring layer runs
 *          AVX-512 (the same integers; HETEE_ISA=ref pins the scalar code).
 */
#include "ring_internal.h"

#include <sodium.h>
#include <string.h>

/* Little-endian 64-bit word at b (one load on little-endian hosts). */
static inline uint64_t load_le64(const uint8_t *b) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint64_t w;
  memcpy(&w, b, 8);
  return w;
#else
  uint64_t w = 0;
  for (int i = 0; i < 8; i++)
    w |= (uint64_t)b[i] << (8 * i);
  return w;
#endif
}

#if (defined(__x86_64__) || defined(__i386__)) && !defined(HETEE_RING_NO_SIMD) && defined(__GNUC__)
#define SAMPLER_AVX512 1
#include <immintrin.h>

/* cbd_of for 8 samples at once (AVX-512F/BW): the 48 bytes at src (64 must
 * be readable) spread by vpermw into eight 64-bit lanes of three 16-bit
 * words each, the two 21-bit halves counted with the same SWAR steps per
 * lane and summed by vpsadbw, the difference narrowed to 8 bytes. The same
 * integers as cbd_of; no branch or index depends on the bits. */
__attribute__((target("avx512f,avx512bw"))) static void cbd8_avx512(const uint8_t *src, int8_t *out) {
  const __m512i idx = _mm512_set_epi16(31, 23, 22, 21, 31, 20, 19, 18, 31, 17, 16, 15, 31, 14, 13, 12, 31, 11, 10, 9,
                                       31, 8, 7, 6, 31, 5, 4, 3, 31, 2, 1, 0);
  const __m512i k21 = _mm512_set1_epi64((1 << HETEE_CBD_K) - 1), m1 = _mm512_set1_epi64(0x5555555555555555ll),
                m2 = _mm512_set1_epi64(0x3333333333333333ll), m4 = _mm512_set1_epi64(0x0f0f0f0f0f0f0f0fll),
                zero = _mm512_setzero_si512();
  __m512i y = _mm512_permutexvar_epi16(idx, _mm512_loadu_si512((const void *)src));
  __m512i v[2] = {_mm512_and_si512(y, k21), _mm512_and_si512(_mm512_srli_epi64(y, HETEE_CBD_K), k21)};
  for (int h = 0; h < 2; h++) {
    __m512i x = v[h];
    x = _mm512_sub_epi64(x, _mm512_and_si512(_mm512_srli_epi64(x, 1), m1));
    x = _mm512_add_epi64(_mm512_and_si512(x, m2), _mm512_and_si512(_mm512_srli_epi64(x, 2), m2));
    x = _mm512_and_si512(_mm512_add_epi64(x, _mm512_srli_epi64(x, 4)), m4);
    v[h] = _mm512_sad_epu8(x, zero); /* byte counts summed per lane */
  }
  _mm_storel_epi64((__m128i *)(void *)out, _mm512_cvtepi64_epi8(_mm512_sub_epi64(v[0], v[1])));
}

/* AVX-512 F and BW with the ring layer's AVX-512 pick (HETEE_ISA=ref pins
 * the scalar code). */
static int sampler_use_avx512(void) {
  static int use = -1; /* racing first calls store the same value */
  if (use < 0) use = hetee_ring_isa() == HETEE_ISA_AVX512 && __builtin_cpu_supports("avx512bw");
  return use;
}
/* The uniform rule for k whole candidates of B bytes at src, 8 at a time
 * (AVX-512F): candidate t is the 8 bytes at src + B t (one load for B = 8,
 * a gather of eight otherwise; the caller guarantees B (k - 1) + 8 readable
 * bytes), masked; those below q are stored contiguously from out
 * (vpcompressq), the count returned. Public data only (the uniform `a`). */
__attribute__((target("avx512f"))) static size_t uniform8_avx512(const uint8_t *src, size_t k, size_t B, uint64_t mask,
                                                                 uint64_t q, uint64_t *out) {
  const __m512i vm = _mm512_set1_epi64((long long)mask), vq = _mm512_set1_epi64((long long)q);
  const long long b = (long long)B;
  const __m512i off = _mm512_set_epi64(7 * b, 6 * b, 5 * b, 4 * b, 3 * b, 2 * b, b, 0);
  size_t j = 0;
  for (size_t t = 0; t + 8 <= k; t += 8) {
    const uint8_t *g = src + B * t;
    __m512i w = B == 8 ? _mm512_loadu_si512((const void *)g) : _mm512_i64gather_epi64(off, (const void *)g, 1);
    w = _mm512_and_si512(w, vm);
    __mmask8 keep = _mm512_cmplt_epu64_mask(w, vq);
    _mm512_mask_compressstoreu_epi64((void *)(out + j), keep, w);
    j += (size_t)__builtin_popcount((unsigned)keep);
  }
  return j;
}
#endif

/* Candidates are taken straight from the PRG buffer: a run of k of them
 * (each read as the 8 bytes at its start, masked: so a candidate is taken
 * here only while those 8 bytes lie inside the buffer), each stored at
 * out[j] and kept by advancing j when it is < q (k is at most the number of
 * outputs still missing, so a store never passes out[n-1]). The stream
 * position is kept in a local, not in *p, which the stores to out could
 * alias. A candidate near the end of the buffer goes through
 * hetee_prg_bytes: the same bytes are read in the same order, so the output
 * is the documented rule's. */
void hetee_sample_uniform(hetee_prg *p, const hetee_modulus *m, uint64_t *out, size_t n) {
  const uint64_t q = m->q;
  const uint64_t mask = (m->bits >= 64) ? ~(uint64_t)0 : (((uint64_t)1 << m->bits) - 1);
  const size_t B = ((size_t)m->bits + 7) / 8; /* bytes per candidate */
  size_t i = 0;
  while (i < n) {
    size_t pos = p->pos, left = p->len - pos;
    if (left < 8) { /* empty buffer or a candidate near its end */
      uint8_t b[8] = {0};
      hetee_prg_bytes(p, b, B);
      uint64_t w = load_le64(b) & mask;
      if (w < q)
        out[i++] = w;
      continue;
    }
    size_t avail = (left - 8) / B + 1; /* candidates t with B t + 8 <= left */
    size_t k = n - i < avail ? n - i : avail, j = i, t = 0;
    const uint8_t *src = p->buf + pos;
#ifdef SAMPLER_AVX512
    if (sampler_use_avx512() && k >= 8) { /* whole groups of 8 candidates; the rest below */
      j += uniform8_avx512(src, k, B, mask, q, out + i);
      t = k & ~(size_t)7;
    }
#endif
    for (; t < k; t++) {
      uint64_t w = load_le64(src + B * t) & mask;
      out[j] = w;
      j += (size_t)(w < q); /* public: the uniform polynomial is public */
    }
    p->pos = pos + B * k;
    i = j;
  }
}

void hetee_sample_ternary(hetee_prg *p, int8_t *out, size_t n) {
  uint8_t buf[256];
  size_t have = 0, pos = 0;
  for (size_t i = 0; i < n;) {
    if (pos == have) {
      have = sizeof buf;
      hetee_prg_bytes(p, buf, have);
      pos = 0;
    }
    uint32_t x = buf[pos++];
    if (x == 255)
      continue; /* public: independent of the output value */
    /* x mod 3 without a data-dependent division: q3 = floor(x / 3) */
    uint32_t q3 = (x * 171u) >> 9;
    out[i++] = (int8_t)((int32_t)(x - 3 * q3) - 1);
  }
  sodium_memzero(buf, sizeof buf);
}

/* popcount(w & (2^21-1)) - popcount((w >> 21) & (2^21-1)) for a 48-bit w:
 * both halves in one SWAR popcount (bits 0..20 and 32..52 of x), then the
 * byte counts of each 32-bit half summed (at most 21, fits a byte). No
 * table, no branch. */
static inline int cbd_of(uint64_t w) {
  const uint64_t k21 = ((uint64_t)1 << HETEE_CBD_K) - 1;
  uint64_t x = (w & k21) | (((w >> HETEE_CBD_K) & k21) << 32);
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  x = x + (x >> 8);
  x = x + (x >> 16);
  return (int)(x & 0xff) - (int)((x >> 32) & 0xff);
}


/* Samples are read straight from the PRG buffer (6 bytes each, loaded as
 * an 8-byte word whose top 2 bytes are dropped, so a sample is taken here
 * only while those 8 bytes lie inside the buffer); one that straddles its
 * end goes through hetee_prg_bytes. The keystream bytes are left in the
 * PRG buffer, which the caller wipes with the PRG (hetee_prg_wipe). */
void hetee_sample_cbd(hetee_prg *p, int8_t *out, size_t n) {
  const uint64_t m48 = ((uint64_t)1 << 48) - 1;
  size_t i = 0;
  while (i < n) {
    size_t pos = p->pos, avail = p->len - pos;
    if (avail < 8) {
      uint8_t b[8] = {0};
      hetee_prg_bytes(p, b, 6);
      out[i++] = (int8_t)cbd_of(load_le64(b) & m48);
      sodium_memzero(b, sizeof b);
      continue;
    }
    size_t k = (avail - 2) / 6; /* samples t with 6t + 8 <= avail */
    if (k > n - i)
      k = n - i;
    const uint8_t *src = p->buf + pos;
    size_t t = 0;
#ifdef SAMPLER_AVX512
    /* 8 samples read 64 bytes: while 6 (t + 8) + 16 <= avail */
    if (sampler_use_avx512())
      for (; t + 8 <= k && 6 * t + 64 <= avail; t += 8) cbd8_avx512(src + 6 * t, out + i + t);
#endif
    for (; t < k; t++)
      out[i + t] = (int8_t)cbd_of(load_le64(src + 6 * t) & m48);
    p->pos = pos + 6 * k;
    i += k;
  }
}
