//! docs/metrics.md against what `/metrics` serves, both ways, over real `tessera serve` and
//! `tessera verifier` processes whose endpoints were exercised so every family has a series;
//! and the Grafana dashboard's queries against docs/metrics.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const API_KEY: &str = "metrics-doc-api-key-0123456789abcdef";

/// Labels Prometheus adds or histograms carry: allowed in queries whatever the metric.
const PROMETHEUS_LABELS: [&str; 3] = ["job", "instance", "le"];

fn repo_file(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Family {
    kind: String,
    labels: BTreeSet<String>,
}

#[derive(Debug)]
struct DocRow {
    family: Family,
    served_by: BTreeSet<String>,
}

/// The reference table of docs/metrics.md: metric name (as queried: counters with `_total`)
/// to type, labels and the commands that serve it.
fn doc_table() -> BTreeMap<String, DocRow> {
    let text = repo_file("docs/metrics.md");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `tessera_")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert!(cells.len() >= 5, "a row of five cells: {line}");
        let name = cells[0].trim_matches('`').to_owned();
        let labels = if cells[2] == "—" {
            BTreeSet::new()
        } else {
            cells[2]
                .split(',')
                .map(|l| l.trim().trim_matches('`').to_owned())
                .collect()
        };
        let served_by = cells[3].split(',').map(|s| s.trim().to_owned()).collect();
        let row = DocRow {
            family: Family {
                kind: cells[1].to_owned(),
                labels,
            },
            served_by,
        };
        assert!(out.insert(name.clone(), row).is_none(), "{name} twice");
    }
    assert!(out.len() > 10, "the table was not found: {out:?}");
    out
}

/// `key="value",…` inside braces (values may hold `{`, `}` and `,`: route patterns).
fn label_names(inner: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = inner;
    while let Some((key, after)) = rest.split_once("=\"") {
        names.push(key.trim_start_matches(',').trim().to_owned());
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    names
}

/// What a `/metrics` answer serves: the family names as queried, with types and labels.
fn served(text: &str) -> BTreeMap<String, Family> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
        }
    }
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = l.find(['{', ' ']).unwrap();
        let sample = &l[..end];
        let (family, kind) = types
            .iter()
            .filter(|(f, _)| sample.starts_with(f.as_str()))
            .max_by_key(|(f, _)| f.len())
            .unwrap_or_else(|| panic!("a sample without a TYPE: {l}"));
        let queried = match kind.as_str() {
            "counter" => format!("{family}_total"),
            _ => family.clone(),
        };
        let mut labels: BTreeSet<String> = if l[end..].starts_with('{') {
            let close = l.rfind('}').unwrap();
            label_names(&l[end + 1..close]).into_iter().collect()
        } else {
            BTreeSet::new()
        };
        labels.remove("le");
        let entry = out.entry(queried).or_insert_with(|| Family {
            kind: kind.clone(),
            labels: labels.clone(),
        });
        assert_eq!(entry.labels, labels, "one label set per family: {l}");
    }
    out
}

fn check_against_doc(command: &str, text: &str) {
    let doc = doc_table();
    let served = served(text);
    let documented: BTreeMap<&String, &Family> = doc
        .iter()
        .filter(|(_, r)| r.served_by.contains(command))
        .map(|(n, r)| (n, &r.family))
        .collect();
    for (name, family) in &served {
        let row = doc.get(name).unwrap_or_else(|| {
            panic!(
                "`tessera {command}` serves {name} ({family:?}), which docs/metrics.md does \
                 not list: add a row to its table (and a panel to docs/grafana/tessera.json)"
            )
        });
        assert!(
            row.served_by.contains(command),
            "docs/metrics.md does not say `{command}` serves {name}"
        );
        assert_eq!(
            &row.family, family,
            "docs/metrics.md: type or labels of {name}"
        );
    }
    for name in documented.keys() {
        assert!(
            served.contains_key(*name),
            "docs/metrics.md lists {name} for `tessera {command}`, which does not serve it \
             (after every endpoint that makes it was called):\n{text}"
        );
    }
}

// === the processes ===

