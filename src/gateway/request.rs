//! Turning an HTTP request into a [`ContentRequest`]: the content path, the
//! response format asked for (by `?format=` or `Accept`), and the
//! parameters of CAR and file responses. Everything is validated here, so
//! handlers only see well-formed requests.

use axum::http::{header, HeaderMap, Uri};
use cid::Cid;

use super::errors::GatewayError;
use super::origin::SiteOrigin;
use crate::dag::{DagScope, EntityBytes, MAX_PATH_SEGMENTS};

/// Response formats a client can ask for explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Car,
    Tar,
    DagJson,
    DagCbor,
    Json,
    Cbor,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Raw => "application/vnd.ipld.raw",
            Format::Car => "application/vnd.ipld.car",
            Format::Tar => "application/x-tar",
            Format::DagJson => "application/vnd.ipld.dag-json",
            Format::DagCbor => "application/vnd.ipld.dag-cbor",
            Format::Json => "application/json",
            Format::Cbor => "application/cbor",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Car => "car",
            Format::Tar => "tar",
            Format::DagJson => "dag-json",
            Format::DagCbor => "dag-cbor",
            Format::Json => "json",
            Format::Cbor => "cbor",
        }
    }

    fn from_query(value: &str) -> Result<Format, GatewayError> {
        Ok(match value {
            "raw" => Format::Raw,
            "car" => Format::Car,
            "tar" => Format::Tar,
            "dag-json" => Format::DagJson,
            "dag-cbor" => Format::DagCbor,
            "json" => Format::Json,
            "cbor" => Format::Cbor,
            "ipns-record" => {
                return Err(GatewayError::NotAcceptable(format!(
                    "format={value} is not supported by this gateway"
                )))
            }
            other => {
                return Err(GatewayError::BadRequest(format!(
                    "unknown format {other:?} (expected raw, car, tar, dag-json, dag-cbor, json or cbor)"
                )))
            }
        })
    }

    fn from_media_type(media: &str) -> Option<Format> {
        [
            Format::Raw,
            Format::Car,
            Format::Tar,
            Format::DagJson,
            Format::DagCbor,
            Format::Json,
            Format::Cbor,
        ]
        .into_iter()
        .find(|f| f.media_type().eq_ignore_ascii_case(media))
    }
}

/// Parameters of a CAR response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarParams {
    pub scope: DagScope,
    pub entity_bytes: Option<EntityBytes>,
    pub duplicates: bool,
}

impl Default for CarParams {
    fn default() -> Self {
        CarParams {
            scope: DagScope::All,
            entity_bytes: None,
            duplicates: false,
        }
    }
}

/// A validated request for content under `/ipfs/` or `/ipns/`.
#[derive(Debug, Clone)]
pub struct ContentRequest {
    /// The CID after `/ipfs/`; for `/ipns/` the identity CID of no bytes
    /// until the gateway sets the root the name resolved to.
    pub root: Cid,
    /// The name after `/ipns/`, not resolved yet.
    pub ipns_name: Option<String>,
    /// `?format=ipns-record` or `Accept: application/vnd.ipfs.ipns-record`:
    /// the name's record itself.
    pub ipns_record: bool,
    /// Decoded path segments after the CID.
    pub segments: Vec<String>,
    /// The content path (percent-encoded), without the query:
    /// `/ipfs/<cid>/…` or `/ipns/<name>/…`, as sent or as the site's host
    /// made it.
    pub url_path: String,
    /// The site the host named, when it is not the path gateway.
    pub site: Option<SiteOrigin>,
    /// The path the client sees in its address bar (percent-encoded): the
    /// content path on the path gateway, the path under the site's root on
    /// a site's own origin. Redirects and links are written with it.
    pub public_path: String,
    pub query: Option<String>,
    pub trailing_slash: bool,
    pub format: Option<Format>,
    /// The format came from `Accept` rather than `?format=`.
    pub format_from_accept: bool,
    pub car: CarParams,
    /// `?filename=`: name for Content-Disposition and for the content type.
    pub filename: Option<String>,
    /// `?download=true`: Content-Disposition `attachment`.
    pub download: bool,
    /// The client renders HTML (a browser): errors and DAG views as pages.
    pub wants_html: bool,
    /// `Cache-Control: only-if-cached`: never leave the local stores.
    pub only_if_cached: bool,
    /// `?provider=` values, unparsed (see [`crate::routing::parse_hints`]).
    pub provider_hints: Vec<String>,
}

