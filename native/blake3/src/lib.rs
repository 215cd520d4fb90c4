//! BLAKE3 for lifeboat, as a node-api addon, with a backup's two other per-byte loops: the chunker's
//! gear-hash scan and Redis's CRC-64.
//!
//! Why by hand: no maintained npm package offers BLAKE3 (or CRC-64/Jones) as a native addon that
//! builds from source offline (the WebAssembly ones run at a fraction of the speed: no AVX-512). This
//! file is only the glue; the hashing is the official `blake3` crate, with its SIMD back ends
//! (AVX-512, AVX2, SSE4.1) chosen at run time, and the CRC the `crc-fast` crate.
//!
//! Exposed to JavaScript (camelCase):
//!   keyedHashHex(key, data)   keyed BLAKE3 of data (key: 32 bytes), 64 hex digits: a blob id
//!   hashHex(data)             BLAKE3 of data, 64 hex digits
//!   new Hasher()              an incremental BLAKE3: update(data), digestHex()
//!   gearScan(gear, data, position, end, mask, state)
//!                             the chunker's gear hash rolled over data[position, end) (not BLAKE3;
//!                             here because it is the other per-byte loop of a backup: see
//!                             src/repository/chunker.ts)
//!   new Crc64()               an incremental CRC-64/Jones as Redis computes it (the `crc-fast`
//!                             crate's CRC-64/REDIS: PCLMULQDQ folding, chosen at run time, with a
//!                             table fallback): update(data), bytes() (8 bytes, little-endian, as an
//!                             RDB stores it); src/engines/redis/rdb/crc64.ts
//!   crc64Into(data, out)      the same CRC of data at once, written into out[0..8] (no object: a
//!                             RESTORE payload's trailer, one per key of an online restore)
//!   copyBytes(target, offset, source)
//!                             source copied into target at offset (as many bytes as fit), the count:
//!                             V8 copies to or from a SharedArrayBuffer with a relaxed-atomic loop
//!                             (Buffer.copy, TypedArray.set); this is a memmove
//! `data` may be any Uint8Array view, including views of a SharedArrayBuffer (read in place, never
//! kept after the call returns).
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn key_of(key: &[u8]) -> Result<[u8; blake3::KEY_LEN]> {
    key.try_into().map_err(|_| {
        Error::new(
            Status::InvalidArg,
            format!("a BLAKE3 key has {} bytes, not {}", blake3::KEY_LEN, key.len()),
        )
    })
}

#[napi]
pub fn keyed_hash_hex(key: &[u8], data: &[u8]) -> Result<String> {
    Ok(blake3::keyed_hash(&key_of(key)?, data).to_hex().to_string())
}

#[napi]
pub fn hash_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

#[napi]
pub struct Hasher {
    inner: blake3::Hasher,
}

#[napi]
impl Hasher {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Hasher { inner: blake3::Hasher::new() }
    }

    #[napi]
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The digest of everything updated so far (the hasher may go on being updated).
    #[napi]
    pub fn digest_hex(&self) -> String {
        self.inner.finalize().to_hex().to_string()
    }
}

#[napi]
pub struct Crc64 {
    inner: CrcDigest,
}

#[napi]
impl Crc64 {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Crc64 { inner: CrcDigest::new(CrcAlgorithm::Crc64Redis) }
    }

    #[napi]
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The CRC of everything updated so far, as 8 little-endian bytes (the way Redis stores it).
    #[napi]
    pub fn bytes(&self) -> Buffer {
        self.inner.finalize().to_le_bytes().to_vec().into()
    }
}

