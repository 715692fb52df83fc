//! Server-rendered pages (Universal Login, errors, logout) with minijinja. Built-in
//! templates are compiled in; a directory of same-named files overrides them.

use minijinja::{Environment, Value};
use std::path::PathBuf;

const BUILT_IN: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("logged_out.html", include_str!("templates/logged_out.html")),
    ("form_post.html", include_str!("templates/form_post.html")),
    (
        "web_message.html",
        include_str!("templates/web_message.html"),
    ),
    (
        "unavailable.html",
        include_str!("templates/unavailable.html"),
    ),
];

/// The stylesheet served at `/u/assets/style.css`.
pub const STYLE_CSS: &str = include_str!("templates/style.css");

#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Loads templates, preferring files in `override_dir`.
    pub fn new(override_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_loader(move |name| {
            if let Some(dir) = &override_dir {
                let path = dir.join(name);
                if !name.contains("..") && path.is_file() {
                    return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::TemplateNotFound,
                            "unreadable template",
                        )
                        .with_source(e)
                    });
                }
            }
            Ok(BUILT_IN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| (*t).to_owned()))
        });
        // Fail at start, not at first request, if an override does not compile.
        for (name, _) in BUILT_IN {
            env.get_template(name)?;
        }
        Ok(Self { env })
    }

    /// Renders a page; a template error is logged and yields a plain fallback.
    pub fn render(&self, name: &str, ctx: Value) -> String {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(template = name, error = %e, "template rendering failed");
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
            }
        }
    }
}
