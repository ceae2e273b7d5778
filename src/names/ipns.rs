//! IPNS names and records (the IPNS record spec): a name is a libp2p key
//! (a peer ID in base58, or a CIDv1 with the `libp2p-key` codec in any
//! multibase, e.g. base36), and a record is trusted only after it is
//! verified here, with no I/O:
//!
//! - at most [`MAX_RECORD_BYTES`], a protobuf `IpnsEntry`;
//! - a V2 signature over `"ipns-signature:" ++ data` is required (V1-only
//!   records are refused), made by the name's key: the key inlined in the
//!   name (Ed25519) or the record's `pubKey`, which must hash to the name
//!   (RSA);
//! - `data` is DAG-CBOR with `Value`, `Validity`, `ValidityType` (0: EOL),
//!   `Sequence` and `TTL`; V1 fields present in the protobuf must say the
//!   same;
//! - the validity (RFC 3339) is in the future.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ipld_core::ipld::Ipld;
use libp2p::identity::PublicKey;
use libp2p::PeerId;
use prost::Message as _;

/// Largest record accepted (the spec's limit).
pub const MAX_RECORD_BYTES: usize = 10 * 1024;
/// The multicodec of a CID that names a libp2p key.
const LIBP2P_KEY: u64 = 0x72;

/// The protobuf form of a record.
#[derive(Clone, PartialEq, prost::Message)]
struct IpnsEntry {
    #[prost(bytes = "vec", optional, tag = "1")]
    value: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    signature_v1: Option<Vec<u8>>,
    #[prost(int32, optional, tag = "3")]
    validity_type: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    validity: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "5")]
    sequence: Option<u64>,
    #[prost(uint64, optional, tag = "6")]
    ttl: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "7")]
    pub_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "8")]
    signature_v2: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "9")]
    data: Option<Vec<u8>>,
}

/// Why a name or a record is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0:?} is not an IPNS name (a peer ID, or a CIDv1 with the libp2p-key codec)")]
    BadName(String),
    #[error("the record is {0} bytes, over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("the record is not a valid IPNS protobuf: {0}")]
    Malformed(String),
    #[error("the record has no V2 signature and data (V1-only records are refused)")]
    V1Only,
    #[error("the record's public key {0}")]
    Key(String),
    #[error("the record's V2 signature does not verify with the name's key")]
    BadSignature,
    #[error("the record's data {0}")]
    Data(String),
    #[error("the record's V1 field {0} disagrees with its signed data")]
    Inconsistent(&'static str),
    #[error("the record expired at {0}")]
    Expired(String),
}

/// A record that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct IpnsRecord {
    /// The path it points at, e.g. `/ipfs/<cid>/dir` or `/ipns/<name>`.
    pub value: String,
    pub sequence: u64,
    /// How long it may be cached.
    pub ttl: Duration,
    /// When it stops being valid.
    pub eol: SystemTime,
    /// The record as received, for `?format=ipns-record`.
    pub bytes: Bytes,
}

/// The peer ID an IPNS name stands for.
pub fn parse_name(text: &str) -> Result<PeerId, RecordError> {
    let bad = || RecordError::BadName(text.chars().take(100).collect());
    if let Ok(peer) = text.parse::<PeerId>() {
        return Ok(peer);
    }
    let cid: cid::Cid = text.parse().map_err(|_| bad())?;
    if cid.codec() != LIBP2P_KEY {
        return Err(bad());
    }
    PeerId::from_multihash(*cid.hash()).map_err(|_| bad())
}

/// The canonical text of a name: the CIDv1 `libp2p-key` in base36
/// (`k51…`), which fits in a DNS label and is case-insensitive.
pub fn canonical_name(name: &PeerId) -> String {
    cid::Cid::new_v1(LIBP2P_KEY, *name.as_ref())
        .to_string_of_base(multibase::Base::Base36Lower)
        // Base36 can encode any bytes; the peer ID form is the fallback.
        .unwrap_or_else(|_| name.to_string())
}

/// The DHT key of `name`'s records: `/ipns/` + the peer ID's bytes.
pub fn dht_key(name: &PeerId) -> Vec<u8> {
    let mut key = b"/ipns/".to_vec();
    key.extend_from_slice(&name.to_bytes());
    key
}

/// The key that must have signed `name`'s records: inlined in the name, or
/// the record's own, which must hash to the name.
fn signing_key(name: &PeerId, entry: &IpnsEntry) -> Result<PublicKey, RecordError> {
    if let Some(bytes) = &entry.pub_key {
        let key = PublicKey::try_decode_protobuf(bytes)
            .map_err(|e| RecordError::Key(format!("does not decode: {e}")))?;
        if key.to_peer_id() != *name {
            return Err(RecordError::Key("is not the name's key".into()));
        }
        return Ok(key);
    }
    let hash = name.as_ref();
    // Identity multihash: the key is inside the peer ID (Ed25519).
    if hash.code() == 0 {
        return PublicKey::try_decode_protobuf(hash.digest())
            .map_err(|e| RecordError::Key(format!("in the name does not decode: {e}")));
    }
    Err(RecordError::Key(
        "is missing (the name is a hash of the key, so the record must carry it)".into(),
    ))
}

