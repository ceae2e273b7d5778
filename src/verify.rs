//! Checking a block's bytes against the multihash in its CID (SHA-2 and
//! BLAKE3; an identity CID carries its data inline), and the limits every
//! source of blocks shares.
//!
//! A leaf: it imports nothing of the crate, so the block service, the
//! fetchers and the CAR reader can all verify without depending on each
//! other.

use cid::Cid;
use multihash_codetable::{Code, MultihashDigest};

/// Largest block accepted from any source (the Bitswap and trustless
/// gateway conventions both cap blocks at 2 MiB).
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;

/// Multihash code of the identity "hash": the digest is the data itself.
pub const IDENTITY: u64 = 0x00;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("unsupported multihash code 0x{0:x}")]
    UnsupportedHash(u64),
    #[error("hash mismatch: the bytes do not hash to the CID")]
    Mismatch,
    #[error("block of {0} bytes exceeds the {max} byte limit", max = MAX_BLOCK_SIZE)]
    TooLarge(usize),
}

/// Accepts `data` only if it hashes to `cid` (identity CIDs compare the
/// inline digest).
pub fn verify_block(cid: &Cid, data: &[u8]) -> Result<(), VerifyError> {
    let expected = cid.hash();
    if expected.code() == IDENTITY {
        return if expected.digest() == data {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        };
    }
    if data.len() > MAX_BLOCK_SIZE {
        return Err(VerifyError::TooLarge(data.len()));
    }
    let code = Code::try_from(expected.code())
        .map_err(|_| VerifyError::UnsupportedHash(expected.code()))?;
    let actual = code.digest(data);
    // Truncated digests are allowed by multihash: compare the prefix the CID carries.
    let size = expected.size() as usize;
    if actual.digest().get(..size) == Some(expected.digest()) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_cid(data: &[u8]) -> Cid {
        Cid::new_v1(0x55, Code::Sha2_256.digest(data))
    }

    #[test]
    fn accepts_matching_bytes() {
        assert_eq!(verify_block(&raw_cid(b"hello"), b"hello"), Ok(()));
    }

    #[test]
    fn rejects_tampered_bytes() {
        assert_eq!(
            verify_block(&raw_cid(b"hello"), b"hellO"),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn identity_compares_inline_digest() {
        let cid = Cid::new_v1(0x55, multihash::Multihash::wrap(0, b"inline").unwrap());
        assert_eq!(verify_block(&cid, b"inline"), Ok(()));
        assert_eq!(verify_block(&cid, b"other"), Err(VerifyError::Mismatch));
    }

    #[test]
    fn blake3_is_supported() {
        let cid = Cid::new_v1(0x55, Code::Blake3_256.digest(b"x"));
        assert_eq!(verify_block(&cid, b"x"), Ok(()));
    }
}
