//! `_redirects` files (the web redirects file spec): rules at the root of a
//! site served on its own origin (a subdomain or DNSLink site, never the
//! path gateway), consulted only for paths the site does not have. Parsing
//! and matching are pure; `super::site_redirects` reads the file (keeping
//! parsed files in a [`RulesCache`]) and acts on the [`Outcome`].

use std::collections::HashMap;
use std::sync::Arc;

use cid::Cid;

/// The name of the file, at the root of a site.
pub const FILE_NAME: &str = "_redirects";
/// The largest file the spec allows.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A file that cannot be used; the site's fault, so the spec makes it a
/// 500 that says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not parse _redirects: {0}")]
pub struct RedirectsError(pub String);

/// A file too large to read.
pub fn too_large(size: u64) -> RedirectsError {
    RedirectsError(format!(
        "redirects file size cannot exceed {MAX_FILE_BYTES} bytes (this one is {size})"
    ))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `:name`: any one segment, its value substituted into `to`.
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    from: Vec<Segment>,
    /// `from` ends in `*`: the rest of the path is `:splat`.
    splat: bool,
    to: String,
    status: u16,
}

/// The rules of one file, in order, and the file's size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    source_bytes: usize,
}

/// What the first matching rule says to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 3xx to `location`.
    Redirect { status: u16, location: String },
    /// Serve the site's `path` (percent-encoded, from `/`) with `status`
    /// (200 for a rewrite, 404 / 410 / 451 for a custom error page).
    Rewrite { status: u16, path: String },
}

const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];
/// The most `:name` / `:splat` uses in one rule's target.
const MAX_NAMES_IN_TARGET: usize = 16;
const REWRITES: [u16; 4] = [200, 404, 410, 451];

/// Parses a whole file.
pub fn parse(bytes: &[u8]) -> Result<Rules, RedirectsError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| RedirectsError(format!("the file is not UTF-8 text ({e})")))?;
    let mut rules = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        rules.push(parse_rule(line).map_err(|why| {
            RedirectsError(format!("line {}: {why}: {:?}", index + 1, clip(line)))
        })?);
    }
    Ok(Rules {
        rules,
        source_bytes: bytes.len(),
    })
}

fn clip(line: &str) -> String {
    line.chars().take(200).collect()
}

