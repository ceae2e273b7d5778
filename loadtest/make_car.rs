//! Makes benchmark content: a file of pseudo-random bytes of a given size,
//! written both as plain bytes (for nginx) and as a UnixFS CAR (for sluice).
//!
//! cargo run --release --example make-car -- SIZE_BYTES OUT.car OUT.bin [modern|classic]

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use sluice::car::CarWriter;
use sluice::unixfs::builder::{build_file, FileLayout};

/// xorshift64*: fast, deterministic bytes.
struct PseudoRandom {
    state: u64,
    left: u64,
}

impl Read for PseudoRandom {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left as usize) / 8 * 8;
        let n = if n == 0 {
            buf.len().min(self.left as usize)
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let word = self.state.wrapping_mul(0x2545F4914F6CDD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: make-car SIZE_BYTES OUT.car OUT.bin [modern|classic]");
        std::process::exit(2);
    }
    let size: u64 = args[1].parse().expect("size in bytes");
    let layout = match args.get(4).map(String::as_str) {
        Some("classic") => FileLayout::CLASSIC,
        _ => FileLayout::MODERN,
    };
    let source = || PseudoRandom {
        state: 0x9E3779B97F4A7C15 ^ size,
        left: size,
    };

    // First pass finds the root (the CAR header names it before any block).
    let mut plain = BufWriter::new(File::create(&args[3])?);
    let root = build_file(source(), layout, &mut |_| {})?;
    io::copy(&mut source(), &mut plain)?;
    plain.flush()?;

    let mut car = CarWriter::new(BufWriter::new(File::create(&args[2])?), &[root.cid])?;
    let mut failed = None;
    build_file(source(), layout, &mut |block| {
        if let Err(e) = car.write_block(&block.cid, &block.data) {
            failed.get_or_insert(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    car.finish()?;
    println!("{}", root.cid);
    Ok(())
}
