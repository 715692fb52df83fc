//! Whether the time of a refused login tells an unknown email from a wrong password. The
//! answers are byte-identical apart from ids (a test checks that); this measures their
//! timing: attempts alternate between a wrong password for an existing user and any
//! password for an email with no account, one at a time, and each form post is timed
//! from the client. The report gives the median and p90 of each and their difference.

use crate::drive::{self, CALLBACK, WEB_CLIENT};
use anyhow::bail;
use std::time::Instant;

/// The timings of refused logins, in milliseconds.
#[derive(Debug, Clone)]
pub struct Timings {
    pub wrong_password: Vec<f64>,
    pub unknown_email: Vec<f64>,
}

/// The `p`-quantile (0.0–1.0) of `samples`, by nearest rank.
#[must_use]
pub fn quantile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One refused login of `email`: the form post's time in milliseconds.
async fn refused_login(http: &reqwest::Client, issuer: &str, email: &str) -> anyhow::Result<f64> {
    let mut url = url::Url::parse(&format!("{issuer}authorize"))?;
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", WEB_CLIENT),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
    ]);
    let r = http.get(url).send().await?;
    if r.status() != reqwest::StatusCode::SEE_OTHER {
        bail!("/authorize answered {}", r.status());
    }
    let page = drive::login_page(&r)?;
    let started = Instant::now();
    let r = drive::post_login(http, issuer, &page, email, "not-the-Password-1").await?;
    let status = r.status();
    let text = r.text().await?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    if status != reqwest::StatusCode::BAD_REQUEST || !text.contains("Wrong email or password.") {
        bail!("a refused login answered {status} without the wrong-credentials message");
    }
    Ok(elapsed)
}

/// `attempts` refused logins of each kind, alternating, against `issuer`. Existing users
/// are `user{i}@bench.example` (each gets one failure, far from any block).
pub async fn measure(issuer: &str, attempts: usize) -> anyhow::Result<Timings> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // Warm up both paths (the password pool, the caches) before timing.
    refused_login(&http, issuer, "user999@bench.example").await?;
    refused_login(&http, issuer, "warm-up@nowhere.example").await?;
    let mut timings = Timings {
        wrong_password: Vec::with_capacity(attempts),
        unknown_email: Vec::with_capacity(attempts),
    };
    for i in 0..attempts {
        let known = format!("user{i}@bench.example");
        let unknown = format!("nobody{i}@nowhere.example");
        // Alternate which goes first, so a drift of the machine hits both alike.
        if i % 2 == 0 {
            timings
                .wrong_password
                .push(refused_login(&http, issuer, &known).await?);
            timings
                .unknown_email
                .push(refused_login(&http, issuer, &unknown).await?);
        } else {
            timings
                .unknown_email
                .push(refused_login(&http, issuer, &unknown).await?);
            timings
                .wrong_password
                .push(refused_login(&http, issuer, &known).await?);
        }
    }
    Ok(timings)
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_nearest_rank() {
        let s = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&s, 0.5), 3.0);
        assert_eq!(quantile(&s, 0.9), 5.0);
        assert_eq!(quantile(&s, 0.0), 1.0);
    }
}