impl ContentRequest {
    /// The last path segment, the name used for content types.
    pub fn file_name(&self) -> Option<&str> {
        self.filename
            .as_deref()
            .or(self.segments.last().map(String::as_str))
    }
}

fn bad(message: String) -> GatewayError {
    GatewayError::BadRequest(message)
}

/// The media type of an IPNS record (IPIP-351).
pub const IPNS_RECORD: &str = "application/vnd.ipfs.ipns-record";

/// A request target (path and query) longer than `max_url_bytes` is a 414.
pub fn check_target_length(uri: &Uri, max_url_bytes: usize) -> Result<(), GatewayError> {
    let target_len = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > max_url_bytes {
        return Err(GatewayError::UriTooLong(format!(
            "request URL is {target_len} bytes, longer than the {max_url_bytes} byte limit"
        )));
    }
    Ok(())
}

/// A browser registering a service worker (`Service-Worker: script`) for a
/// whole content root, `/ipfs/<cid>` or `/ipns/<name>` without the slash,
/// would get a scope wider than that root: the path gateway spec requires a
/// 400. Under the slash (`/ipfs/<cid>/sw.js`) the scope is the root's own.
fn refuse_root_service_worker(
    headers: &HeaderMap,
    below_root: &[&str],
    trailing_slash: bool,
) -> Result<(), GatewayError> {
    let registering = headers
        .get_all("service-worker")
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"script"));
    if registering && below_root.is_empty() && !trailing_slash {
        return Err(bad(
            "Service-Worker registration is not allowed for a whole content root (/ipfs/<cid> or /ipns/<name>): register it under /ipfs/<cid>/".into(),
        ));
    }
    Ok(())
}

/// `uri` must start with `/ipfs/` or `/ipns/`.
pub fn parse(
    uri: &Uri,
    headers: &HeaderMap,
    max_url_bytes: usize,
) -> Result<ContentRequest, GatewayError> {
    check_target_length(uri, max_url_bytes)?;
    let url_path = uri.path().to_string();
    let (rest, ipns) = match url_path.strip_prefix("/ipfs/") {
        Some(rest) => (rest, false),
        None => (
            url_path.strip_prefix("/ipns/").ok_or_else(|| {
                bad("content paths start with /ipfs/<cid> or /ipns/<name>".into())
            })?,
            true,
        ),
    };
    let mut raw_segments: Vec<&str> = rest.split('/').collect();
    let trailing_slash = raw_segments.len() > 1 && raw_segments.last() == Some(&"");
    if trailing_slash {
        raw_segments.pop();
    }
    let root_text = raw_segments.remove(0);
    refuse_root_service_worker(headers, &raw_segments, trailing_slash)?;
    let (root, ipns_name) = if ipns {
        if root_text.is_empty() {
            return Err(bad("missing name after /ipns/".into()));
        }
        // Resolved later; the identity CID of no bytes holds the place.
        let empty = multihash::Multihash::wrap(0, &[])
            .map_err(|e| GatewayError::Internal(format!("empty identity multihash: {e}")))?;
        (Cid::new_v1(0x55, empty), Some(decode_segment(root_text)?))
    } else {
        (parse_cid(root_text)?, None)
    };
    if raw_segments.len() > MAX_PATH_SEGMENTS {
        return Err(bad(format!(
            "path has more than {MAX_PATH_SEGMENTS} segments"
        )));
    }
    let segments = raw_segments
        .iter()
        .map(|raw| decode_segment(raw))
        .collect::<Result<Vec<_>, _>>()?;

    let mut request = ContentRequest {
        root,
        ipns_name,
        ipns_record: false,
        segments,
        public_path: url_path.clone(),
        url_path,
        site: None,
        query: uri.query().map(str::to_string),
        trailing_slash,
        format: None,
        format_from_accept: false,
        car: CarParams::default(),
        filename: None,
        download: false,
        wants_html: wants_html(headers),
        only_if_cached: header_has_token(headers, header::CACHE_CONTROL, "only-if-cached"),
        provider_hints: Vec::new(),
    };

    let mut query_car = QueryCar::default();
    for (key, value) in form_urlencoded(uri.query().unwrap_or("")) {
        match key.as_str() {
            "format" if value == "ipns-record" => request.ipns_record = true,
            "format" => request.format = Some(Format::from_query(&value)?),
            "filename" => {
                if value.contains(['\0', '\r', '\n']) {
                    return Err(bad(format!(
                        "filename {value:?} contains a control character"
                    )));
                }
                request.filename = Some(value);
            }
            "download" => request.download = value == "true",
            "dag-scope" => query_car.scope = Some(parse_scope(&value)?),
            "entity-bytes" => query_car.entity_bytes = Some(parse_entity_bytes(&value)?),
            "car-version" => {
                check_car_version(&value)?;
                query_car.version_given = true;
            }
            "car-order" => {
                check_car_order(&value)?;
                query_car.order_given = true;
            }
            "car-dups" => query_car.dups = Some(parse_dups(&value)?),
            "provider" => request.provider_hints.push(value),
            _ => {}
        }
    }

    let first_accepted = parse_accept(headers).into_iter().find(|r| r.quality > 0.0);
    if request.format.is_none() && first_accepted.is_some_and(|r| r.media == IPNS_RECORD) {
        request.ipns_record = true;
    }
    if request.ipns_record && request.ipns_name.is_none() {
        return Err(bad(
            "an IPNS record is asked for by name: /ipns/<name>?format=ipns-record".into(),
        ));
    }
    let accepted = negotiate_accept(headers)?;
    if request.format.is_none() {
        if let Some((format, _)) = &accepted {
            request.format = Some(*format);
            request.format_from_accept = true;
        }
    }
    // CAR parameters in Accept apply whether `car` was chosen by Accept or
    // by `?format=car`, where the query does not say otherwise.
    if let Some((Format::Car, params)) = &accepted {
        if request.format == Some(Format::Car) {
            query_car.merge_accept(params)?;
        }
    }
    request.car = CarParams {
        scope: query_car.scope.unwrap_or(DagScope::All),
        entity_bytes: query_car.entity_bytes,
        duplicates: query_car.dups.unwrap_or(false),
    };
    Ok(request)
}

