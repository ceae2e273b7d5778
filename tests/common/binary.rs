//! The `sluice` binary run the way an operator runs it, for tests that
//! need a process of its own (its RSS, its file descriptors, its exit).

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStderr};

pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A loopback port free right now (another process may take it before
/// use, which these tests accept).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `sluice`, killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `child`'s stderr (piped) until its "gateway listening" line, and
/// returns the rest of it, which the caller must keep draining.
pub fn until_listening(child: &mut Child) -> Lines<BufReader<ChildStderr>> {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("sluice exited before listening")
            .unwrap();
        if line.contains("gateway listening") {
            return lines;
        }
    }
}

/// Waits until `child` is listening and drains its stderr from then on.
pub fn listening(mut child: Child) -> Running {
    let lines = until_listening(&mut child);
    std::thread::spawn(move || for _ in lines {});
    Running(child)
}