/// Checks `bytes` as a record of `name` at time `now`.
pub fn verify(name: &PeerId, bytes: &[u8], now: SystemTime) -> Result<IpnsRecord, RecordError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge(bytes.len()));
    }
    let entry = IpnsEntry::decode(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
    let (Some(signature), Some(data)) = (&entry.signature_v2, &entry.data) else {
        return Err(RecordError::V1Only);
    };
    let key = signing_key(name, &entry)?;
    let mut signed = b"ipns-signature:".to_vec();
    signed.extend_from_slice(data);
    if !key.verify(&signed, signature) {
        return Err(RecordError::BadSignature);
    }
    let fields: Ipld = serde_ipld_dagcbor::from_slice(data)
        .map_err(|e| RecordError::Data(format!("is not DAG-CBOR: {e}")))?;
    let Ipld::Map(fields) = fields else {
        return Err(RecordError::Data("is not a map".into()));
    };
    let value = bytes_field(&fields, "Value")?;
    let validity = bytes_field(&fields, "Validity")?;
    let validity_type = int_field(&fields, "ValidityType")?;
    let sequence = int_field(&fields, "Sequence")?;
    let ttl_ns = int_field(&fields, "TTL")?;
    if validity_type != 0 {
        return Err(RecordError::Data(format!(
            "has ValidityType {validity_type}; only 0 (EOL) is defined"
        )));
    }
    // V1 fields are unsigned by V2: if present they must say the same.
    if entry.value.as_deref().is_some_and(|v| v != value) {
        return Err(RecordError::Inconsistent("value"));
    }
    if entry.validity.as_deref().is_some_and(|v| v != validity) {
        return Err(RecordError::Inconsistent("validity"));
    }
    if entry.sequence.is_some_and(|s| s != sequence) {
        return Err(RecordError::Inconsistent("sequence"));
    }
    if entry.ttl.is_some_and(|t| t != ttl_ns) {
        return Err(RecordError::Inconsistent("ttl"));
    }
    if entry
        .validity_type
        .is_some_and(|t| i128::from(t) != i128::from(validity_type))
    {
        return Err(RecordError::Inconsistent("validityType"));
    }
    let validity = std::str::from_utf8(validity)
        .map_err(|_| RecordError::Data("has a Validity that is not text".into()))?;
    let eol = time::OffsetDateTime::parse(validity, &time::format_description::well_known::Rfc3339)
        .map_err(|e| RecordError::Data(format!("has a Validity that is not RFC 3339: {e}")))?;
    let eol = SystemTime::from(eol);
    if eol <= now {
        return Err(RecordError::Expired(validity.to_string()));
    }
    let value = String::from_utf8(value.to_vec())
        .map_err(|_| RecordError::Data("has a Value that is not UTF-8".into()))?;
    Ok(IpnsRecord {
        value,
        sequence,
        ttl: Duration::from_nanos(ttl_ns),
        eol,
        bytes: Bytes::copy_from_slice(bytes),
    })
}

fn bytes_field<'a>(
    fields: &'a BTreeMap<String, Ipld>,
    name: &str,
) -> Result<&'a [u8], RecordError> {
    match fields.get(name) {
        Some(Ipld::Bytes(b)) => Ok(b),
        Some(_) => Err(RecordError::Data(format!("has a {name} that is not bytes"))),
        None => Err(RecordError::Data(format!("has no {name}"))),
    }
}

