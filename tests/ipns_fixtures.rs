//! sluice's IPNS record checks against the records of the
//! gateway-conformance fixtures (made by boxo's generator, not by us):
//! V1+V2 and V2-only records verify and point where the fixtures say;
//! V1-only records, a broken V2 signature and a V1 value that disagrees
//! with the signed data are refused; a broken V1 signature alone does not
//! matter (V1 signatures are not what a V2 record is trusted by).

mod common;

use std::time::SystemTime;

use sluice::names::ipns::{parse_name, verify};
use sluice::names::RecordError;

#[test]
fn the_conformance_records_verify_as_the_spec_says() {
    let Some(fixtures) = common::fixtures() else {
        return;
    };
    let dir = fixtures.join("ipns_records");
    let record = |name: &str, kind: &str| {
        let bytes = std::fs::read(dir.join(format!("{name}_{kind}.ipns-record"))).unwrap();
        verify(&parse_name(name).unwrap(), &bytes, SystemTime::now())
    };
    let valid = [
        (
            "k51qzi5uqu5dlkw8pxuw9qmqayfdeh4kfebhmreauqdc6a7c3y7d5i9fi8mk9w",
            "v1-v2",
            "/ipfs/bafkqaddwgevxmmraojswg33smq",
        ),
        (
            "k51qzi5uqu5dit2ku9mutlfgwyz8u730on38kd10m97m36bjt66my99hb6103f",
            "v2",
            "/ipfs/bafkqadtwgiww63tmpeqhezldn5zgi",
        ),
        (
            "k51qzi5uqu5dilgf7gorsh9vcqqq4myo6jd4zmqkuy9pxyxi5fua3uf7axph4y",
            "v1-v2-broken-signature-v1",
            "/ipfs/bafkqahtwgevxmmrao5uxi2bamjzg623fnyqhg2lhnzqxi5lsmuqhmmi",
        ),
    ];
    for (name, kind, value) in valid {
        let verified = record(name, kind).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(verified.value, value, "{kind}");
    }
    assert_eq!(
        record(
            "k51qzi5uqu5dm4tm0wt8srkg9h9suud4wuiwjimndrkydqm81cqtlb5ak6p7ku",
            "v1"
        ),
        Err(RecordError::V1Only)
    );
    assert_eq!(
        record(
            "k51qzi5uqu5diamp7qnnvs1p1gzmku3eijkeijs3418j23j077zrkok63xdm8c",
            "v1-v2-broken-signature-v2"
        ),
        Err(RecordError::BadSignature)
    );
    assert_eq!(
        record(
            "k51qzi5uqu5dlmit2tuwdvnx4sbnyqgmvbxftl0eo3f33wwtb9gr7yozae9kpw",
            "v1-v2-broken-v1-value"
        ),
        Err(RecordError::Inconsistent("value"))
    );
}
