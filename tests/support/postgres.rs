//! A real PostgreSQL server for a test: `initdb` and `pg_ctl` (as the `postgres` user
//! when the tests run as root) on a temp dir and a free loopback port, SCRAM
//! authentication, every statement logged so a test can read what the server saw.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const ADMIN_PASSWORD: &str = "admin-pw-SECRET-31";

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// Where initdb lives: ROTAGATE_PG_BIN, the newest /usr/lib/postgresql/*/bin, or PATH.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ROTAGATE_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_else(|| {
        let out = Command::new("sh").args(["-c", "command -v initdb"]).output().expect("sh runs");
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            !path.is_empty(),
            "PostgreSQL is not installed (scripts/install-test-deps installs it)"
        );
        Path::new(&path).parent().unwrap().to_path_buf()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root (the server
/// refuses to run as root).
fn pg(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let exe = bin.join(program);
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    c.args(args).current_dir("/");
    let out = c.output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    pub fn start() -> Cluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("rotagate-pg-").tempdir().unwrap();
        std::fs::write(dir.path().join("pwfile"), ADMIN_PASSWORD).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown to postgres failed");
        }
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap().to_string();
        let pwfile = dir.path().join("pwfile");
        pg(
            &bin,
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let port = free_port();
        let log = dir.path().join("server.log");
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c log_statement=all -c password_encryption=scram-sha-256 -c fsync=off",
            dir.path().display()
        );
        pg(
            &bin,
            "pg_ctl",
            &["-D", &data_s, "-o", &opts, "-l", log.to_str().unwrap(), "-w", "start"],
        );
        Cluster { dir, bin, port }
    }

    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres:{ADMIN_PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// The server's log: every statement it received.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub async fn admin(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&self.admin_url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    /// Whether `role` can log in with `password`.
    pub async fn can_login(&self, role: &str, password: &str) -> bool {
        let url = format!(
            "postgres://{role}:{password}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        );
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client.simple_query("SELECT 1").await.is_ok()
            }
            Err(_) => false,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = std::panic::catch_unwind(|| {
            pg(&self.bin, "pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
        });
    }
}
