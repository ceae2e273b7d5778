//! The TAR format as TAR responses write it, and where a directory
//! entry's name may put it in the archive. Pure: no I/O, every rule a unit
//! test.
//!
//! Headers are POSIX ustar, with a PAX extended header before one for what
//! ustar cannot hold: a path or link target over 100 bytes or not ASCII, a
//! size from 8 GiB. Every entry's mode is the UnixFS default (0644 files,
//! 0755 directories, 0777 symlinks), owned by uid and gid 0, with mtime 0:
//! UnixFS 1.5 mode and mtime are not read, and the same DAG always makes
//! the same bytes.
//!
//! Names come from the DAG, so they are untrusted: an entry's path is its
//! directory's path joined with its name and resolved lexically (`.` and
//! `..` as a shell would, as other gateways do: `dir/../file` is the
//! sibling `file`), and it must stay strictly inside the archive's root
//! directory, below no directory it is listed in, and through no symlink
//! the archive already holds. A name breaking a rule refuses the response.

use std::collections::HashSet;

use bytes::{BufMut, Bytes, BytesMut};
use cid::Cid;

use crate::dag::DagError;

/// Size of a TAR block: headers are one, file data is padded to whole ones.
pub const BLOCK: usize = 512;
/// Longest entry path written (Linux's `PATH_MAX`): a longer one could not
/// be extracted anyway.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest symlink target written, for the same reason.
pub const MAX_LINK_BYTES: usize = 4096;

const ZEROS: [u8; 2 * BLOCK] = [0; 2 * BLOCK];
/// Largest size the 12-byte octal field holds (8 GiB - 1).
const MAX_USTAR_SIZE: u64 = 0o77777777777;
/// The name of the PAX extended header entries (as GNU tar and the `tar`
/// crate write them).
const PAX_NAME: &str = "././@PaxHeader";

/// Why a TAR of a DAG cannot be written (or finished).
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error(transparent)]
    Dag(#[from] DagError),
    /// A directory entry's name, read from the DAG, breaks a rule of
    /// [`entry_path`] or [`through_symlink`].
    #[error("entry {name:?} of directory {dir} cannot be written to a TAR: {problem}; a CAR (?format=car) carries any DAG")]
    BadName {
        dir: Cid,
        name: String,
        problem: NameProblem,
    },
    #[error("{cid} ({kind}) is not UnixFS: only UnixFS files, directories and symlinks can be served as a TAR (?format=car carries any DAG)")]
    NotUnixfs { cid: Cid, kind: &'static str },
    #[error("symlink {cid} cannot be written to a TAR: its target {reason}")]
    BadLink { cid: Cid, reason: String },
    /// A bound on what the walk holds (directories open, entries and
    /// symlinks remembered) was reached.
    #[error("the TAR of this DAG would need {0}")]
    TooLarge(String),
}

/// What is wrong with a name (see [`entry_path`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("its name is empty")]
    Empty,
    #[error("its name holds a NUL byte")]
    Nul,
    #[error("its name is an absolute path")]
    Absolute,
    #[error("relative UnixFS paths outside the root are not allowed (it climbs above {root:?})")]
    OutsideRoot { root: String },
    #[error("it resolves to {path:?}, a directory it is listed under, not an entry in it")]
    Ancestor { path: String },
    #[error("its path would be longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("its path {path:?} lies through the symlink {link:?} written before it")]
    ThroughSymlink { path: String, link: String },
}

/// The path in the archive of the entry `name` of the directory at
/// `parent` (itself a path this function made, or the root's name, which
/// holds no `/`).
pub fn entry_path(parent: &str, name: &str) -> Result<String, NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.contains('\0') {
        return Err(NameProblem::Nul);
    }
    if name.starts_with('/') {
        return Err(NameProblem::Absolute);
    }
    let parent_parts: Vec<&str> = parent.split('/').collect();
    let mut parts = parent_parts.clone();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.len() <= 1 => {
                return Err(NameProblem::OutsideRoot {
                    root: parent_parts[0].to_string(),
                })
            }
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let path = parts.join("/");
    // The root, the directory itself or one above it: not an entry in it.
    if parts.len() <= parent_parts.len() && parent_parts[..parts.len()] == parts[..] {
        return Err(NameProblem::Ancestor { path });
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(NameProblem::TooLong);
    }
    Ok(path)
}

