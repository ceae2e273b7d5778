//! Cold small files (issue 14): a small file is one block, so what a
//! request sends first is most of its cost. A provider that has delivered
//! blocks to this gateway, in any session, is asked for the block in the
//! first message a new request sends it; a provider never seen is probed
//! with a WANT_HAVE first. Checked over HTTP against test Bitswap peers
//! that record every want they are sent.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use common::bitswap_peer::{Behaviour, TestPeer};
use common::{assert_body, sha256_hex, TestGateway};
use multihash_codetable::{Code, MultihashDigest};

/// An 8 KiB file as one raw block (as Helia and Kubo store one): its CID,
/// and the block by CID for a test peer to serve.
fn small_file(seed: u8) -> (Cid, Vec<u8>, HashMap<Cid, Bytes>) {
    let data: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed)
        .collect();
    let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&data));
    let blocks = HashMap::from([(cid, Bytes::from(data.clone()))]);
    (cid, data, blocks)
}

/// The wants `peer` was sent for `cid`: (WANT_BLOCKs, WANT_HAVEs).
fn wants_for(peer: &TestPeer, cid: &Cid) -> (usize, usize) {
    let seen = peer.seen.lock().unwrap();
    let count = |list: &[Cid]| list.iter().filter(|c| *c == cid).count();
    (count(&seen.want_blocks), count(&seen.want_haves))
}

/// The wants `peer` was sent for `cid` once it has been sent a CANCEL for
/// it (the want is over: nothing more comes), or after 5 s.
async fn wants_once_over(peer: &TestPeer, cid: &Cid) -> (usize, usize) {
    let cancelled = || peer.seen.lock().unwrap().cancels.contains(cid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cancelled() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wants_for(peer, cid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_delivered_gets_the_next_small_file_in_the_first_message() {
    // A page: a large file from `known` whose body the client is still
    // reading (its session alive: nothing of it is in the peer book's
    // statistics yet) when it asks for a small file it hints at a new
    // provider first and at `known` second.
    let (page, page_data, mut known_blocks) = common::generated_file(24 << 20, 41, 64 * 1024);
    let (small, small_data, small_blocks) = small_file(42);
    known_blocks.extend(small_blocks.clone());
    // Slow enough that the newcomer's HAVE arrives first, well within the
    // hedge delay of a provider that has delivered.
    let known = TestPeer::start(known_blocks, Behaviour::Slow(Duration::from_millis(60))).await;
    let fresh = TestPeer::start(small_blocks, Behaviour::Honest).await;
    let gw = TestGateway::start_with(Vec::new(), |c| c.retrieval.block_timeout_secs = 20).await;

    let mut reading = gw.get_hinted(&format!("/ipfs/{page}"), &known.hint()).await;
    assert_eq!(reading.status(), 200);
    let mut page_body = reading.chunk().await.unwrap().unwrap().to_vec();
    assert!(known.blocks_sent.load(std::sync::atomic::Ordering::Relaxed) > 0);
    let sessions = gw.text(&format!("{}/debug/sessions", gw.control)).await;
    assert!(
        sessions.contains(&known.peer_id.to_string()),
        "the page's session is still running: {sessions}"
    );

    let hints = format!("{},{}", fresh.hint(), known.hint());
    let response = gw.get_hinted(&format!("/ipfs/{small}"), &hints).await;
    assert_body(response, &small_data).await;
    assert_eq!(
        wants_for(&known, &small),
        (1, 0),
        "the provider that delivered is asked for the block at once, not probed"
    );
    assert_eq!(
        wants_once_over(&fresh, &small).await,
        (0, 1),
        "the provider never seen is probed, and its HAVE does not take the block over"
    );

    while let Some(chunk) = reading.chunk().await.unwrap() {
        page_body.extend_from_slice(&chunk);
    }
    assert_eq!(sha256_hex(&page_body), sha256_hex(&page_data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_never_seen_is_probed_while_one_that_delivered_takes_the_block() {
    // The same once the first request is over: a provider whose small file
    // came before gets the next one's WANT_BLOCK first; a newcomer hinted
    // first is still only probed.
    let (first, first_data, mut known_blocks) = small_file(43);
    let (second, second_data, second_blocks) = small_file(44);
    known_blocks.extend(second_blocks.clone());
    let known = TestPeer::start(known_blocks, Behaviour::Slow(Duration::from_millis(60))).await;
    let fresh = TestPeer::start(second_blocks, Behaviour::Honest).await;
    let gw = TestGateway::start_with(Vec::new(), |c| c.retrieval.block_timeout_secs = 20).await;

    let response = gw
        .get_hinted(&format!("/ipfs/{first}"), &known.hint())
        .await;
    assert_body(response, &first_data).await;
    assert_eq!(
        wants_for(&known, &first),
        (1, 0),
        "a lone provider is asked at once"
    );

    let hints = format!("{},{}", fresh.hint(), known.hint());
    let response = gw.get_hinted(&format!("/ipfs/{second}"), &hints).await;
    assert_body(response, &second_data).await;
    assert_eq!(wants_for(&known, &second), (1, 0));
    assert_eq!(wants_once_over(&fresh, &second).await, (0, 1));
}
