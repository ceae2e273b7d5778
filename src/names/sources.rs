//! The record sources: the DHT (GET_VALUE of `/ipns/` + the name's bytes),
//! the delegated routers (`/routing/v1/ipns/{name}`), and record files an
//! operator put in the data directory (`ipns/<name>.ipns-record`, as
//! Kubo's `routing put` keeps them).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::mpsc;

use super::{ipns, RecordSource, SourceAnswer};
use crate::p2p::P2pNode;
use crate::routing::Routing;

/// Records from the DHT.
pub struct DhtRecords(pub P2pNode);

impl RecordSource for DhtRecords {
    fn label(&self) -> &'static str {
        "dht"
    }

    fn records(&self, name: PeerId) -> mpsc::Receiver<SourceAnswer> {
        let (answers, receiver) = mpsc::channel(16);
        let found = self.0.get_records(ipns::dht_key(&name));
        tokio::spawn(async move {
            let Some(mut found) = found else {
                let _ = answers
                    .send(SourceAnswer::Failed("the DHT is off".into()))
                    .await;
                return;
            };
            while let Some(record) = found.recv().await {
                if answers.send(SourceAnswer::Record(record)).await.is_err() {
                    return;
                }
            }
        });
        receiver
    }
}

/// Records from every `[routing] endpoints` router.
pub struct DelegatedRecords(pub Arc<Routing>);

impl RecordSource for DelegatedRecords {
    fn label(&self) -> &'static str {
        "delegated"
    }

    fn records(&self, name: PeerId) -> mpsc::Receiver<SourceAnswer> {
        let (answers, receiver) = mpsc::channel(16);
        let routing = self.0.clone();
        tokio::spawn(async move {
            for answer in routing.ipns_records(&ipns::canonical_name(&name)).await {
                let answer = match answer {
                    Ok(record) => SourceAnswer::Record(record),
                    Err(why) => SourceAnswer::Failed(why),
                };
                if answers.send(answer).await.is_err() {
                    return;
                }
            }
        });
        receiver
    }
}

/// Longest record file read (records are at most 10 KiB).
const MAX_RECORD_FILE_BYTES: u64 = 16 * 1024;

/// Record files in a directory, named by the name in either form: the
/// peer ID (`12D3Koo…`) or the CIDv1 libp2p-key in base36 (`k51…`).
pub struct LocalRecords(pub PathBuf);

impl LocalRecords {
    fn read(&self, name: &PeerId) -> Vec<Vec<u8>> {
        [name.to_string(), ipns::canonical_name(name)]
            .into_iter()
            .filter_map(|stem| {
                let file = std::fs::File::open(self.0.join(format!("{stem}.ipns-record"))).ok()?;
                let mut bytes = Vec::new();
                file.take(MAX_RECORD_FILE_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .ok()?;
                Some(bytes)
            })
            .collect()
    }
}

impl RecordSource for LocalRecords {
    fn label(&self) -> &'static str {
        "local"
    }

    fn records(&self, name: PeerId) -> mpsc::Receiver<SourceAnswer> {
        let (answers, receiver) = mpsc::channel(4);
        for record in self.read(&name) {
            let _ = answers.try_send(SourceAnswer::Record(record));
        }
        receiver
    }
}
