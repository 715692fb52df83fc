//! Password hashing off the async runtime: argon2id runs on a fixed set of threads, one per
//! core, so a burst of logins queues instead of starving requests.
//!
//! The threads are the pool's own rather than tokio's blocking pool: each argon2id hash
//! allocates 19 MiB, and the C allocator keeps that much per thread that ever hashed. On
//! tokio's pool, which grows and replaces threads, that was 200 MiB after a login burst;
//! with fixed threads it is one hash's memory per core.

use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting for a hashing thread at most; past it, callers wait to hand theirs over.
const QUEUE: usize = 1024;

#[derive(Clone, Debug)]
pub struct PasswordPool {
    jobs: mpsc::Sender<Job>,
}

impl PasswordPool {
    /// A pool of `threads` hashing threads. They stop when the last handle is dropped.
    ///
    /// # Panics
    /// When the operating system refuses to start a thread.
    #[must_use]
    pub fn new(threads: usize) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("portcullis-argon2-{i}"))
                .spawn(move || {
                    loop {
                        // One thread waits on the queue at a time; the others on the lock.
                        let job = rx
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .blocking_recv();
                        match job {
                            // A job that panics fails its caller (its answer is dropped),
                            // not the thread: later hashes still have it.
                            Some(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            None => break,
                        }
                    }
                })
                .expect("starting a password hashing thread");
        }
        Self { jobs }
    }

    /// Sized to the cores this process may run on.
    #[must_use]
    pub fn sized_to_cores() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.jobs.send(job).await.ok()?;
        rx.await.ok()
    }

    /// Verifies `password` against `stored`; `None` costs the same and answers `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> bool {
        self.run(move || portcullis_crypto::password::verify(&password, stored.as_deref()))
            .await
            .unwrap_or(false)
    }

    /// Computes the dummy hash on a hashing thread (see `portcullis_crypto::password`).
    pub async fn warm_up(&self) {
        let _ = self.run(portcullis_crypto::password::warm_up).await;
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, String> {
        self.run(move || portcullis_crypto::password::hash(&password))
            .await
            .ok_or_else(|| "password hashing stopped".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_and_verifies_on_its_threads() {
        let pool = PasswordPool::new(2);
        let hashed = pool
            .hash("a long test passphrase".to_owned())
            .await
            .unwrap();
        let (yes, no) = tokio::join!(
            pool.verify("a long test passphrase".to_owned(), Some(hashed.clone())),
            pool.verify("wrong".to_owned(), Some(hashed)),
        );
        assert!(yes && !no);
        assert!(!pool.verify("x".to_owned(), None).await);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let pool = PasswordPool::new(1);
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, None);
        assert_eq!(pool.run(|| 7u8).await, Some(7));
    }
}
