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
