//! Pacing to GitHub's secondary rate limits, so rotagate never receives a limit
//! response: at most 100 requests in flight, at most 900 points a minute per endpoint
//! (a read costs 1, a write 5), at most 80 content-creating requests a minute.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// What a request costs against the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// GET, HEAD: 1 point.
    Read,
    /// PUT, PATCH, DELETE of settings such as secrets: 5 points.
    Write,
    /// Creates content (a commit, an issue, a pull request, a comment): 5 points and
    /// one of the content-creating budget.
    Create,
}

impl Cost {
    fn points(self) -> u32 {
        match self {
            Cost::Read => 1,
            Cost::Write | Cost::Create => 5,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// GitHub's "minute"; configurable so tests and benchmarks can scale it down.
    pub window: Duration,
    pub points_per_endpoint: u32,
    pub content_per_window: u32,
    pub concurrency: usize,
}

impl Limits {
    pub const GITHUB_COM: Limits = Limits {
        window: Duration::from_secs(60),
        points_per_endpoint: 900,
        content_per_window: 80,
        concurrency: 100,
    };
}

pub struct Pacer {
    limits: Option<Limits>,
    in_flight: Semaphore,
    spent: Mutex<HashMap<String, VecDeque<(Instant, u32)>>>,
    created: Mutex<VecDeque<Instant>>,
}

impl Pacer {
    /// `None`: no secondary limits (GitHub Enterprise Server's default).
    pub fn new(limits: Option<Limits>) -> Pacer {
        let concurrency = limits.map_or(Semaphore::MAX_PERMITS, |l| l.concurrency);
        Pacer {
            limits,
            in_flight: Semaphore::new(concurrency),
            spent: Mutex::new(HashMap::new()),
            created: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until a request to `endpoint` fits the limits; the permit holds its place
    /// among those in flight until dropped.
    pub async fn admit(&self, endpoint: &str, cost: Cost) -> SemaphorePermit<'_> {
        let permit = self.in_flight.acquire().await.expect("the semaphore is never closed");
        let Some(limits) = self.limits else {
            return permit;
        };
        loop {
            let wait = self.try_spend(&limits, endpoint, cost);
            match wait {
                None => return permit,
                Some(until) => tokio::time::sleep_until(until).await,
            }
        }
    }

    /// Records the request if it fits; otherwise says when to try again. The window is
    /// kept 5% longer than GitHub's: GitHub counts a request when it arrives, a moment
    /// after it is admitted here, so an exact window would meet the limit at its edge.
    fn try_spend(&self, limits: &Limits, endpoint: &str, cost: Cost) -> Option<Instant> {
        let limits = &Limits { window: limits.window + limits.window / 20, ..*limits };
        let now = Instant::now();
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        let window = spent.entry(endpoint.to_string()).or_default();
        while window.front().is_some_and(|(t, _)| *t + limits.window <= now) {
            window.pop_front();
        }
        while created.front().is_some_and(|t| *t + limits.window <= now) {
            created.pop_front();
        }
        let used: u32 = window.iter().map(|(_, p)| p).sum();
        if used + cost.points() > limits.points_per_endpoint {
            // Wait until enough of the oldest spending has left the window.
            let mut freed = 0;
            for (t, p) in window.iter() {
                freed += p;
                if used - freed + cost.points() <= limits.points_per_endpoint {
                    return Some(*t + limits.window);
                }
            }
        }
        if cost == Cost::Create && created.len() as u32 >= limits.content_per_window {
            return created.front().map(|t| *t + limits.window);
        }
        window.push_back((now, cost.points()));
        if cost == Cost::Create {
            created.push_back(now);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn points_per_endpoint_are_paced_over_the_window() {
        let limits = Limits {
            window: Duration::from_secs(60),
            points_per_endpoint: 900,
            content_per_window: 80,
            concurrency: 100,
        };
        let pacer = Pacer::new(Some(limits));
        let start = Instant::now();
        // 180 writes fit the first minute; the 181st waits for the window to move.
        let put = async || {
            let endpoint = "PUT /repos/{owner}/{repo}/actions/secrets/{name}";
            drop(pacer.admit(endpoint, Cost::Write).await);
        };
        for _ in 0..180 {
            put().await;
        }
        assert_eq!(Instant::now(), start);
        put().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(63), "the window and its 5% margin");
        // Another endpoint has its own budget.
        drop(pacer.admit("GET /repos/{owner}/{repo}", Cost::Read).await);
        assert_eq!(Instant::now() - start, Duration::from_secs(63));
    }

    #[tokio::test(start_paused = true)]
    async fn content_creation_has_its_own_budget() {
        let pacer = Pacer::new(Some(Limits::GITHUB_COM));
        let start = Instant::now();
        for i in 0..81 {
            let endpoint = format!("POST /endpoint/{i}");
            drop(pacer.admit(&endpoint, Cost::Create).await);
        }
        assert_eq!(Instant::now() - start, Duration::from_secs(63));
    }

    #[tokio::test(start_paused = true)]
    async fn without_limits_nothing_waits() {
        let pacer = Pacer::new(None);
        let start = Instant::now();
        for _ in 0..10_000 {
            drop(pacer.admit("PUT /x", Cost::Create).await);
        }
        assert_eq!(Instant::now(), start);
    }
}
