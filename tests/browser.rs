//! A site opened in a real browser (Debian's Chromium, headless) on its
//! subdomain origin, `http://<cid>.ipfs.localhost:<port>/` (Chromium
//! resolves `*.localhost` to loopback itself): the page's own script
//! reports, into the DOM Chromium dumps, that its stylesheet applied and
//! that a relative link loaded (`about/note.txt`); a directory listing renders with links
//! under the site's origin; a `_redirects` single-page-app rule serves the
//! app for a deep link. A screenshot is kept in the test's temp dir.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sluice::car::CarWriter;
use sluice::unixfs::builder::{build_directory, build_file, Built, FileLayout};

const INDEX: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sluice site</title>
<link rel="stylesheet" href="/style.css"></head>
<body><h1 id="title">a site on its own origin</h1>
<p id="style">style: pending</p><p id="link">link: pending</p><p id="where">path: pending</p>
<script src="/app.js"></script></body></html>
"#;
const STYLE: &str = "h1 { color: rgb(12, 34, 56); }\n";
const APP: &str = r#"
document.getElementById('where').textContent = 'path: ' + location.pathname + ' origin: ' + location.origin;
const color = getComputedStyle(document.getElementById('title')).color;
document.getElementById('style').textContent = 'style: ' + color;
fetch('about/note.txt').then(r => r.text()).then(t => {
  document.getElementById('link').textContent = 'link: ' + t.trim();
}).catch(e => { document.getElementById('link').textContent = 'link: failed ' + e; });
"#;

fn file(
    name: &str,
    text: &str,
    blocks: &mut Vec<sluice::unixfs::builder::Block>,
) -> (String, Built) {
    let built = build_file(text.as_bytes(), FileLayout::MODERN, &mut |b| blocks.push(b)).unwrap();
    (name.to_string(), built)
}

/// The site as a CAR: index, stylesheet, script, a linked file, a
/// directory without an index (listed), and the SPA rule.
fn site_car(dir: &Path) -> (PathBuf, cid::Cid) {
    let mut blocks = Vec::new();
    let about = vec![file("note.txt", "relative link works\n", &mut blocks)];
    let about = build_directory(about, false, &mut |b| blocks.push(b));
    let docs = vec![
        file("a.txt", "first\n", &mut blocks),
        file("b.txt", "second\n", &mut blocks),
    ];
    let docs = build_directory(docs, false, &mut |b| blocks.push(b));
    let entries = vec![
        file("index.html", INDEX, &mut blocks),
        file("style.css", STYLE, &mut blocks),
        file("app.js", APP, &mut blocks),
        file("_redirects", "/app/* /index.html 200\n", &mut blocks),
        ("about".to_string(), about),
        ("docs".to_string(), docs),
    ];
    let root = build_directory(entries, false, &mut |b| blocks.push(b));
    let path = dir.join("site.car");
    let mut writer = CarWriter::new(std::fs::File::create(&path).unwrap(), &[root.cid]).unwrap();
    for block in &blocks {
        writer.write_block(&block.cid, &block.data).unwrap();
    }
    writer.finish().unwrap();
    (path, root.cid)
}

fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "Chromium is missing (tests/run.sh installs Debian's chromium)"
        );
        eprintln!("SKIPPED: no Chromium");
    }
    found
}

/// Chromium's DOM of `url` after its scripts ran (or a screenshot of it).
fn open(browser: &Path, profile: &Path, url: &str, extra: &[String]) -> String {
    let mut command = Command::new(browser);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command.args(extra);
    command.arg(url);
    let output = command.output().expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_in_chromium() {
    let Some(browser) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (car, root) = site_car(dir.path());
    let gw = common::TestGateway::start_with(vec![car], |c| c.gateway.dnslink = false).await;
    let port = gw.base.rsplit(':').next().unwrap().to_string();
    let label = root
        .to_string_of_base(multibase::Base::Base32Lower)
        .unwrap();
    let origin = format!("http://{label}.ipfs.localhost:{port}");
    let profile = dir.path().join("profile");

    let dom = tokio::task::block_in_place(|| {
        open(
            &browser,
            &profile,
            &format!("{origin}/"),
            &["--dump-dom".into()],
        )
    });
    assert!(
        dom.contains("style: rgb(12, 34, 56)"),
        "the stylesheet applied:\n{dom}"
    );
    assert!(
        dom.contains("link: relative link works"),
        "the linked file loaded:\n{dom}"
    );
    assert!(dom.contains(&format!("origin: {origin}")), "{dom}");

    // The path form moves to the subdomain: the browser follows.
    let dom = tokio::task::block_in_place(|| {
        open(
            &browser,
            &profile,
            &format!("http://localhost:{port}/ipfs/{root}/"),
            &["--dump-dom".into()],
        )
    });
    assert!(
        dom.contains(&format!("origin: {origin}")),
        "redirected to the site's origin:\n{dom}"
    );

    let dom = tokio::task::block_in_place(|| {
        open(
            &browser,
            &profile,
            &format!("{origin}/docs/"),
            &["--dump-dom".into()],
        )
    });
    assert!(dom.contains("Index of"), "{dom}");
    assert!(dom.contains(r#"<a href="/docs/a.txt">a.txt</a>"#), "{dom}");
    assert!(dom.contains(r#"<a href="/docs/b.txt">b.txt</a>"#), "{dom}");

    let dom = tokio::task::block_in_place(|| {
        open(
            &browser,
            &profile,
            &format!("{origin}/app/users/42"),
            &["--dump-dom".into()],
        )
    });
    assert!(
        dom.contains("path: /app/users/42"),
        "the app serves a deep link:\n{dom}"
    );
    assert!(dom.contains("style: rgb(12, 34, 56)"), "{dom}");

    let shot = dir.path().join("site.png");
    tokio::task::block_in_place(|| {
        open(
            &browser,
            &profile,
            &format!("{origin}/"),
            &[
                format!("--screenshot={}", shot.display()),
                "--window-size=800,600".into(),
            ],
        )
    });
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if let Ok(keep) = std::env::var("SLUICE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}