/// The CAR parameters of the query string (`car-*`, `dag-scope`,
/// `entity-bytes`).
#[derive(Debug, Default, PartialEq)]
struct QueryCar {
    scope: Option<DagScope>,
    entity_bytes: Option<EntityBytes>,
    dups: Option<bool>,
    version_given: bool,
    order_given: bool,
}

impl QueryCar {
    /// Takes from an `Accept: application/vnd.ipld.car; …` range what the
    /// query left out: a `car-version`, `car-order` or `car-dups` query
    /// parameter wins over the same parameter in `Accept` (IPIP-0523), which
    /// is then not even checked.
    fn merge_accept(&mut self, params: &MediaParams) -> Result<(), GatewayError> {
        for (key, value) in params {
            match key.as_str() {
                "version" if !self.version_given => check_car_version(value)?,
                "order" if !self.order_given => check_car_order(value)?,
                "dups" if self.dups.is_none() => self.dups = Some(parse_dups(value)?),
                _ => {}
            }
        }
        Ok(())
    }
}

pub fn parse_cid(text: &str) -> Result<Cid, GatewayError> {
    if text.is_empty() {
        return Err(bad("missing CID after /ipfs/".into()));
    }
    let text = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| bad("CID is not valid UTF-8".into()))?;
    Cid::try_from(text.as_ref())
        .map_err(|e| bad(format!("invalid CID {:?}: {e}", truncate(&text, 120))))
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

fn decode_segment(raw: &str) -> Result<String, GatewayError> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| bad(format!("path segment {raw:?} is not valid UTF-8")))?;
    match decoded.as_ref() {
        "" => Err(bad("path has an empty segment (//)".into())),
        "." | ".." => Err(bad(format!(
            "path segment {decoded:?} is not allowed in a content path"
        ))),
        s if s.contains('\0') => Err(bad(format!("path segment {raw:?} contains a NUL byte"))),
        s if s.contains('/') => Err(bad(format!("path segment {raw:?} contains an encoded '/'"))),
        s => Ok(s.to_string()),
    }
}

fn form_urlencoded(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        (decode(k), decode(v))
    })
}

