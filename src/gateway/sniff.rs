//! Content types for files: from the name's extension, else from the first
//! bytes (a small subset of the WHATWG MIME sniffing patterns).

/// How many leading bytes sniffing looks at.
pub const SNIFF_LEN: usize = 512;

/// `complete` says `head` is the whole file, so it can be parsed as JSON.
pub fn content_type(name: Option<&str>, head: &[u8], complete: bool) -> String {
    if let Some(mime) = name.and_then(|n| mime_guess::from_path(n).first()) {
        let essence = mime.essence_str().to_string();
        return if essence.starts_with("text/") || essence == "application/javascript" {
            format!("{essence}; charset=utf-8")
        } else {
            essence
        };
    }
    if complete && is_json_document(head) {
        return "application/json".to_string();
    }
    sniff(head).to_string()
}

fn is_json_document(data: &[u8]) -> bool {
    let trimmed = data.trim_ascii_start();
    matches!(trimmed.first(), Some(b'{' | b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
}

fn sniff(head: &[u8]) -> &'static str {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"%PDF-", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b\x08", "application/x-gzip"),
        (b"\x00asm", "application/wasm"),
        (b"OggS\x00", "application/ogg"),
        (b"\x1aE\xdf\xa3", "video/webm"),
        (b"ID3", "audio/mpeg"),
    ];
    if let Some((_, mime)) = SIGNATURES.iter().find(|(sig, _)| head.starts_with(sig)) {
        return mime;
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return "image/webp";
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return "video/mp4";
    }
    let text = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&head[..0], |i| &head[i..]);
    let lower: Vec<u8> = text.iter().take(16).map(u8::to_ascii_lowercase).collect();
    for tag in [
        &b"<!doctype html"[..],
        b"<html",
        b"<head",
        b"<body",
        b"<script",
        b"<!--",
        b"<p",
        b"<div",
        b"<h1",
        b"<title",
    ] {
        if lower.starts_with(tag)
            && lower
                .get(tag.len())
                .is_none_or(|c| *c == b' ' || *c == b'>')
        {
            return "text/html; charset=utf-8";
        }
    }
    if lower.starts_with(b"<?xml") {
        return if head.windows(4).any(|w| w == b"<svg") {
            "image/svg+xml"
        } else {
            "text/xml; charset=utf-8"
        };
    }
    if lower.starts_with(b"<svg") {
        return "image/svg+xml";
    }
    if looks_like_text(head) {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

fn looks_like_text(head: &[u8]) -> bool {
    let binary = |b: &u8| matches!(*b, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f);
    if head.iter().any(binary) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // The sniff window may cut a multi-byte character in half.
        Err(e) => e.error_len().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_wins() {
        assert_eq!(
            content_type(Some("a.css"), b"\x89PNG", true),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type(Some("a.png"), b"", true), "image/png");
    }

    #[test]
    fn sniffs_without_extension() {
        assert_eq!(
            content_type(None, b"\x89PNG\r\n\x1a\nxxxx", true),
            "image/png"
        );
        assert_eq!(
            content_type(Some("README"), b"  <!DOCTYPE html><html>", true),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(None, b"hello world\n", true),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type(None, b"\x00\x01\x02", true),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(None, "zażółć".as_bytes(), false),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type(None, b"{ \"a\": 1 }\n", true),
            "application/json"
        );
        assert_eq!(
            content_type(None, b"{ \"a\": 1 ", false),
            "text/plain; charset=utf-8"
        );
    }
}
