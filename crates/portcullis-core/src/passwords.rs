//! Password hashing off the async runtime: argon2id runs on tokio's blocking pool behind a
//! semaphore sized to the cores, so a burst of logins queues instead of starving requests.

use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Clone, Debug)]
pub struct PasswordPool {
    permits: Arc<Semaphore>,
}

impl PasswordPool {
    /// A pool running at most `concurrency` hashes at once.
    #[must_use]
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Sized to the machine's cores.
    #[must_use]
    pub fn sized_to_cores() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    }

    /// Verifies `password` against `stored`; `None` costs the same and answers `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            portcullis_crypto::password::verify(&password, stored.as_deref())
        })
        .await
        .unwrap_or(false)
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| "password pool closed".to_owned())?;
        tokio::task::spawn_blocking(move || portcullis_crypto::password::hash(&password))
            .await
            .map_err(|e| format!("password hashing task failed: {e}"))
    }
}