fn parse_scope(value: &str) -> Result<DagScope, GatewayError> {
    match value {
        "block" => Ok(DagScope::Block),
        "entity" => Ok(DagScope::Entity),
        "all" => Ok(DagScope::All),
        other => Err(bad(format!(
            "invalid dag-scope {other:?} (expected block, entity or all)"
        ))),
    }
}

pub fn parse_entity_bytes(value: &str) -> Result<EntityBytes, GatewayError> {
    let invalid = || {
        bad(format!(
            "invalid entity-bytes {value:?} (expected from:to, e.g. 0:1023 or -100:*)"
        ))
    };
    let (from, to) = value.split_once(':').ok_or_else(invalid)?;
    let from: i64 = from.parse().map_err(|_| invalid())?;
    let to = match to {
        "*" => None,
        to => Some(to.parse::<i64>().map_err(|_| invalid())?),
    };
    // Two non-negative bounds in the wrong order can never select anything.
    if let Some(to) = to {
        if from >= 0 && to >= 0 && to < from {
            return Err(bad(format!(
                "invalid entity-bytes {value:?}: to is before from"
            )));
        }
        if from < 0 && to < 0 && to < from {
            return Err(bad(format!(
                "invalid entity-bytes {value:?}: to is before from"
            )));
        }
    }
    Ok(EntityBytes { from, to })
}

fn check_car_version(value: &str) -> Result<(), GatewayError> {
    match value {
        "1" => Ok(()),
        other => Err(GatewayError::NotAcceptable(format!(
            "CAR version {other} is not supported (only 1)"
        ))),
    }
}

fn check_car_order(value: &str) -> Result<(), GatewayError> {
    match value {
        "dfs" | "unk" => Ok(()),
        other => Err(GatewayError::NotAcceptable(format!(
            "CAR order {other:?} is not supported (dfs or unk)"
        ))),
    }
}

fn parse_dups(value: &str) -> Result<bool, GatewayError> {
    match value {
        "y" => Ok(true),
        "n" => Ok(false),
        other => Err(bad(format!("invalid CAR dups {other:?} (expected y or n)"))),
    }
}

/// Parameters of a media type, e.g. `version=1` of a CAR.
type MediaParams = Vec<(String, String)>;

/// A media range from `Accept`, with its parameters (q removed).
struct MediaRange {
    media: String,
    params: MediaParams,
    quality: f32,
}

fn parse_accept(headers: &HeaderMap) -> Vec<MediaRange> {
    let mut ranges: Vec<MediaRange> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next()?.to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let mut quality = 1.0;
            let mut params = Vec::new();
            for param in parts {
                let (k, v) = param.split_once('=').unwrap_or((param, ""));
                let (k, v) = (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                );
                if k == "q" {
                    quality = v.parse().unwrap_or(0.0);
                } else {
                    params.push((k, v));
                }
            }
            Some(MediaRange {
                media,
                params,
                quality,
            })
        })
        .collect();
    // Stable: equal weights keep the client's order.
    ranges.sort_by(|a, b| b.quality.total_cmp(&a.quality));
    ranges
}