/// The symlink among `links` (paths of symlinks already in the archive)
/// that `path` is or lies beneath: an extractor would write through it.
pub fn through_symlink<'a>(path: &str, links: &'a HashSet<String>) -> Option<&'a str> {
    path.match_indices('/')
        .map(|(at, _)| &path[..at])
        .chain(std::iter::once(path))
        .find_map(|prefix| links.get(prefix).map(String::as_str))
}

/// What an entry is, for its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind<'a> {
    Directory,
    File { size: u64 },
    Symlink { target: &'a [u8] },
}

/// The header block(s) of the entry at `path`: a PAX extended header first
/// when ustar cannot hold its path, target or size.
pub fn entry_header(path: &str, kind: EntryKind<'_>) -> Bytes {
    let name = match kind {
        EntryKind::Directory => format!("{path}/"),
        _ => path.to_string(),
    };
    let (type_flag, mode, size, target): (u8, u64, u64, &[u8]) = match kind {
        EntryKind::Directory => (b'5', 0o755, 0, b""),
        EntryKind::File { size } => (b'0', 0o644, size, b""),
        EntryKind::Symlink { target } => (b'2', 0o777, 0, target),
    };
    let mut records = Vec::new();
    if !fits_ustar(name.as_bytes()) {
        records.extend(pax_record("path", name.as_bytes()));
    }
    if !fits_ustar(target) {
        if std::str::from_utf8(target).is_err() {
            // PAX values are UTF-8 unless the archive says otherwise.
            records.extend(pax_record("hdrcharset", b"BINARY"));
        }
        records.extend(pax_record("linkpath", target));
    }
    if size > MAX_USTAR_SIZE {
        records.extend(pax_record("size", size.to_string().as_bytes()));
    }
    let mut out = BytesMut::with_capacity(3 * BLOCK);
    if !records.is_empty() {
        let len = records.len() as u64;
        out.put_slice(&ustar_header(PAX_NAME.as_bytes(), b'x', 0o644, len, b""));
        out.put_slice(&records);
        out.put_slice(&padding(len));
    }
    out.put_slice(&ustar_header(
        name.as_bytes(),
        type_flag,
        mode,
        size.min(MAX_USTAR_SIZE),
        target,
    ));
    out.freeze()
}

/// The zero bytes that pad `size` bytes of data to whole blocks.
pub fn padding(size: u64) -> Bytes {
    let rest = (size % BLOCK as u64) as usize;
    if rest == 0 {
        Bytes::new()
    } else {
        Bytes::from_static(&ZEROS[..BLOCK - rest])
    }
}

/// The end of an archive: two zero blocks.
pub fn end_of_archive() -> Bytes {
    Bytes::from_static(&ZEROS)
}

/// Whether a name or link target fits a ustar field as it is.
fn fits_ustar(text: &[u8]) -> bool {
    text.len() <= 100 && text.iter().all(|b| b.is_ascii() && *b != 0)
}

/// One PAX record, `"<length> <key>=<value>\n"`, its length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// One ustar header block. `name` and `target` longer than their fields
/// are cut (at a character boundary when they are UTF-8): a PAX record then
/// holds them whole.
fn ustar_header(name: &[u8], type_flag: u8, mode: u64, size: u64, target: &[u8]) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    put_text(&mut block[0..100], name);
    put_octal(&mut block[100..108], mode);
    put_octal(&mut block[108..116], 0);
    put_octal(&mut block[116..124], 0);
    put_octal(&mut block[124..136], size);
    put_octal(&mut block[136..148], 0);
    block[156] = type_flag;
    put_text(&mut block[157..257], target);
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    // The checksum is over the block with its own field as spaces.
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(digits.as_bytes());
    block
}

