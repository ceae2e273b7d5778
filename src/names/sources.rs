//! The record sources: the DHT (GET_VALUE of `/ipns/` + the name's bytes)
//! and the delegated routers (`/routing/v1/ipns/{name}`).

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
            for answer in routing.ipns_records(&name).await {
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
