//! BLAKE3 for lifeboat, as a node-api addon.
//!
//! Why by hand: no maintained npm package offers BLAKE3 as a native addon that builds from source
//! offline (the WebAssembly ones run at a fraction of the speed: no AVX-512). This file is only the
//! glue; the hashing is the official `blake3` crate, with its SIMD back ends (AVX-512, AVX2, SSE4.1)
//! chosen at run time.
//!
//! Exposed to JavaScript (camelCase):
//!   keyedHashHex(key, data)   keyed BLAKE3 of data (key: 32 bytes), 64 hex digits: a blob id
//!   hashHex(data)             BLAKE3 of data, 64 hex digits
//!   new Hasher()              an incremental BLAKE3: update(data), digestHex()
//!   subtreeChainingValues(data, offset)
//!                             the chaining values of the largest aligned subtrees that tile
//!                             data, which starts at byte `offset` of a longer input and does not
//!                             hold its last chunk: records of 8 bytes (the subtree's length,
//!                             little-endian) and 32 (its chaining value)
//!   chainingValue(data, offset)
//!                             the chaining value of one subtree or chunk (the last may be short)
//!   mergeChainingValues(left, right, root)
//!                             a parent's chaining value, or with `root` its 32-byte hash
//! The last three hash one long input in parts, in worker threads, and join the parts (the tree
//! structure BLAKE3 defines: `blake3::hazmat`). Every shape rule is checked here and answered with an
//! error, never a panic: a wrong shape gives a hash that simply does not match.
//! `data` may be any Uint8Array view, including views of a SharedArrayBuffer (read in place, never
//! kept after the call returns).
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

const CHUNK: u64 = blake3::CHUNK_LEN as u64;

fn offset_of(offset: f64) -> Result<u64> {
    if !(offset >= 0.0 && offset <= 9007199254740991.0 && offset.fract() == 0.0) {
        return Err(Error::new(Status::InvalidArg, format!("bad input offset {offset}")));
    }
    let offset = offset as u64;
    if offset % CHUNK != 0 {
        return Err(Error::new(Status::InvalidArg, format!("input offset {offset} is not a multiple of {CHUNK}")));
    }
    Ok(offset)
}

/// The largest subtree that may start at `offset` and fit in `available` bytes (available >= CHUNK):
/// a power-of-two number of chunks that divides the chunk index (any, at offset 0).
fn subtree_len(offset: u64, available: u64) -> u64 {
    let fit = CHUNK << (63 - (available / CHUNK).leading_zeros());
    match blake3::hazmat::max_subtree_len(offset) {
        Some(max) => max.min(fit),
        None => fit,
    }
}

fn non_root_cv(data: &[u8], offset: u64) -> [u8; 32] {
    use blake3::hazmat::HasherExt;
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    hasher.update(data);
    hasher.finalize_non_root()
}

#[napi]
pub fn subtree_chaining_values(data: &[u8], offset: f64) -> Result<Buffer> {
    let mut at = offset_of(offset)?;
    let len = data.len() as u64;
    if len % CHUNK != 0 {
        return Err(Error::new(Status::InvalidArg, format!("{len} bytes are not whole chunks")));
    }
    let end = at + len;
    let mut out = Vec::with_capacity(40 * 64);
    while at < end {
        let size = subtree_len(at, end - at);
        let start = (at - (end - len)) as usize;
        let cv = non_root_cv(&data[start..start + size as usize], at);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&cv);
        at += size;
    }
    Ok(out.into())
}

#[napi]
pub fn chaining_value(data: &[u8], offset: f64) -> Result<Buffer> {
    let offset = offset_of(offset)?;
    let len = data.len() as u64;
    let max = blake3::hazmat::max_subtree_len(offset).unwrap_or(u64::MAX);
    if len == 0 || len > max {
        return Err(Error::new(
            Status::InvalidArg,
            format!("{len} bytes cannot form the subtree at offset {offset}"),
        ));
    }
    Ok(non_root_cv(data, offset).to_vec().into())
}

#[napi]
pub fn merge_chaining_values(left: &[u8], right: &[u8], root: bool) -> Result<Buffer> {
    let cv = |value: &[u8]| -> Result<[u8; 32]> {
        value
            .try_into()
            .map_err(|_| Error::new(Status::InvalidArg, format!("a chaining value has 32 bytes, not {}", value.len())))
    };
    let (left, right) = (cv(left)?, cv(right)?);
    let mode = blake3::hazmat::Mode::Hash;
    Ok(if root {
        blake3::hazmat::merge_subtrees_root(&left, &right, mode).as_bytes().to_vec().into()
    } else {
        blake3::hazmat::merge_subtrees_non_root(&left, &right, mode).to_vec().into()
    })
}