/// The most preferred format in `Accept` that this gateway serves, if the
/// client prefers one over a generic type.
fn negotiate_accept(headers: &HeaderMap) -> Result<Option<(Format, MediaParams)>, GatewayError> {
    for range in parse_accept(headers) {
        if range.quality <= 0.0 {
            continue;
        }
        if let Some(format) = Format::from_media_type(&range.media) {
            return Ok(Some((format, range.params)));
        }
        if range.media == "*/*"
            || range.media == "text/html"
            || range.media.starts_with("text/")
            || range.media.starts_with("image/")
        {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Whether a request asks for a verifiable response (`?format=raw`, `car`
/// or `ipns-record`, or their media types in `Accept`): a trustless client,
/// which has no origin to protect and is not sent to a subdomain.
pub fn asks_for_verifiable(uri: &Uri, headers: &HeaderMap) -> bool {
    let by_query = form_urlencoded(uri.query().unwrap_or("")).any(|(key, value)| {
        key == "format" && matches!(value.as_str(), "raw" | "car" | "ipns-record")
    });
    by_query
        || parse_accept(headers).iter().any(|range| {
            range.quality > 0.0
                && (range.media == IPNS_RECORD
                    || matches!(
                        Format::from_media_type(&range.media),
                        Some(Format::Raw | Format::Car)
                    ))
        })
}

/// The client renders HTML (a browser): the one place this is decided, for
/// error pages and DAG views alike. A `text/html` range with `q=0` is a
/// refusal, not a wish.
pub fn wants_html(headers: &HeaderMap) -> bool {
    parse_accept(headers)
        .iter()
        .any(|r| r.media == "text/html" && r.quality > 0.0)
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const CID: &str = "bafkqaaa";

    fn req(uri: &str, accept: Option<&str>) -> Result<ContentRequest, GatewayError> {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        parse(&uri.parse().unwrap(), &headers, 8192)
    }

    #[test]
    fn parses_path_and_slash() {
        let r = req(&format!("/ipfs/{CID}/a%20b/c/"), None).unwrap();
        assert_eq!(r.segments, vec!["a b", "c"]);
        assert!(r.trailing_slash);
        assert!(!req(&format!("/ipfs/{CID}"), None).unwrap().trailing_slash);
    }

    #[test]
    fn rejects_bad_paths() {
        for bad_path in [
            "/ipfs/notacid",
            "/ipfs/",
            "/ipfs/bafkqaaa/../x",
            "/ipfs/bafkqaaa/a%00b",
            "/ipfs/bafkqaaa/a//b",
            "/ipfs/bafkqaaa/a%2Fb",
        ] {
            let err = req(bad_path, None).unwrap_err();
            assert!(
                matches!(err, GatewayError::BadRequest(_)),
                "{bad_path}: {err:?}"
            );
        }
        let long = format!("/ipfs/{CID}/{}", "a".repeat(9000));
        assert!(matches!(req(&long, None), Err(GatewayError::UriTooLong(_))));
    }

    #[test]
    fn format_query_beats_accept() {
        // IPIP-0523: ?format= wins over any Accept, specific or not.
        for (query, accept, expected) in [
            ("raw", "application/vnd.ipld.car", Format::Raw),
            ("car", "application/vnd.ipld.raw", Format::Car),
            ("json", "application/vnd.ipld.raw", Format::Json),
            ("dag-cbor", "application/vnd.ipld.dag-json", Format::DagCbor),
            ("raw", "text/html,*/*;q=0.8", Format::Raw),
        ] {
            let r = req(&format!("/ipfs/{CID}?format={query}"), Some(accept)).unwrap();
            assert_eq!(r.format, Some(expected), "?format={query} with {accept}");
            assert!(!r.format_from_accept, "?format={query} with {accept}");
        }
        let by_accept = req(&format!("/ipfs/{CID}"), Some("application/vnd.ipld.raw")).unwrap();
        assert_eq!(by_accept.format, Some(Format::Raw));
        assert!(by_accept.format_from_accept);
    }

    #[test]
    fn car_query_parameters_beat_accept_parameters() {
        let car = |query: &str, accept: &str| {
            req(&format!("/ipfs/{CID}?format=car{query}"), Some(accept)).map(|r| r.car.duplicates)
        };
        // The query's car-dups wins, either way round.
        assert!(car("&car-dups=y", "application/vnd.ipld.car; dups=n").unwrap());
        assert!(!car("&car-dups=n", "application/vnd.ipld.car; dups=y").unwrap());
        // Without one in the query, Accept's applies, also under ?format=car.
        assert!(car("", "application/vnd.ipld.car; version=1; order=dfs; dups=y").unwrap());
        assert!(!car("", "application/vnd.ipld.car").unwrap());
        // A query car-order / car-version makes Accept's irrelevant...
        assert!(car("&car-order=dfs", "application/vnd.ipld.car; order=zigzag").is_ok());
        assert!(car("&car-version=1", "application/vnd.ipld.car; version=2").is_ok());
        // ... without one, Accept's is checked.
        assert!(matches!(
            car("", "application/vnd.ipld.car; order=zigzag"),
            Err(GatewayError::NotAcceptable(_))
        ));
        // Accept parameters of another format are no CAR parameters.
        assert!(!car("", "application/vnd.ipld.raw; dups=y").unwrap());
    }

    #[test]
    fn merge_accept_fills_only_what_the_query_left_out() {
        let params = |pairs: &[(&str, &str)]| -> MediaParams {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut from_query = QueryCar {
            dups: Some(false),
            order_given: true,
            ..QueryCar::default()
        };
        from_query
            .merge_accept(&params(&[("dups", "y"), ("order", "bogus")]))
            .unwrap();
        assert_eq!(from_query.dups, Some(false));
        let mut empty = QueryCar::default();
        empty.merge_accept(&params(&[("dups", "y")])).unwrap();
        assert_eq!(empty.dups, Some(true));
        assert!(QueryCar::default()
            .merge_accept(&params(&[("dups", "maybe")]))
            .is_err());
    }

    #[test]
    fn service_worker_scripts_are_refused_only_for_whole_roots() {
        let with_worker = |path: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("service-worker", HeaderValue::from_static("script"));
            parse(&path.parse().unwrap(), &headers, 8192)
        };
        for root in [format!("/ipfs/{CID}"), "/ipns/example.org".to_string()] {
            let err = with_worker(&root).unwrap_err();
            assert!(matches!(err, GatewayError::BadRequest(_)), "{root}");
            assert!(err.to_string().contains("Service-Worker"), "{root}: {err}");
            assert!(with_worker(&format!("{root}/")).is_ok(), "{root}/");
            assert!(
                with_worker(&format!("{root}/sw.js")).is_ok(),
                "{root}/sw.js"
            );
            assert!(req(&root, None).is_ok(), "{root} without the header");
        }
    }

    #[test]
    fn tar_by_query_and_by_accept() {
        let by_query = req(&format!("/ipfs/{CID}?format=tar"), None).unwrap();
        assert_eq!(by_query.format, Some(Format::Tar));
        let by_accept = req(&format!("/ipfs/{CID}"), Some("application/x-tar")).unwrap();
        assert_eq!(by_accept.format, Some(Format::Tar));
        assert!(by_accept.format_from_accept);
    }

    #[test]
    fn accept_with_quality_and_params() {
        let r = req(
            &format!("/ipfs/{CID}"),
            Some("application/vnd.ipld.raw;q=0.5, application/vnd.ipld.car;version=1;dups=y;q=0.9"),
        )
        .unwrap();
        assert_eq!(r.format, Some(Format::Car));
        assert!(r.car.duplicates);
        assert!(r.format_from_accept);
        let browser = req(
            &format!("/ipfs/{CID}"),
            Some("text/html,application/xhtml+xml,*/*;q=0.8"),
        )
        .unwrap();
        assert_eq!(browser.format, None);
        assert!(browser.wants_html);
    }

    #[test]
    fn verifiable_requests_are_recognised() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let none = HeaderMap::new();
        assert!(asks_for_verifiable(&uri("/ipfs/x?format=car"), &none));
        assert!(asks_for_verifiable(
            &uri("/ipns/x?a=1&format=ipns-record"),
            &none
        ));
        assert!(!asks_for_verifiable(&uri("/ipfs/x?format=dag-json"), &none));
        let mut accept = HeaderMap::new();
        accept.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.ipld.raw"),
        );
        assert!(asks_for_verifiable(&uri("/ipfs/x"), &accept));
        accept.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.ipld.car;q=0"),
        );
        assert!(!asks_for_verifiable(&uri("/ipfs/x"), &accept));
        accept.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert!(!asks_for_verifiable(&uri("/ipfs/x"), &accept));
    }

    #[test]
    fn wants_html_reads_media_ranges_and_quality() {
        let accept = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_static(value));
            wants_html(&headers)
        };
        assert!(accept("text/html"));
        assert!(accept("application/json, TEXT/HTML;q=0.1"));
        assert!(!accept("text/html;q=0"));
        assert!(!accept("text/htmlx"));
        assert!(!accept("*/*"));
        assert!(!wants_html(&HeaderMap::new()));
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(matches!(
            req(&format!("/ipfs/{CID}?format=zip"), None),
            Err(GatewayError::BadRequest(_))
        ));
        assert!(matches!(
            req(&format!("/ipfs/{CID}?format=car&dag-scope=most"), None),
            Err(GatewayError::BadRequest(_))
        ));
        for eb in ["abc", "1", "5:2", "1:x", ":"] {
            assert!(
                matches!(
                    req(&format!("/ipfs/{CID}?format=car&entity-bytes={eb}"), None),
                    Err(GatewayError::BadRequest(_))
                ),
                "{eb}"
            );
        }
        assert!(matches!(
            req(&format!("/ipfs/{CID}?format=car&car-version=2"), None),
            Err(GatewayError::NotAcceptable(_))
        ));
    }
}