fn put_text(field: &mut [u8], text: &[u8]) {
    let mut len = text.len().min(field.len());
    if let Ok(text) = std::str::from_utf8(text) {
        while !text.is_char_boundary(len) {
            len -= 1;
        }
    }
    field[..len].copy_from_slice(&text[..len]);
}

/// `value` in octal, zero-padded, NUL-terminated, filling the field.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(digits.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const ROOT: &str = "bafyroot";

    #[test]
    fn names_resolve_inside_the_root() {
        assert_eq!(entry_path(ROOT, "a").unwrap(), "bafyroot/a");
        assert_eq!(
            entry_path("bafyroot/a", "ą ę.txt").unwrap(),
            "bafyroot/a/ą ę.txt"
        );
        // The inside-root fixture: foobar/directory/../file is foobar/file.
        assert_eq!(
            entry_path("bafyroot/foobar/directory", "../file").unwrap(),
            "bafyroot/foobar/file"
        );
        assert_eq!(entry_path(ROOT, "a/./b//c").unwrap(), "bafyroot/a/b/c");
        assert_eq!(entry_path(ROOT, "a/../b").unwrap(), "bafyroot/b");
        assert_eq!(entry_path(ROOT, "...").unwrap(), "bafyroot/...");
    }

    #[test]
    fn names_that_leave_the_root_or_are_not_names_are_refused() {
        let outside = NameProblem::OutsideRoot { root: ROOT.into() };
        assert_eq!(entry_path(ROOT, "../foo"), Err(outside.clone()));
        assert_eq!(entry_path(ROOT, ".."), Err(outside.clone()));
        assert_eq!(entry_path("bafyroot/a", "../../x"), Err(outside.clone()));
        assert_eq!(entry_path("bafyroot/a", "b/../../../x"), Err(outside));
        assert_eq!(entry_path(ROOT, "/etc/passwd"), Err(NameProblem::Absolute));
        assert_eq!(entry_path(ROOT, "a\0b"), Err(NameProblem::Nul));
        assert_eq!(entry_path(ROOT, ""), Err(NameProblem::Empty));
        for (parent, name) in [
            (ROOT, "."),
            (ROOT, "a/.."),
            ("bafyroot/a", "."),
            ("bafyroot/a/b", ".."),
        ] {
            assert!(
                matches!(entry_path(parent, name), Err(NameProblem::Ancestor { .. })),
                "{parent} {name}"
            );
        }
        let long = "x".repeat(MAX_PATH_BYTES);
        assert_eq!(entry_path(ROOT, &long), Err(NameProblem::TooLong));
        // The message says what the conformance suite's hint says.
        assert!(entry_path(ROOT, "../foo")
            .unwrap_err()
            .to_string()
            .contains("relative UnixFS paths outside the root are not allowed"));
    }

    #[test]
    fn paths_through_a_symlink_are_found() {
        let links: HashSet<String> = ["r/link".to_string()].into();
        assert_eq!(through_symlink("r/link", &links), Some("r/link"));
        assert_eq!(through_symlink("r/link/passwd", &links), Some("r/link"));
        assert_eq!(through_symlink("r/linked", &links), None);
        assert_eq!(through_symlink("r/other/link", &links), None);
    }

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("path", b"a"), b"9 path=a\n");
        // Around the lengths where the length itself gains a digit.
        for len in [0, 1, 85, 86, 87, 88, 990, 991, 992, 995, 1000] {
            let record = pax_record("path", &vec![b'x'; len]);
            let declared: usize = std::str::from_utf8(&record)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(declared, record.len(), "value of {len} bytes");
        }
    }

    /// An entry read back: its path, type, link target and bytes.
    type ReadEntry = (String, ::tar::EntryType, Option<Vec<u8>>, Vec<u8>);

    /// Reads an archive with the `tar` crate (an independent reader).
    fn read_back(archive: &[u8]) -> Vec<ReadEntry> {
        let mut reader = ::tar::Archive::new(archive);
        reader
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
                let kind = entry.header().entry_type();
                let link = entry.link_name_bytes().map(|l| l.into_owned());
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                (path, kind, link, data)
            })
            .collect()
    }

    #[test]
    fn headers_read_back_with_an_independent_reader() {
        let long_name = format!("{ROOT}/{}/ź.txt", "d".repeat(150));
        let long_target = "../".repeat(60);
        let mut archive = BytesMut::new();
        archive.put(entry_header(ROOT, EntryKind::Directory));
        archive.put(entry_header(
            &format!("{ROOT}/a.txt"),
            EntryKind::File { size: 5 },
        ));
        archive.put(&b"hello"[..]);
        archive.put(padding(5));
        archive.put(entry_header(&long_name, EntryKind::File { size: 512 }));
        archive.put(&[7u8; 512][..]);
        archive.put(padding(512));
        archive.put(entry_header(
            &format!("{ROOT}/link"),
            EntryKind::Symlink { target: b"a.txt" },
        ));
        archive.put(entry_header(
            &format!("{ROOT}/far"),
            EntryKind::Symlink {
                target: long_target.as_bytes(),
            },
        ));
        archive.put(entry_header(
            &format!("{ROOT}/odd"),
            EntryKind::Symlink {
                target: b"\xff\xfe",
            },
        ));
        archive.put(end_of_archive());
        assert_eq!(archive.len() % BLOCK, 0);
        let entries = read_back(&archive);
        use ::tar::EntryType as T;
        let expected: Vec<ReadEntry> = vec![
            (format!("{ROOT}/"), T::Directory, None, vec![]),
            (format!("{ROOT}/a.txt"), T::Regular, None, b"hello".to_vec()),
            (long_name.clone(), T::Regular, None, vec![7; 512]),
            (
                format!("{ROOT}/link"),
                T::Symlink,
                Some(b"a.txt".to_vec()),
                vec![],
            ),
            (
                format!("{ROOT}/far"),
                T::Symlink,
                Some(long_target.clone().into_bytes()),
                vec![],
            ),
            (
                format!("{ROOT}/odd"),
                T::Symlink,
                Some(b"\xff\xfe".to_vec()),
                vec![],
            ),
        ];
        // The tar crate reports a PAX path without the directory slash
        // trimmed or added: compare entry by entry for a clear message.
        assert_eq!(entries.len(), expected.len());
        for (got, want) in entries.iter().zip(&expected) {
            assert_eq!(got.0, want.0);
            assert_eq!(got.1, want.1, "{}", want.0);
            if want.1 == T::Symlink {
                assert_eq!(got.2, want.2, "{}", want.0);
            }
            assert_eq!(got.3, want.3, "{}", want.0);
        }
    }

    #[test]
    fn ustar_fields_are_as_posix_says() {
        let block = entry_header("r/f", EntryKind::File { size: 1234 });
        assert_eq!(block.len(), BLOCK);
        assert_eq!(&block[..4], b"r/f\0");
        assert_eq!(&block[100..108], b"0000644\0");
        assert_eq!(&block[124..136], b"00000002322\0");
        assert_eq!(block[156], b'0');
        assert_eq!(&block[257..265], b"ustar\x0000");
        let stored = u32::from_str_radix(std::str::from_utf8(&block[148..154]).unwrap(), 8);
        let mut copy = block.to_vec();
        copy[148..156].fill(b' ');
        assert_eq!(
            stored.unwrap(),
            copy.iter().map(|&b| u32::from(b)).sum::<u32>()
        );
    }

    #[test]
    fn sizes_over_eight_gib_go_in_a_pax_record() {
        let size = 10 * (1u64 << 30);
        let headers = entry_header("r/big", EntryKind::File { size });
        assert_eq!(headers.len(), 3 * BLOCK);
        // The reader only needs the headers, not the data after them.
        let mut reader = ::tar::Archive::new(&headers[..]);
        let entry = reader.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(
            entry.header().entry_size().unwrap(),
            MAX_USTAR_SIZE,
            "ustar field"
        );
        assert_eq!(entry.size(), size, "PAX size");
    }
}
