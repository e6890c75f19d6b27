/*
 * pack.h — bit packing of residue rows for the "packed" ciphertext form
 * (serialize.c, flag 4; docs/ckks.md "Packed ciphertexts"): a row of n
 * residues mod q, each < 2^b with b = bitlen(q), is stored as a
 * little-endian bit stream (value j at bits [j b, (j + 1) b) of the row),
 * in ceil(n b / 8) bytes, the row's last byte padded with zero bits. Rows
 * are byte-aligned (for N >= 8, n b is a multiple of 8: no padding).
 * Residues are public ciphertext data: no constant-time requirement.
 */
#ifndef HETEE_CKKS_PACK_H
#define HETEE_CKKS_PACK_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of a packed row of n values of b bits. */
static inline size_t ckks_pack_row_bytes(size_t n, unsigned b) { return (n * b + 7) / 8; }

/* Bit length of q (1..64; 0 for q = 0). */
static inline unsigned ckks_pack_bits(uint64_t q) { return q ? 64u - (unsigned)__builtin_clzll(q) : 0u; }

/* Writes src[0..n) (each < 2^b, 20 <= b <= 62) into dst[0 .. row_bytes). */
void ckks_pack_row(uint8_t *dst, const uint64_t *src, size_t n, unsigned b);

/* Reads n values of b bits from src[0 .. row_bytes) into dst; returns
 * nonzero if a value is >= q or a padding bit is set (the encoding is not
 * canonical). Never reads outside src[0 .. row_bytes). Portable C (a loop
 * specialised per width: straight-line scalar code, one unaligned load per
 * value): 17-24 GB/s of words out at b = 40 and 60 on the reference machine
 * (docs/ckks.md), so there is no ISA-specific path. */
uint64_t ckks_unpack_row(uint64_t *dst, const uint8_t *src, size_t n, unsigned b, uint64_t q);

#endif