fn parse_rule(line: &str) -> Result<Rule, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (from, to, status) = match fields.as_slice() {
        [from, to] => (*from, *to, 301),
        [from, to, status] => {
            let code = status
                .parse::<u16>()
                .ok()
                .filter(|code| REDIRECTS.contains(code) || REWRITES.contains(code))
                .ok_or_else(|| {
                    format!(
                        "status {status:?} is not supported (200, 301, 302, 303, 307, 308, 404, 410 or 451; no forced redirects)"
                    )
                })?;
            (*from, *to, code)
        }
        _ => {
            return Err(format!(
                "expected \"from to [status]\", found {} fields",
                fields.len()
            ))
        }
    };
    if !from.starts_with('/') {
        return Err("the from path must start with /".into());
    }
    let is_url = to.starts_with("https://") || to.starts_with("http://");
    if !to.starts_with('/') && !is_url {
        return Err("the to path must start with / or be an http(s) URL".into());
    }
    // Each name is replaced by up to a whole request path: a bound on them
    // bounds the target a rule can build.
    let names = to
        .match_indices(':')
        .filter(|(at, _)| {
            to[at + 1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .count();
    if names > MAX_NAMES_IN_TARGET {
        return Err(format!(
            "the to path uses {names} :names, more than {MAX_NAMES_IN_TARGET}"
        ));
    }
    if REWRITES.contains(&status) && is_url {
        return Err(format!(
            "status {status} serves a path of the site, not a URL"
        ));
    }
    let mut segments: Vec<&str> = from.trim_matches('/').split('/').collect();
    if segments == [""] {
        segments.clear();
    }
    let splat = segments.last() == Some(&"*");
    if splat {
        segments.pop();
    }
    let from = segments
        .into_iter()
        .map(|segment| {
            if segment.contains('*') {
                return Err("* may only be the last segment of the from path".to_string());
            }
            Ok(match segment.strip_prefix(':') {
                Some(name) if !name.is_empty() => Segment::Named(name.to_string()),
                _ => Segment::Literal(decode(segment)),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule {
        from,
        splat,
        to: to.to_string(),
        status,
    })
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

impl Rules {
    /// The size of the file the rules came from (a cache's weight).
    pub fn source_bytes(&self) -> usize {
        self.source_bytes
    }

    /// The first rule matching `path` (as the client sent it, from `/`),
    /// applied; the query string carries over to a redirect that has none.
    pub fn find(&self, path: &str, query: Option<&str>) -> Option<Outcome> {
        let trimmed = path.trim_matches('/');
        let segments: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        self.rules.iter().find_map(|rule| {
            let values = rule.matches(&segments)?;
            let target = substitute(&rule.to, &values);
            Some(if REDIRECTS.contains(&rule.status) {
                let location = match query {
                    Some(query) if !target.contains('?') => format!("{target}?{query}"),
                    _ => target,
                };
                Outcome::Redirect {
                    status: rule.status,
                    location,
                }
            } else {
                Outcome::Rewrite {
                    status: rule.status,
                    path: target,
                }
            })
        })
    }
}

impl Rule {
    /// The `:name` (and `:splat`) values if `segments` match.
    fn matches(&self, segments: &[&str]) -> Option<HashMap<&str, String>> {
        if segments.len() < self.from.len() || (!self.splat && segments.len() != self.from.len()) {
            return None;
        }
        let mut values = HashMap::new();
        for (pattern, segment) in self.from.iter().zip(segments) {
            match pattern {
                Segment::Literal(literal) if *literal == decode(segment) => {}
                Segment::Literal(_) => return None,
                Segment::Named(name) => {
                    values.insert(name.as_str(), segment.to_string());
                }
            }
        }
        if self.splat {
            values.insert("splat", segments[self.from.len()..].join("/"));
        }
        Some(values)
    }
}

/// `to` with each `:name` replaced by its value; unknown names stay.
fn substitute(to: &str, values: &HashMap<&str, String>) -> String {
    let mut out = String::with_capacity(to.len());
    let mut rest = to;
    while let Some(at) = rest.find(':') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        match values.get(&after[..name_len]) {
            Some(value) if name_len > 0 => out.push_str(value),
            _ => {
                out.push(':');
                out.push_str(&after[..name_len]);
            }
        }
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out
}

/// Parsed `_redirects` files by CID, so a site's missing paths (every deep
/// link of a single-page app) do not read and parse the file again; bounded
/// by the files' sizes.
pub struct RulesCache(moka::sync::Cache<Cid, Arc<Result<Rules, RedirectsError>>>);

/// Bytes of `_redirects` files whose rules are kept.
const CACHED_RULES_BYTES: u64 = 16 * 1024 * 1024;

impl RulesCache {
    pub fn new() -> RulesCache {
        RulesCache(
            moka::sync::Cache::builder()
                .max_capacity(CACHED_RULES_BYTES)
                .weigher(|_, rules: &Arc<Result<Rules, RedirectsError>>| {
                    let bytes = match rules.as_ref() {
                        Ok(rules) => rules.source_bytes(),
                        Err(_) => 0,
                    };
                    u32::try_from(bytes + 256).unwrap_or(u32::MAX)
                })
                .build(),
        )
    }

    pub fn get(&self, cid: &Cid) -> Option<Arc<Result<Rules, RedirectsError>>> {
        self.0.get(cid)
    }

    pub fn insert(&self, cid: Cid, rules: Arc<Result<Rules, RedirectsError>>) {
        self.0.insert(cid, rules);
    }
}

impl Default for RulesCache {
    fn default() -> Self {
        RulesCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's example file.
    const EXAMPLES: &str = "/redirect-one /one.html\n\
        /301-redirect-one /one.html 301\n\
        /302-redirect-two /two.html 302\n\
        /200-index /index.html 200\n\
        /posts/:year/:month/:day/:title /articles/:year/:month/:day/:title 301\n\
        /splat/* /redirected-splat/:splat 301\n\
        /not-found/* /404.html 404\n\
        /gone/* /410.html 410\n\
        /unavail/* /451.html 451\n\
        /* /index.html 200\n";

    fn redirect(status: u16, location: &str) -> Option<Outcome> {
        Some(Outcome::Redirect {
            status,
            location: location.into(),
        })
    }

    fn rewrite(status: u16, path: &str) -> Option<Outcome> {
        Some(Outcome::Rewrite {
            status,
            path: path.into(),
        })
    }

    #[test]
    fn the_spec_examples() {
        let rules = parse(EXAMPLES.as_bytes()).unwrap();
        let at = |path| rules.find(path, None);
        assert_eq!(at("/redirect-one"), redirect(301, "/one.html"));
        assert_eq!(at("/302-redirect-two"), redirect(302, "/two.html"));
        assert_eq!(at("/200-index"), rewrite(200, "/index.html"));
        assert_eq!(
            at("/posts/2022/01/01/hello-world"),
            redirect(301, "/articles/2022/01/01/hello-world")
        );
        assert_eq!(
            at("/splat/one.html"),
            redirect(301, "/redirected-splat/one.html")
        );
        assert_eq!(at("/splat/a/b"), redirect(301, "/redirected-splat/a/b"));
        assert_eq!(at("/not-found/x"), rewrite(404, "/404.html"));
        assert_eq!(at("/gone/x"), rewrite(410, "/410.html"));
        assert_eq!(at("/unavail/x"), rewrite(451, "/451.html"));
        // First match wins: the catch-all only gets what nothing above took.
        assert_eq!(at("/catch-all"), rewrite(200, "/index.html"));
        // Too few segments for the `:name` rule: the catch-all.
        assert_eq!(at("/posts/2022"), rewrite(200, "/index.html"));
    }

    #[test]
    fn queries_carry_over_to_redirects() {
        let rules = parse(b"/a /b\n/c /d?x=1 302\n/e /f 200").unwrap();
        assert_eq!(rules.find("/a", Some("q=1")), redirect(301, "/b?q=1"));
        assert_eq!(rules.find("/c", Some("q=1")), redirect(302, "/d?x=1"));
        assert_eq!(rules.find("/e", Some("q=1")), rewrite(200, "/f"));
        assert_eq!(rules.find("/nothing", None), None);
    }

    #[test]
    fn line_endings_comments_and_urls() {
        let rules =
            parse(b"# a comment\r\n\r\n/a /b\r\n  /ext https://example.com/:splat 308 \r\n/ext/* https://example.com/:splat 307")
                .unwrap();
        assert_eq!(rules.find("/a", None), redirect(301, "/b"));
        assert_eq!(
            rules.find("/ext/x/y", None),
            redirect(307, "https://example.com/x/y")
        );
        // A `:name` the rule did not match stays as written.
        assert_eq!(
            rules.find("/ext", None),
            redirect(308, "https://example.com/:splat")
        );
    }

    #[test]
    fn broken_files_name_the_line() {
        for (file, expected) in [
            ("/a /b\n/c /d 301!", "line 2"),
            ("/a /b 999", "status \"999\""),
            ("/a", "found 1 fields"),
            ("/a /b 301 extra", "found 4 fields"),
            ("a /b", "must start with /"),
            ("/a b", "to path"),
            ("/a https://x.example/ 200", "not a URL"),
            ("/a*/b /c", "last segment"),
            ("/a/* /:splat:splat:splat:splat:splat:splat:splat:splat:splat:splat:splat:splat:splat:splat:splat:splat:splat", "more than 16"),
        ] {
            let err = parse(file.as_bytes()).unwrap_err().to_string();
            assert!(err.starts_with("could not parse _redirects: "), "{err}");
            assert!(err.contains(expected), "{file:?}: {err}");
        }
        let big = "/a /b\n".repeat(20_000);
        let err = parse(big.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("redirects file size cannot exceed"), "{err}");
        assert!(parse(&[0xff, 0xfe])
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }

    #[test]
    fn literals_compare_decoded() {
        let rules = parse("/café /menu".as_bytes()).unwrap();
        assert_eq!(rules.find("/caf%C3%A9", None), redirect(301, "/menu"));
        assert_eq!(rules.find("/caf%C3%A9/", None), redirect(301, "/menu"));
    }
}
