//! HTML pages rendered from the templates in `static/` (minijinja;
//! embedded in the binary, so the gateway needs no files at run time).
//! Listing Etags carry a hash of the templates, so a new template is a new
//! Etag.

use std::sync::OnceLock;

use axum::http::StatusCode;
use minijinja::{context, Environment};

const STYLE: &str = include_str!("../../static/style.css");

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // The `.html` names turn on HTML auto-escaping for every value.
        env.add_template(
            "directory.html",
            include_str!("../../static/directory.html"),
        )
        .expect("directory template parses");
        env.add_template("dag.html", include_str!("../../static/dag.html"))
            .expect("dag template parses");
        env.add_template("error.html", include_str!("../../static/error.html"))
            .expect("error template parses");
        env.add_template("sessions.html", include_str!("../../static/sessions.html"))
            .expect("sessions template parses");
        env.add_template("landing.html", include_str!("../../static/landing.html"))
            .expect("landing template parses");
        // Not `.html`: plain text, not escaped.
        env.add_template("landing.txt", include_str!("../../static/landing.txt"))
            .expect("landing text template parses");
        env
    })
}

/// A hash of the templates, so Etags of rendered pages change with them.
pub fn templates_version() -> u64 {
    static VERSION: OnceLock<u64> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let texts = [
            include_str!("../../static/directory.html"),
            include_str!("../../static/dag.html"),
            STYLE,
        ];
        super::etag::fnv1a(texts.iter().flat_map(|t| t.bytes()))
    })
}

pub fn render(name: &str, ctx: minijinja::Value) -> String {
    let ctx = context! { style => STYLE, ..ctx };
    environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| format!("template {name} failed to render: {e}"))
}

pub fn error_page(status: StatusCode, message: &str) -> String {
    render(
        "error.html",
        context! {
            status => status.as_u16(),
            reason => status.canonical_reason().unwrap_or(""),
            message => message,
        },
    )
}
