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
    ("signup.html", include_str!("templates/signup.html")),
    (
        "reset_request.html",
        include_str!("templates/reset_request.html"),
    ),
    (
        "reset_change.html",
        include_str!("templates/reset_change.html"),
    ),
    ("message.html", include_str!("templates/message.html")),
    ("unblock.html", include_str!("templates/unblock.html")),
    (
        "email/verify_email.subject.txt",
        include_str!("templates/email/verify_email.subject.txt"),
    ),
    (
        "email/verify_email.txt",
        include_str!("templates/email/verify_email.txt"),
    ),
    (
        "email/verify_email.html",
        include_str!("templates/email/verify_email.html"),
    ),
    (
        "email/reset_password.subject.txt",
        include_str!("templates/email/reset_password.subject.txt"),
    ),
    (
        "email/reset_password.txt",
        include_str!("templates/email/reset_password.txt"),
    ),
    (
        "email/reset_password.html",
        include_str!("templates/email/reset_password.html"),
    ),
    (
        "email/blocked_account.subject.txt",
        include_str!("templates/email/blocked_account.subject.txt"),
    ),
    (
        "email/blocked_account.txt",
        include_str!("templates/email/blocked_account.txt"),
    ),
    (
        "email/blocked_account.html",
        include_str!("templates/email/blocked_account.html"),
    ),
    (
        "email/breached_password.subject.txt",
        include_str!("templates/email/breached_password.subject.txt"),
    ),
    (
        "email/breached_password.txt",
        include_str!("templates/email/breached_password.txt"),
    ),
    (
        "email/breached_password.html",
        include_str!("templates/email/breached_password.html"),
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

    /// Renders a template, answering its error.
    pub fn try_render(&self, name: &str, ctx: Value) -> Result<String, String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("template {name}: {e}"))
    }

    /// Renders a page; a template error is logged and yields a plain fallback.
    pub fn render(&self, name: &str, ctx: Value) -> String {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(template = name, error = %portcullis_core::error::report(&e), "template rendering failed");
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
            }
        }
    }
}
