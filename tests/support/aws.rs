//! moto's server mode (a real AWS API emulator, installed by scripts/install-test-deps)
//! on a loopback port, behind a proxy that forwards every request unchanged and can
//! answer an operation with AWS's own errors instead: AccessDeniedException,
//! ThrottlingException, InternalServiceError.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::json;

use crate::support::server::Faults;

#[derive(Debug, Clone)]
pub enum Fault {
    /// AccessDeniedException, as IAM answers an action no policy allows.
    Denied,
    Throttled,
    Internal,
}

pub struct Moto {
    child: Child,
    proxy: SocketAddr,
    faults: Arc<Mutex<Faults<Fault>>>,
    targets: Arc<Mutex<Vec<String>>>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is installed (scripts/install-test-deps)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let faults: Arc<Mutex<Faults<Fault>>> = Default::default();
        let targets: Arc<Mutex<Vec<String>>> = Default::default();
        let upstream = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let (f, t) = (faults.clone(), targets.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (f, t, client, upstream) =
                    (f.clone(), t.clone(), client.clone(), upstream.clone());
                async move {
                    let target = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    t.lock().unwrap().push(target.clone());
                    if let Some(fault) = f.lock().unwrap().take(&target) {
                        return error(fault, &target);
                    }
                    let mut request = client.request(method, format!("{upstream}{uri}"));
                    for (k, v) in &headers {
                        if k != "host" {
                            request = request.header(k, v);
                        }
                    }
                    let answer = request.body(body).send().await.unwrap();
                    let mut response = Response::builder().status(answer.status().as_u16());
                    for (k, v) in answer.headers() {
                        response = response.header(k, v);
                    }
                    response.body(Body::from(answer.bytes().await.unwrap())).unwrap()
                }
            },
        );
        let proxy = crate::support::server::serve(app).await;
        Moto { child, proxy, faults, targets }
    }

    /// What AWS_ENDPOINT_URL points at.
    pub fn url(&self) -> String {
        format!("http://{}", self.proxy)
    }

    /// Answers the next `times` calls of `target` (e.g. `secretsmanager.PutSecretValue`,
    /// `AmazonSSM.PutParameter`) with `fault`.
    pub fn inject(&self, target: &str, fault: Fault, times: usize) {
        self.faults.lock().unwrap().push(target, fault, times);
    }

    pub fn pending_faults(&self) -> usize {
        self.faults.lock().unwrap().pending()
    }

    /// The X-Amz-Target of every call, in order.
    pub fn calls(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }

    /// Calls whose target is `target`.
    pub fn count(&self, target: &str) -> usize {
        self.calls().iter().filter(|t| *t == target).count()
    }
}

fn error(fault: Fault, target: &str) -> Response {
    let action = target.replace("secretsmanager.", "secretsmanager:").replace("AmazonSSM.", "ssm:");
    let (status, kind, message) = match fault {
        Fault::Denied => (
            400,
            "AccessDeniedException",
            format!(
                "User: arn:aws:sts::123456789012:assumed-role/rotagate-ci/GitHubActions is not authorized to perform: {action} because no identity-based policy allows the {action} action"
            ),
        ),
        Fault::Throttled => (400, "ThrottlingException", "Rate exceeded".to_string()),
        Fault::Internal => (500, "InternalServiceError", "An internal error occurred".to_string()),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", kind)
        .header("x-amzn-requestid", "7f3e6a52-4a2b-4f7e-9b0e-2d1f3c4b5a69")
        .body(Body::from(json!({ "__type": kind, "Message": message }).to_string()))
        .unwrap()
}