fn int_field(fields: &BTreeMap<String, Ipld>, name: &str) -> Result<u64, RecordError> {
    match fields.get(name) {
        Some(Ipld::Integer(i)) => {
            u64::try_from(*i).map_err(|_| RecordError::Data(format!("has a {name} out of range")))
        }
        Some(_) => Err(RecordError::Data(format!(
            "has a {name} that is not an integer"
        ))),
        None => Err(RecordError::Data(format!("has no {name}"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    /// What a test record says and how it is signed.
    pub(crate) struct Draft {
        pub value: String,
        pub sequence: u64,
        pub validity: String,
        pub ttl_ns: u64,
        pub v1_value: Option<String>,
        pub with_v2: bool,
        pub embed_key: bool,
    }

    impl Draft {
        pub(crate) fn new(value: &str, sequence: u64) -> Draft {
            Draft {
                value: value.into(),
                sequence,
                validity: "2099-01-01T00:00:00.000000000Z".into(),
                ttl_ns: 60_000_000_000,
                v1_value: Some(value.into()),
                with_v2: true,
                embed_key: false,
            }
        }

        pub(crate) fn sign(&self, key: &Keypair) -> Vec<u8> {
            let data = Ipld::Map(BTreeMap::from([
                (
                    "Value".to_string(),
                    Ipld::Bytes(self.value.as_bytes().to_vec()),
                ),
                (
                    "Validity".to_string(),
                    Ipld::Bytes(self.validity.as_bytes().to_vec()),
                ),
                ("ValidityType".to_string(), Ipld::Integer(0)),
                ("Sequence".to_string(), Ipld::Integer(self.sequence.into())),
                ("TTL".to_string(), Ipld::Integer(self.ttl_ns.into())),
            ]));
            let data = serde_ipld_dagcbor::to_vec(&data).unwrap();
            let mut signed = b"ipns-signature:".to_vec();
            signed.extend_from_slice(&data);
            IpnsEntry {
                value: self.v1_value.as_ref().map(|v| v.as_bytes().to_vec()),
                signature_v1: Some(vec![1, 2, 3]),
                validity_type: Some(0),
                validity: Some(self.validity.as_bytes().to_vec()),
                sequence: Some(self.sequence),
                ttl: Some(self.ttl_ns),
                pub_key: self.embed_key.then(|| key.public().encode_protobuf()),
                signature_v2: self.with_v2.then(|| key.sign(&signed).unwrap()),
                data: self.with_v2.then_some(data),
            }
            .encode_to_vec()
        }
    }

    const CID: &str = "/ipfs/bafkqaaa";

    fn now() -> SystemTime {
        SystemTime::now()
    }

    #[test]
    fn a_signed_record_verifies_with_a_name_in_either_form() {
        let key = Keypair::generate_ed25519();
        let name = key.public().to_peer_id();
        let record = Draft::new(CID, 7).sign(&key);
        let verified = verify(&name, &record, now()).unwrap();
        assert_eq!(verified.value, CID);
        assert_eq!(verified.sequence, 7);
        assert_eq!(verified.ttl, Duration::from_secs(60));
        let as_cid = cid::Cid::new_v1(LIBP2P_KEY, *name.as_ref());
        let base36 = as_cid
            .to_string_of_base(multibase::Base::Base36Lower)
            .unwrap();
        assert_eq!(parse_name(&base36).unwrap(), name);
        assert_eq!(parse_name(&name.to_string()).unwrap(), name);
        assert!(parse_name("bafkqaaa").is_err(), "a raw CID is no name");
        assert!(parse_name("example.com").is_err());
    }

    #[test]
    fn an_rsa_name_needs_the_key_in_the_record() {
        let pkcs8 = include_bytes!("../../tests/fixtures/rsa-2048.pk8");
        let mut der = pkcs8.to_vec();
        let key = Keypair::rsa_from_pkcs8(&mut der).unwrap();
        let name = key.public().to_peer_id();
        let mut draft = Draft::new(CID, 1);
        assert!(matches!(
            verify(&name, &draft.sign(&key), now()),
            Err(RecordError::Key(_))
        ));
        draft.embed_key = true;
        assert_eq!(verify(&name, &draft.sign(&key), now()).unwrap().value, CID);
    }

    #[test]
    fn broken_records_are_refused_with_what_is_wrong() {
        let key = Keypair::generate_ed25519();
        let name = key.public().to_peer_id();
        let other = Keypair::generate_ed25519();

        let mut v1_only = Draft::new(CID, 1);
        v1_only.with_v2 = false;
        assert_eq!(
            verify(&name, &v1_only.sign(&key), now()),
            Err(RecordError::V1Only)
        );

        assert_eq!(
            verify(&name, &Draft::new(CID, 1).sign(&other), now()),
            Err(RecordError::BadSignature)
        );

        let mut embedded_other = Draft::new(CID, 1);
        embedded_other.embed_key = true;
        assert!(matches!(
            verify(&name, &embedded_other.sign(&other), now()),
            Err(RecordError::Key(_))
        ));

        let mut lying_v1 = Draft::new(CID, 1);
        lying_v1.v1_value = Some("/ipfs/bafkreiabc".into());
        assert_eq!(
            verify(&name, &lying_v1.sign(&key), now()),
            Err(RecordError::Inconsistent("value"))
        );

        let mut expired = Draft::new(CID, 1);
        expired.validity = "2020-01-01T00:00:00Z".into();
        assert!(matches!(
            verify(&name, &expired.sign(&key), now()),
            Err(RecordError::Expired(_))
        ));

        let mut bad_time = Draft::new(CID, 1);
        bad_time.validity = "next tuesday".into();
        assert!(matches!(
            verify(&name, &bad_time.sign(&key), now()),
            Err(RecordError::Data(_))
        ));

        assert!(matches!(
            verify(&name, b"\xff\xff\xff", now()),
            Err(RecordError::Malformed(_))
        ));
        assert_eq!(
            verify(&name, &vec![0u8; MAX_RECORD_BYTES + 1], now()),
            Err(RecordError::TooLarge(MAX_RECORD_BYTES + 1))
        );
    }
}
