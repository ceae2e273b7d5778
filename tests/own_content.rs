//! Content the tests build themselves (so a clone without the conformance
//! fixtures still tests the core): a 256 MiB multi-level UnixFS file
//! streamed whole and by ranges, and a directory of 10,000 entries.

mod common;

use std::io::{self, Read};

use futures::StreamExt;
use sha2::Digest;
use sluice::car::CarWriter;
use sluice::unixfs::builder::{build_directory, build_file, Built, FileLayout};

use common::{header, TestGateway};

const BIG: u64 = 256 * 1024 * 1024;

/// Deterministic pseudo-random content where any byte can be recomputed
/// from its offset (splitmix64 of the 8-byte word index).
fn byte_at(offset: u64) -> u8 {
    let mut z = (offset / 8).wrapping_add(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^= z >> 31;
    z.to_le_bytes()[(offset % 8) as usize]
}

fn bytes_in(start: u64, end: u64) -> Vec<u8> {
    (start..end).map(byte_at).collect()
}

struct Generated {
    offset: u64,
    size: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.size - self.offset).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(self.offset + i as u64);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Writes the generated file as a CAR (two passes: the header names the
/// root before any block).
fn write_big_car(path: &std::path::Path, layout: FileLayout) -> Built {
    let root = build_file(
        Generated {
            offset: 0,
            size: BIG,
        },
        layout,
        &mut |_| {},
    )
    .unwrap();
    let out = io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut car = CarWriter::new(out, &[root.cid]).unwrap();
    build_file(
        Generated {
            offset: 0,
            size: BIG,
        },
        layout,
        &mut |b| car.write_block(&b.cid, &b.data).unwrap(),
    )
    .unwrap();
    car.finish().unwrap();
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_256_mib_file_whole_and_by_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let car = dir.path().join("big.car");
    // Kubo's classic shape: CIDv0, dag-pb leaves of 256 KiB, 174 links, so
    // the tree has three levels.
    let root = write_big_car(&car, FileLayout::CLASSIC);
    let expected_sha = {
        let mut hasher = sha2::Sha256::new();
        let mut source = Generated {
            offset: 0,
            size: BIG,
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = source.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        hasher.finalize()
    };

    let gw = TestGateway::start_with(vec![car], |c| c.store.cache_bytes = 32 * 1024 * 1024).await;
    let path = format!("/ipfs/{}", root.cid);
    let response = gw.get(&path).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-length"), BIG.to_string());
    let mut hasher = sha2::Sha256::new();
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        received += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(received, BIG);
    assert_eq!(
        hasher.finalize(),
        expected_sha,
        "SHA-256 of the streamed body"
    );

    let leaf = 256 * 1024u64;
    let inner = 174 * leaf;
    for (start, end) in [
        (0, 10),
        (leaf - 3, leaf + 3),
        (inner - 5, inner + 5),
        (BIG / 2, BIG / 2 + 3 * leaf + 17),
        (BIG - 100, BIG),
    ] {
        let range = format!("bytes={start}-{}", end - 1);
        let response = gw.get_with(&path, &[("range", &range)]).await;
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            header(&response, "content-range"),
            format!("bytes {start}-{}/{BIG}", end - 1)
        );
        let body = response.bytes().await.unwrap();
        assert!(body[..] == bytes_in(start, end)[..], "bytes of {range}");
    }
    let response = gw.get_with(&path, &[("range", "bytes=-5,100-104")]).await;
    assert_eq!(response.status(), 206);
    let body = response.bytes().await.unwrap();
    let find = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(find(&bytes_in(BIG - 5, BIG)) && find(&bytes_in(100, 105)));
}

#[tokio::test]
async fn lists_a_directory_of_10000_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut blocks = Vec::new();
    let entries: Vec<(String, Built)> = (0..10_000)
        .map(|i| {
            let content = format!("file number {i}\n");
            let built = build_file(content.as_bytes(), FileLayout::MODERN, &mut |b| {
                blocks.push(b)
            })
            .unwrap();
            (format!("file-{i:05}.txt"), built)
        })
        .collect();
    let root = build_directory(entries, false, &mut |b| blocks.push(b));
    let car = dir.path().join("dir.car");
    let mut writer = CarWriter::new(std::fs::File::create(&car).unwrap(), &[root.cid]).unwrap();
    for b in &blocks {
        writer.write_block(&b.cid, &b.data).unwrap();
    }
    writer.finish().unwrap();

    let gw = TestGateway::start(vec![car]).await;
    let started = std::time::Instant::now();
    let listing = gw.get(&format!("/ipfs/{}/", root.cid)).await;
    assert_eq!(listing.status(), 200);
    let body = listing.text().await.unwrap();
    eprintln!(
        "listing of 10,000 entries: {} bytes in {:?}",
        body.len(),
        started.elapsed()
    );
    assert_eq!(body.matches("class=\"ipfs-hash\"").count(), 10_000);
    assert!(body.contains(&format!(
        "<a href=\"/ipfs/{}/file-09999.txt\">file-09999.txt</a>",
        root.cid
    )));
    let file = gw.get(&format!("/ipfs/{}/file-04321.txt", root.cid)).await;
    assert_eq!(file.text().await.unwrap(), "file number 4321\n");
}
