//! The Bitswap wire format: protocol names, the protobuf message (written
//! as prost structs, so no protoc is needed), and length-prefixed framing.
//! Nothing here decides anything.

use bytes::Bytes;
use cid::Cid;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use multihash_codetable::{Code, MultihashDigest};
use prost::Message as _;

use crate::fetch::WantKind;

pub const BITSWAP_120: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");
pub const BITSWAP_110: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.1.0");
pub const BITSWAP_100: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.0.0");
/// Preferred first.
pub const PROTOCOLS: [StreamProtocol; 3] = [BITSWAP_120, BITSWAP_110, BITSWAP_100];

/// Largest message read or written (Go and JS peers use 4 MiB).
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(message, optional, tag = "1")]
    pub wantlist: Option<Wantlist>,
    /// Bitswap 1.0.0 blocks: data only (CIDv0 implied).
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub blocks: Vec<Bytes>,
    #[prost(message, repeated, tag = "3")]
    pub payload: Vec<Block>,
    #[prost(message, repeated, tag = "4")]
    pub block_presences: Vec<BlockPresence>,
    #[prost(int32, tag = "5")]
    pub pending_bytes: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Wantlist {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<Entry>,
    #[prost(bool, tag = "2")]
    pub full: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// The CID's bytes.
    #[prost(bytes = "bytes", tag = "1")]
    pub block: Bytes,
    #[prost(int32, tag = "2")]
    pub priority: i32,
    #[prost(bool, tag = "3")]
    pub cancel: bool,
    #[prost(enumeration = "WantType", tag = "4")]
    pub want_type: i32,
    #[prost(bool, tag = "5")]
    pub send_dont_have: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
pub enum WantType {
    Block = 0,
    Have = 1,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Block {
    /// CID prefix: version, codec, multihash code and length, as varints.
    #[prost(bytes = "bytes", tag = "1")]
    pub prefix: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub data: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockPresence {
    #[prost(bytes = "bytes", tag = "1")]
    pub cid: Bytes,
    #[prost(enumeration = "PresenceType", tag = "2")]
    pub r#type: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
pub enum PresenceType {
    Have = 0,
    DontHave = 1,
}

impl From<WantKind> for WantType {
    fn from(kind: WantKind) -> WantType {
        match kind {
            WantKind::Block => WantType::Block,
            WantKind::Have => WantType::Have,
        }
    }
}

/// A want or a cancel for one CID.
pub fn want_entry(cid: &Cid, want_type: WantType, cancel: bool) -> Entry {
    Entry {
        block: Bytes::from(cid.to_bytes()),
        priority: 1,
        cancel,
        want_type: want_type as i32,
        send_dont_have: !cancel,
    }
}

/// The prefix Bitswap 1.1+ sends with a block.
pub fn cid_prefix(cid: &Cid) -> Bytes {
    let mut out = Vec::with_capacity(8);
    let mut buf = unsigned_varint::encode::u64_buffer();
    let version: u64 = match cid.version() {
        cid::Version::V0 => 0,
        cid::Version::V1 => 1,
    };
    for value in [
        version,
        cid.codec(),
        cid.hash().code(),
        u64::from(cid.hash().size()),
    ] {
        out.extend_from_slice(unsigned_varint::encode::u64(value, &mut buf));
    }
    Bytes::from(out)
}

/// The CID a block claims, from its prefix and data. The data is hashed
/// with the prefix's hash function, so the result always matches the data:
/// what is left to check is whether anybody wanted that CID.
pub fn cid_of_block(prefix: &[u8], data: &[u8]) -> Result<Cid, String> {
    let mut rest = prefix;
    let mut next = || -> Result<u64, String> {
        let (value, tail) =
            unsigned_varint::decode::u64(rest).map_err(|e| format!("bad prefix: {e}"))?;
        rest = tail;
        Ok(value)
    };
    let (version, codec, hash_code, hash_len) = (next()?, next()?, next()?, next()?);
    let code =
        Code::try_from(hash_code).map_err(|_| format!("unsupported hash 0x{hash_code:x}"))?;
    let digest = code.digest(data);
    let truncated = digest.truncate(hash_len.min(64) as u8);
    match version {
        0 => Cid::new_v0(truncated).map_err(|e| e.to_string()),
        1 => Ok(Cid::new_v1(codec, truncated)),
        v => Err(format!("unknown CID version {v}")),
    }
}

/// CID of a Bitswap 1.0.0 block (no prefix: CIDv0, sha2-256 dag-pb).
pub fn cid_of_v0_block(data: &[u8]) -> Cid {
    Cid::new_v0(Code::Sha2_256.digest(data)).expect("sha2-256 makes a CIDv0")
}

/// Writes one length-prefixed message.
pub async fn write_message(
    io: &mut (impl AsyncWrite + Unpin),
    message: &Message,
) -> std::io::Result<()> {
    let body = message.encode_to_vec();
    let mut buf = unsigned_varint::encode::usize_buffer();
    let len = unsigned_varint::encode::usize(body.len(), &mut buf);
    io.write_all(len).await?;
    io.write_all(&body).await?;
    io.flush().await
}

/// Reads one length-prefixed message; `None` at a clean end of stream.
pub async fn read_message(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Message>> {
    match read_frame(io).await? {
        Some(body) => decode_message(body).map(Some),
        None => Ok(None),
    }
}

/// Decodes a message read by [`read_frame`]; its blocks share `body`'s
/// memory rather than being copied out of it.
pub fn decode_message(body: Bytes) -> std::io::Result<Message> {
    Message::decode(body).map_err(std::io::Error::other)
}

/// Room for a message body, asked for as its bytes arrive: the reader
/// calls [`FrameBudget::reserve`] before it buffers each step of a body, and
/// an error ends the read. The policy behind it is not the wire format's.
pub trait FrameBudget {
    fn reserve(
        &mut self,
        bytes: usize,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// No budget beyond [`MAX_MESSAGE_SIZE`] (for peers the test suite runs).
pub struct Unbudgeted;

impl FrameBudget for Unbudgeted {
    async fn reserve(&mut self, _bytes: usize) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads one length-prefixed message body without decoding it; `None` at a
/// clean end of stream.
pub async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Bytes>> {
    match read_length(io).await? {
        Some(len) => read_body(io, len, &mut Unbudgeted).await.map(Some),
        None => Ok(None),
    }
}

/// Reads the length prefix of the next message; `None` at a clean end of
/// stream, an error past [`MAX_MESSAGE_SIZE`].
pub async fn read_length(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<usize>> {
    let mut len: usize = 0;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        if io.read(&mut byte).await? == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        len |= usize::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            break;
        }
        if i == 9 {
            return Err(std::io::Error::other("length prefix too long"));
        }
    }
    if len > MAX_MESSAGE_SIZE {
        return Err(std::io::Error::other(format!(
            "message of {len} bytes exceeds {MAX_MESSAGE_SIZE}"
        )));
    }
    Ok(Some(len))
}

/// Reads a message body of `len` bytes (from [`read_length`]), taking room
/// from `budget` for each step before buffering it.
pub async fn read_body(
    io: &mut (impl AsyncRead + Unpin),
    len: usize,
    budget: &mut impl FrameBudget,
) -> std::io::Result<Bytes> {
    // Filled as the bytes arrive: the capacity is only reserved, so a peer
    // that announces 4 MiB and sends little holds (and is charged) little.
    let mut body = Vec::with_capacity(len);
    let mut filled = 0;
    while filled < len {
        if filled == body.len() {
            let step = READ_STEP.min(len - filled);
            budget.reserve(step).await?;
            body.resize(filled + step, 0);
        }
        let read = io.read(&mut body[filled..]).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        filled += read;
    }
    Ok(Bytes::from(body))
}

/// Most bytes of a message body read (and zeroed first) at a time.
const READ_STEP: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_round_trips() {
        for cid in [
            Cid::new_v1(0x55, Code::Sha2_256.digest(b"data")),
            Cid::new_v0(Code::Sha2_256.digest(b"data")).unwrap(),
            Cid::new_v1(0x71, Code::Blake3_256.digest(b"data")),
        ] {
            assert_eq!(cid_of_block(&cid_prefix(&cid), b"data").unwrap(), cid);
        }
        assert!(cid_of_block(&[0xff], b"x").is_err());
    }

    #[tokio::test]
    async fn framing_round_trips_and_bounds() {
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(b"x"));
        let message = Message {
            wantlist: Some(Wantlist {
                entries: vec![want_entry(&cid, WantType::Have, false)],
                full: false,
            }),
            ..Default::default()
        };
        let mut wire = Vec::new();
        write_message(&mut futures::io::Cursor::new(&mut wire), &message)
            .await
            .unwrap();
        let mut reader = futures::io::Cursor::new(wire.clone());
        assert_eq!(read_message(&mut reader).await.unwrap(), Some(message));

        let mut huge = Vec::new();
        let mut buf = unsigned_varint::encode::usize_buffer();
        huge.extend_from_slice(unsigned_varint::encode::usize(
            MAX_MESSAGE_SIZE + 1,
            &mut buf,
        ));
        assert!(read_message(&mut futures::io::Cursor::new(huge))
            .await
            .is_err());
        assert_eq!(
            read_message(&mut futures::io::Cursor::new(Vec::new()))
                .await
                .unwrap(),
            None
        );

        // A message that ends before its announced length (read in steps).
        let mut cut = Vec::new();
        cut.extend_from_slice(unsigned_varint::encode::usize(200_000, &mut buf));
        cut.extend_from_slice(&[0u8; 100_000]);
        let error = read_frame(&mut futures::io::Cursor::new(cut))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        // A long one whole.
        let mut long = Vec::new();
        long.extend_from_slice(unsigned_varint::encode::usize(200_000, &mut buf));
        long.extend((0..200_000u32).map(|i| i as u8));
        let body = read_frame(&mut futures::io::Cursor::new(long.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&body[..], &long[long.len() - 200_000..]);
    }

    /// Grants room up to a cap, recording each request.
    struct Capped {
        cap: usize,
        asked: Vec<usize>,
    }

    impl FrameBudget for Capped {
        async fn reserve(&mut self, bytes: usize) -> std::io::Result<()> {
            self.asked.push(bytes);
            if self.asked.iter().sum::<usize>() > self.cap {
                return Err(std::io::Error::other("over budget"));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn room_is_asked_for_as_the_body_arrives_not_as_announced() {
        let mut buf = unsigned_varint::encode::usize_buffer();
        // Announces 4,000,000 bytes, sends 100,000: two steps are charged.
        let mut partial = Vec::new();
        partial.extend_from_slice(unsigned_varint::encode::usize(4_000_000, &mut buf));
        partial.extend_from_slice(&[7u8; 100_000]);
        let mut io = futures::io::Cursor::new(partial);
        let len = read_length(&mut io).await.unwrap().unwrap();
        let mut budget = Capped {
            cap: usize::MAX,
            asked: Vec::new(),
        };
        let error = read_body(&mut io, len, &mut budget).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(budget.asked, vec![READ_STEP, READ_STEP]);

        // A whole body is charged exactly its length; a refusal ends the read.
        let mut whole = Vec::new();
        whole.extend_from_slice(unsigned_varint::encode::usize(150_000, &mut buf));
        whole.extend_from_slice(&[7u8; 150_000]);
        let mut io = futures::io::Cursor::new(whole.clone());
        let len = read_length(&mut io).await.unwrap().unwrap();
        let mut budget = Capped {
            cap: usize::MAX,
            asked: Vec::new(),
        };
        let body = read_body(&mut io, len, &mut budget).await.unwrap();
        assert_eq!(body.len(), 150_000);
        assert_eq!(budget.asked.iter().sum::<usize>(), 150_000);
        let mut io = futures::io::Cursor::new(whole);
        let len = read_length(&mut io).await.unwrap().unwrap();
        let mut budget = Capped {
            cap: 100_000,
            asked: Vec::new(),
        };
        let error = read_body(&mut io, len, &mut budget).await.unwrap_err();
        assert_eq!(error.to_string(), "over budget");
    }
}
