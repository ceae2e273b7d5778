//! CAR (Content Addressable aRchive) files: reading CAR v1 and v2, and
//! writing CAR v1 sections. (Importing a CAR into the on-disk store is the
//! store's business: `blocks::import_car`.)
//!
//! The reader verifies every block against its CID as it goes and bounds
//! every length it reads, so a hostile CAR costs at most one block of memory.

use std::io::{self, Read};

use bytes::{BufMut, Bytes, BytesMut};
use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::verify::{verify_block, VerifyError, MAX_BLOCK_SIZE};

/// Largest CAR header accepted (the header is only a list of roots).
const MAX_HEADER_SIZE: u64 = 1024 * 1024;
/// A section holds a CID (at most ~100 bytes in practice) and one block.
const MAX_SECTION_SIZE: u64 = MAX_BLOCK_SIZE as u64 + 1024;
/// CAR v2 files start with this fixed pragma (a CAR v1 header `{version: 2}`).
const CARV2_PRAGMA: [u8; 11] = [
    0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02,
];

#[derive(Debug, thiserror::Error)]
pub enum CarError {
    #[error("reading CAR: {0}")]
    Io(#[source] io::Error),
    #[error("invalid CAR header: {0}")]
    Header(String),
    #[error("unsupported CAR version {0} (1 and 2 are supported)")]
    Version(u64),
    #[error("CAR section at byte {offset} is malformed: {reason}")]
    Section { offset: u64, reason: String },
    #[error("CAR ends in the middle of a section at byte {offset}")]
    Truncated { offset: u64 },
    #[error("block {cid} at byte {offset} does not match its CID: {source}")]
    BadBlock {
        cid: Cid,
        offset: u64,
        #[source]
        source: VerifyError,
    },
}

#[derive(Serialize, Deserialize)]
struct CarHeader {
    version: u64,
    #[serde(default)]
    roots: Vec<Cid>,
}

/// One block read from a CAR.
pub struct CarSection {
    pub cid: Cid,
    pub data: Vec<u8>,
    /// Where the block's bytes start in the file.
    pub data_offset: u64,
}

/// Reads a CAR v1 (or the v1 payload of a v2) section by section.
pub struct CarReader<R> {
    reader: R,
    offset: u64,
    /// For CAR v2: where the v1 payload ends.
    end: Option<u64>,
    roots: Vec<Cid>,
}

impl<R: Read> CarReader<R> {
    pub fn new(reader: R) -> Result<Self, CarError> {
        let mut car = CarReader {
            reader,
            offset: 0,
            end: None,
            roots: Vec::new(),
        };
        let header = car.read_header()?;
        match header.version {
            1 => car.roots = header.roots,
            2 => car.enter_v2_payload()?,
            v => return Err(CarError::Version(v)),
        }
        Ok(car)
    }

    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    fn read_header(&mut self) -> Result<CarHeader, CarError> {
        let len = match self.read_varint()? {
            Some(len) => len,
            None => return Err(CarError::Header("file is empty".into())),
        };
        if len == 0 || len > MAX_HEADER_SIZE {
            return Err(CarError::Header(format!(
                "header length {len} is out of range"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.read_exact(&mut buf)?;
        serde_ipld_dagcbor::from_slice(&buf).map_err(|e| CarError::Header(e.to_string()))
    }

    /// CAR v2: a fixed 40-byte header says where the inner CAR v1 lies.
    fn enter_v2_payload(&mut self) -> Result<(), CarError> {
        if self.offset != CARV2_PRAGMA.len() as u64 {
            return Err(CarError::Header("CAR v2 pragma is malformed".into()));
        }
        let mut fixed = [0u8; 40];
        self.read_exact(&mut fixed)?;
        let word = |i: usize| u64::from_le_bytes(fixed[i..i + 8].try_into().expect("8 bytes"));
        let (data_offset, data_size) = (word(16), word(24));
        if data_offset < self.offset {
            return Err(CarError::Header(format!(
                "CAR v2 data offset {data_offset} is inside its header"
            )));
        }
        let skip = data_offset - self.offset;
        let skipped =
            io::copy(&mut (&mut self.reader).take(skip), &mut io::sink()).map_err(CarError::Io)?;
        self.offset += skipped;
        if skipped != skip {
            return Err(CarError::Truncated {
                offset: self.offset,
            });
        }
        self.end = Some(data_offset.saturating_add(data_size));
        let inner = self.read_header()?;
        if inner.version != 1 {
            return Err(CarError::Header(format!(
                "CAR v2 payload has version {}",
                inner.version
            )));
        }
        self.roots = inner.roots;
        Ok(())
    }

    /// The next verified block, or `None` at the end of the CAR.
    pub fn next_section(&mut self) -> Result<Option<CarSection>, CarError> {
        if self.end.is_some_and(|end| self.offset >= end) {
            return Ok(None);
        }
        let start = self.offset;
        let Some(len) = self.read_varint()? else {
            return Ok(None);
        };
        if len == 0 || len > MAX_SECTION_SIZE {
            return Err(CarError::Section {
                offset: start,
                reason: format!("section length {len} is out of range"),
            });
        }
        let mut buf = vec![0u8; len as usize];
        self.read_exact(&mut buf)?;
        let mut cursor = io::Cursor::new(&buf[..]);
        let cid = Cid::read_bytes(&mut cursor).map_err(|e| CarError::Section {
            offset: start,
            reason: format!("bad CID: {e}"),
        })?;
        let cid_len = cursor.position() as usize;
        let data = buf.split_off(cid_len);
        let data_offset = self.offset - data.len() as u64;
        verify_block(&cid, &data).map_err(|source| CarError::BadBlock {
            cid,
            offset: start,
            source,
        })?;
        Ok(Some(CarSection {
            cid,
            data,
            data_offset,
        }))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), CarError> {
        match self.reader.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(CarError::Truncated {
                offset: self.offset,
            }),
            Err(e) => Err(CarError::Io(e)),
        }
    }

    /// An unsigned LEB128 varint; `None` on a clean end of input.
    fn read_varint(&mut self) -> Result<Option<u64>, CarError> {
        let mut value = 0u64;
        for i in 0..10 {
            let mut byte = [0u8; 1];
            match self.reader.read(&mut byte) {
                Ok(0) if i == 0 => return Ok(None),
                Ok(0) => {
                    return Err(CarError::Truncated {
                        offset: self.offset,
                    })
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CarError::Io(e)),
            }
            self.offset += 1;
            value |= u64::from(byte[0] & 0x7f) << (7 * i);
            if byte[0] & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(CarError::Section {
            offset: self.offset,
            reason: "varint is longer than 10 bytes".into(),
        })
    }
}

/// The CAR v1 header announcing `roots`.
pub fn encode_header(roots: &[Cid]) -> Bytes {
    let header = CarHeader {
        version: 1,
        roots: roots.to_vec(),
    };
    let body = serde_ipld_dagcbor::to_vec(&header).expect("a CAR header always encodes");
    let mut out = BytesMut::with_capacity(body.len() + 10);
    put_varint(&mut out, body.len() as u64);
    out.put_slice(&body);
    out.freeze()
}

/// One CAR v1 section: varint length, CID, block bytes.
pub fn encode_section(cid: &Cid, data: &[u8]) -> Bytes {
    let cid_bytes = cid.to_bytes();
    let mut out = BytesMut::with_capacity(cid_bytes.len() + data.len() + 10);
    put_varint(&mut out, (cid_bytes.len() + data.len()) as u64);
    out.put_slice(&cid_bytes);
    out.put_slice(data);
    out.freeze()
}

/// The start of a section whose block is `data_len` bytes (its length and
/// CID), for writers that send the block's own bytes after it.
pub fn encode_section_head(cid: &Cid, data_len: usize) -> Bytes {
    let cid_bytes = cid.to_bytes();
    let mut out = BytesMut::with_capacity(cid_bytes.len() + 10);
    put_varint(&mut out, (cid_bytes.len() + data_len) as u64);
    out.put_slice(&cid_bytes);
    out.freeze()
}

fn put_varint(out: &mut BytesMut, value: u64) {
    let mut buf = unsigned_varint::encode::u64_buffer();
    out.put_slice(unsigned_varint::encode::u64(value, &mut buf));
}

/// Writes a CAR v1 to `out`: a header naming `roots`, then every block
/// `blocks` yields, in order.
pub struct CarWriter<W: io::Write> {
    out: W,
}

impl<W: io::Write> CarWriter<W> {
    pub fn new(mut out: W, roots: &[Cid]) -> io::Result<Self> {
        out.write_all(&encode_header(roots))?;
        Ok(CarWriter { out })
    }

    pub fn write_block(&mut self, cid: &Cid, data: &[u8]) -> io::Result<()> {
        self.out.write_all(&encode_section(cid, data))
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multihash_codetable::{Code, MultihashDigest};

    fn car_of(blocks: &[&[u8]]) -> (Vec<u8>, Vec<Cid>) {
        let cids: Vec<Cid> = blocks
            .iter()
            .map(|b| Cid::new_v1(0x55, Code::Sha2_256.digest(b)))
            .collect();
        let mut out = encode_header(&cids[..1]).to_vec();
        for (cid, data) in cids.iter().zip(blocks) {
            out.extend_from_slice(&encode_section(cid, data));
        }
        (out, cids)
    }

    #[test]
    fn section_head_then_block_is_the_section() {
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(b"block"));
        let mut split = encode_section_head(&cid, 5).to_vec();
        split.extend_from_slice(b"block");
        assert_eq!(split, encode_section(&cid, b"block").to_vec());
    }

    #[test]
    fn round_trips_blocks() {
        let (car, cids) = car_of(&[b"one", b"two"]);
        let mut reader = CarReader::new(&car[..]).unwrap();
        assert_eq!(reader.roots(), &cids[..1]);
        let first = reader.next_section().unwrap().unwrap();
        assert_eq!((first.cid, first.data.as_slice()), (cids[0], &b"one"[..]));
        let offset = first.data_offset as usize;
        assert_eq!(&car[offset..offset + 3], b"one");
        assert_eq!(reader.next_section().unwrap().unwrap().data, b"two");
        assert!(reader.next_section().unwrap().is_none());
    }

    #[test]
    fn rejects_tampered_block() {
        let (mut car, _) = car_of(&[b"one", b"two"]);
        let last = car.len() - 1;
        car[last] ^= 1;
        let mut reader = CarReader::new(&car[..]).unwrap();
        reader.next_section().unwrap();
        assert!(matches!(
            reader.next_section(),
            Err(CarError::BadBlock { .. })
        ));
    }

    #[test]
    fn rejects_truncated_car() {
        let (car, _) = car_of(&[b"one", b"two"]);
        let mut reader = CarReader::new(&car[..car.len() - 2]).unwrap();
        reader.next_section().unwrap();
        assert!(matches!(
            reader.next_section(),
            Err(CarError::Truncated { .. })
        ));
    }

    #[test]
    fn rejects_garbage_header() {
        assert!(matches!(
            CarReader::new(&b"\x05hello"[..]),
            Err(CarError::Header(_))
        ));
        assert!(matches!(CarReader::new(&b""[..]), Err(CarError::Header(_))));
        assert!(CarReader::new(&b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..]).is_err());
    }
}