struct Proc {
    child: Child,
    base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tessera <command> --config <config>` in `dir`, on the port it reports.
async fn start(command: &str, config: &Path, dir: &Path, env: &[(&str, String)]) -> Proc {
    let stdout = dir.join(format!("{command}.out"));
    let stderr = dir.join(format!("{command}.err"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg(command)
        .arg("--config")
        .arg(config)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut p = Proc {
        child: cmd.spawn().unwrap(),
        base: String::new(),
    };
    for _ in 0..1000 {
        // Every line, the address included, is on the log (standard error).
        let out = std::fs::read_to_string(&stderr).unwrap_or_default();
        if let Some(addr) = crate::common::listening_addr(&out) {
            p.base = format!("http://{addr}");
            return p;
        }
        if let Some(status) = p.child.try_wait().unwrap() {
            panic!(
                "tessera {command} exited ({status}):\n{}\n{out}",
                std::fs::read_to_string(&stdout).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("tessera {command} did not start within 20 s");
}

async fn post(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let r = client
        .post(format!("{base}{path}"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

fn cookie(v: &Value, prefix: &str) -> String {
    v["set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .find(|c| c.starts_with(prefix))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no {prefix} cookie in {v}"))
}

async fn text(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed; scripts/test installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_metrics_reference_lists_exactly_what_serve_and_verifier_serve() {
    let dir = tempfile::tempdir().unwrap();
    // A PEM public key for `[verify] public_keys` (the verifier key gauges of `serve`).
    openssl(
        &["genpkey", "-algorithm", "ed25519", "-out", "other.key"],
        dir.path(),
    );
    openssl(
        &["pkey", "-in", "other.key", "-pubout", "-out", "other.pem"],
        dir.path(),
    );
    let config = dir.path().join("tessera.toml");
    // The default store (redb in the data directory, for the commit metrics) and rotation on
    // (for the signing key's next rotation).
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\napi_keys = [{API_KEY:?}]\n\
             [verify]\npublic_keys = [{:?}]\n",
            dir.path().join("data").display().to_string(),
            dir.path().join("other.pem").display().to_string(),
        ),
    )
    .unwrap();
    let serve = start("serve", &config, dir.path(), &[]).await;
    let c = reqwest::Client::new();
    let base = serve.base.as_str();
    // A client-side anonymous session, then a login (store, writes, a token), a resolve, a
    // token check, a minted token, the session list and a logout.
    let v = post(
        &c,
        base,
        "/v1/session/update",
        json!({"cookie": "", "set": {"a": 1}}),
    )
    .await;
    let anon = cookie(&v, "__Host-tessera-anon=");
    let v = post(
        &c,
        base,
        "/v1/session/login",
        json!({"cookie": anon, "user": {"id": "alice"}}),
    )
    .await;
    let session = cookie(&v, "__Host-tessera=");
    let token = cookie(&v, "__Host-tessera-token=")
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    post(
        &c,
        base,
        "/v1/session/resolve",
        json!({"cookie": session.clone()}),
    )
    .await;
    post(&c, base, "/v1/tokens", json!({"sub": "bob"})).await;
    let r = c
        .get(format!("{base}/v1/verify"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.headers());
    let r = c
        .get(format!("{base}/v1/users/alice/sessions"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    post(&c, base, "/v1/session/logout", json!({"cookie": session})).await;
    // A client with a wrong API key, past the sampling of security lines (10 a minute).
    for _ in 0..12 {
        let r = c
            .get(format!("{base}/v1/users/alice/sessions"))
            .bearer_auth("not-the-api-key-0123456789abcdef0123")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let m = text(&c, format!("{base}/metrics")).await;
    check_against_doc("serve", &m);
    assert!(
        m.contains("tessera_key_next_rotation_seconds{purpose=\"signing\"}"),
        "{m}"
    );

    // The verifier alone, on the service's keys and revocations.
    let vconfig = dir.path().join("verifier.toml");
    std::fs::write(&vconfig, "[verify]\nmode = \"optional\"\n").unwrap();
    let verifier = start(
        "verifier",
        &vconfig,
        dir.path(),
        &[
            ("TESSERA_LISTEN", "127.0.0.1:0".to_owned()),
            (
                "TESSERA_VERIFY_JWKS",
                format!("{base}/.well-known/jwks.json"),
            ),
            (
                "TESSERA_VERIFY_REVOCATIONS",
                format!("{base}/v1/revocations"),
            ),
        ],
    )
    .await;
    let r = c
        .get(format!("{}/v1/verify", verifier.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // A client with forged tokens, past the sampling of security lines.
    for _ in 0..12 {
        let r = c
            .get(format!("{}/v1/verify", verifier.base))
            .bearer_auth("eyJhbGciOiJFZERTQSJ9.e30.c2ln")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let m = text(&c, format!("{}/metrics", verifier.base)).await;
    check_against_doc("verifier", &m);
}

// === the dashboard ===

/// Every query string of the dashboard: panel targets' `expr` and template variable
/// queries.
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) if s.contains("tessera_") => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression, each with the labels its selector names.
fn metrics_in(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("tessera_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_owned();
        let after = &tail[end..];
        let labels = if let Some(sel) = after.strip_prefix('{') {
            let close = sel.find('}').unwrap();
            sel[..close]
                .split(',')
                .filter_map(|m| {
                    let key = m.split(['=', '!']).next()?.trim();
                    (!key.is_empty()).then(|| key.to_owned())
                })
                .collect()
        } else {
            Vec::new()
        };
        out.push((name, labels));
        rest = after;
    }
    out
}

/// The labels of `by (…)` and `without (…)` clauses.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kw in ["by (", "by(", "without (", "without("] {
        for part in expr.split(kw).skip(1) {
            let inner = part.split(')').next().unwrap();
            out.extend(inner.split(',').map(|l| l.trim().to_owned()));
        }
    }
    out
}

#[test]
fn every_dashboard_query_uses_documented_metrics_and_labels() {
    let doc = doc_table();
    let dashboard: Value = serde_json::from_str(&repo_file("docs/grafana/tessera.json"))
        .expect("docs/grafana/tessera.json is JSON");
    assert_eq!(dashboard["title"], "Tessera");
    let mut qs = Vec::new();
    queries(&dashboard, &mut qs);
    assert!(qs.len() > 10, "{qs:?}");
    let mut used = BTreeSet::new();
    for q in &qs {
        let found = metrics_in(q);
        assert!(!found.is_empty(), "a query with no Tessera metric: {q}");
        let mut labels_here: BTreeSet<&str> = PROMETHEUS_LABELS.into_iter().collect();
        for (name, labels) in &found {
            // A histogram is queried through its series.
            let row = doc
                .get(name)
                .map(|r| (name.as_str(), r))
                .or_else(|| {
                    ["_bucket", "_sum", "_count"].iter().find_map(|s| {
                        let base = name.strip_suffix(s)?;
                        let (n, r) = doc.get_key_value(base)?;
                        (r.family.kind == "histogram").then_some((n.as_str(), r))
                    })
                })
                .unwrap_or_else(|| panic!("{name} (in `{q}`) is not in docs/metrics.md"));
            used.insert(row.0.to_owned());
            labels_here.extend(row.1.family.labels.iter().map(String::as_str));
            for l in labels {
                assert!(
                    row.1.family.labels.contains(l) || PROMETHEUS_LABELS.contains(&l.as_str()),
                    "`{q}` selects {name} by {l}, a label it does not have"
                );
            }
        }
        for l in grouping_labels(q) {
            assert!(
                labels_here.contains(l.as_str()),
                "`{q}` groups by {l}, which none of its metrics has"
            );
        }
    }
    // Built from the reference: every metric has a panel.
    let missing: Vec<_> = doc.keys().filter(|n| !used.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "no panel of docs/grafana/tessera.json shows {missing:?}"
    );
}

#[test]
fn the_reference_parsers_read_what_they_should() {
    assert_eq!(
        label_names(r#"method="GET",route="/v1/users/{id}/sessions",status="200""#),
        ["method", "route", "status"]
    );
    assert_eq!(label_names(r#"a="x\"y,z""#), ["a"]);
    assert_eq!(
        metrics_in(
            r#"sum by (route) (rate(tessera_http_requests_total{job=~"$job",status!="200"}[5m]))"#
        ),
        [(
            "tessera_http_requests_total".to_owned(),
            vec!["job".to_owned(), "status".to_owned()]
        )]
    );
    assert_eq!(
        grouping_labels("sum by (route, le) (x) / sum without(a) (y)"),
        ["route", "le", "a"]
    );
}
