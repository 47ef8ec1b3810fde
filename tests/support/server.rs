//! A local HTTP server for tests: an axum router on a free loopback port.

use std::net::SocketAddr;

pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// Faults a fake server answers with instead of its usual answer: each matches the
/// requests whose "METHOD /path" starts with a prefix, a number of times.
pub struct Faults<F> {
    list: Vec<(String, F, usize)>,
}

impl<F> Default for Faults<F> {
    fn default() -> Self {
        Faults { list: Vec::new() }
    }
}

impl<F: Clone> Faults<F> {
    pub fn push(&mut self, prefix: &str, fault: F, times: usize) {
        self.list.push((prefix.into(), fault, times));
    }

    /// How many injected answers have not been given yet.
    pub fn pending(&self) -> usize {
        self.list.iter().map(|f| f.2).sum()
    }

    /// The fault for this request, if one is still due.
    pub fn take(&mut self, line: &str) -> Option<F> {
        let hit = self
            .list
            .iter_mut()
            .find(|(prefix, _, left)| *left > 0 && line.starts_with(prefix.as_str()))?;
        hit.2 -= 1;
        Some(hit.1.clone())
    }
}