/// CRC-64/Jones of data, as 8 little-endian bytes written into out[0..8].
#[napi]
pub fn crc64_into(data: &[u8], mut out: Uint8Array) -> Result<()> {
    if out.len() < 8 {
        return Err(Error::new(
            Status::InvalidArg,
            format!("a CRC-64 needs 8 bytes, the output has {}", out.len()),
        ));
    }
    let crc = crc_fast::checksum(CrcAlgorithm::Crc64Redis, data);
    out[..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// FastCDC's gear hash, h = (h << 1) + gear[byte] over 32 bits, rolled over data[position, end)
/// from the hash in state[0]: the position just after the first byte where (h & mask) == 0, or
/// -1 - end when there is none. The hash at that point is left in state[0]. `mask` is a mask of the
/// word's top bits (at least one). The same cuts as the one-byte FastCDC of
/// src/repository/chunker.test.ts; ~2x the speed of the unrolled JavaScript loop it replaces.
#[napi]
pub fn gear_scan(
    gear: Int32Array,
    data: &[u8],
    position: f64,
    end: f64,
    mask: i32,
    mut state: Int32Array,
) -> Result<f64> {
    let gear: &[i32; 256] = gear
        .as_ref()
        .try_into()
        .map_err(|_| Error::new(Status::InvalidArg, "a gear table has 256 entries".to_string()))?;
    // Numbers, not u32: node-api would wrap a position of 4 GiB or more silently.
    let whole = |value: f64| value >= 0.0 && value.fract() == 0.0 && value <= data.len() as f64;
    if !whole(position) || !whole(end) || position > end {
        return Err(Error::new(
            Status::InvalidArg,
            format!("bad gear scan range {position}..{end} of {} bytes", data.len()),
        ));
    }
    let (position, end) = (position as usize, end as usize);
    if state.len() != 1 {
        return Err(Error::new(Status::InvalidArg, "the gear scan's state is one word".to_string()));
    }
    let mut hash = state[0];
    let bytes = &data[position..end];
    // The chunker's masks are the top bits of the word: (h & mask) == 0 is then h < 2^(32 - bits),
    // unsigned.
    let limit = (!(mask as u32)).wrapping_add(1);
    if mask == 0 || !limit.is_power_of_two() {
        return Err(Error::new(Status::InvalidArg, format!("mask {mask:#x} is not the top bits of a word")));
    }
    // Eight bytes a step: h8 = (h << 8) + (the step's bytes' gear words, shifted), so the chain from one
    // step's hash to the next is one shift and one add; the hashes at the bytes in between (for the
    // cut test) are computed beside it. Every value equals the one-byte loop's (wrapping arithmetic).
    let mut steps = bytes.chunks_exact(8);
    let mut at = 0usize;
    for step in &mut steps {
        let mut t = [0i32; 8];
        let mut acc = 0i32;
        for k in 0..8 {
            acc = acc.wrapping_shl(1).wrapping_add(gear[step[k] as usize]);
            t[k] = acc;
        }
        let mut h = [0u32; 8];
        let mut low = u32::MAX;
        for k in 0..8 {
            h[k] = hash.wrapping_shl(k as u32 + 1).wrapping_add(t[k]) as u32;
            low = low.min(h[k]);
        }
        if low < limit {
            for (k, &value) in h.iter().enumerate() {
                if value < limit {
                    state[0] = value as i32;
                    return Ok((position + at + k + 1) as f64);
                }
            }
        }
        hash = h[7] as i32;
        at += 8;
    }
    for &byte in steps.remainder() {
        hash = hash.wrapping_shl(1).wrapping_add(gear[byte as usize]);
        at += 1;
        if (hash as u32) < limit {
            state[0] = hash;
            return Ok((position + at) as f64);
        }
    }
    state[0] = hash;
    Ok(-1.0 - end as f64)
}

/// Copies source into target[offset..] (as many bytes as fit) and returns the count. Either may view
/// a SharedArrayBuffer, and both the same memory: the copy is a memmove through raw pointers. (napi-rs
/// hands the views over as slices, which may alias, and shared memory may be written by another
/// thread meanwhile, as everywhere in this addon: only the raw pointers are used, and lifeboat never
/// writes memory a copy is reading.)
#[napi]
pub fn copy_bytes(mut target: Uint8Array, offset: f64, source: Uint8Array) -> Result<f64> {
    let target_length = target.len();
    if !(offset >= 0.0 && offset.fract() == 0.0 && offset <= target_length as f64) {
        return Err(Error::new(
            Status::InvalidArg,
            format!("offset {offset} is outside a target of {target_length} bytes"),
        ));
    }
    let offset = offset as usize;
    let count = source.len().min(target_length - offset);
    let from = source.as_ptr();
    let to = target.as_mut_ptr();
    // SAFETY: `from` has source.len() >= count readable bytes and `to + offset` has
    // target_length - offset >= count writable bytes (both live for the call: node-api keeps the
    // views' memory); ptr::copy allows the ranges to overlap.
    unsafe { std::ptr::copy(from, to.add(offset), count) };
    Ok(count as f64)
}
