//! `workload`: replays a MediaWiki-like mix of browsers against a running `tessera serve`
//! over its HTTP API and reports the store operations it cost, read from the service's own
//! `/metrics` before and after (`tessera_store_operations_total` by kind and op).
//!
//! Three configurations (issue 5, item 6), one run each, against a server started for it:
//!
//! - `--config mediawiki`, (a): the server keeps anonymous sessions in the store
//!   (`anonymous = "server"`) and the driver adds an `update` wherever MediaWiki writes and
//!   Tessera does not: after a `resolve` that re-issued the session token (MediaWiki's
//!   `sessionJwt` refresh is a forced persist, a store write with reason `manual-forced`,
//!   `mediawiki-sessions.md` §7.5 and §2.3 step 6), and on the first page after a login
//!   (MediaWiki keeps CSRF token secrets in the session, §4; login resets them,
//!   `AuthManager::setSessionDataForUser()` → `resetAllTokens()`, and the next page, which
//!   embeds the user's CSRF token, stores a new one);
//! - `--config server`, (b): Tessera with `anonymous = "server"`, nothing emulated;
//! - `--config client`, (c): Tessera with `anonymous = "client"` (the default).
//!
//! The mix is derived from Wikimedia's figures (`mix::Mix::derive`); the plan of visitors
//! comes from a seeded generator, so a run is reproducible; the browsers keep and send back
//! every cookie the answers set (session, token and anonymous cookies) and drop removed ones.
//! `scripts/bench-workload` starts the servers, runs the three side by side and prints the
//! table (`workload report`).
//!
//! Run with: `TESSERA_API_KEY=... cargo run --release -p tessera-bench --bin workload --
//! run --config client --url http://127.0.0.1:7300 --sxp-secs 15 --out c.json`, or
//! `workload plan` to print the derivation and the model's figures without a server.

mod jar;
mod mix;
mod prom;
mod report;
mod rng;

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::jar::{Applied, CookieJar};
use crate::mix::{Choices, Config, Mix, Ops, Script, Step, Timing, Visitor};
use crate::prom::Snapshot;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

#[derive(Debug, Parser)]
#[command(about = "replay a MediaWiki-like session workload and count store operations")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Blocks of the mix (one block is half a second of Wikimedia's session traffic).
    #[arg(long, default_value_t = 20)]
    blocks: u64,
    /// Seed of the plan (visitor order, start times, waits).
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// The server's `[tokens] sxp` in seconds: returning visits begin after it.
    #[arg(long, default_value_t = 15)]
    sxp_secs: u64,
    /// The server's `[session] idle_timeout` in seconds: no session may live half of it.
    #[arg(long, default_value_t = 360)]
    idle_secs: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the mix, its derivation and the model's figures for the three configurations.
    Plan {
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Run the workload against a server and write the figures as JSON.
    Run {
        #[command(flatten)]
        plan: PlanArgs,
        /// Which configuration the server was started for.
        #[arg(long, value_enum)]
        config: Config,
        /// Base URL of the server.
        #[arg(long)]
        url: String,
        /// The store the server runs on, for the report (e.g. `redb`, `memory`).
        #[arg(long, default_value = "redb")]
        store: String,
        /// The session token's cookie name.
        #[arg(long, default_value = "__Host-tessera-token")]
        token_cookie: String,
        /// The anonymous cookie's name.
        #[arg(long, default_value = "__Host-tessera-anon")]
        anon_cookie: String,
        /// Where to write the figures.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the markdown tables of runs written by `run`.
    Report {
        /// The JSON files of the runs, any order.
        files: Vec<PathBuf>,
        /// The command that reproduces the run, printed under the tables.
        #[arg(long)]
        command: Option<String>,
    },
}

/// What a run writes: the plan, what the driver did and saw, and the service's counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunReport {
    pub(crate) config: Config,
    pub(crate) store: String,
    pub(crate) seed: u64,
    pub(crate) blocks: u64,
    pub(crate) choices: Choices,
    pub(crate) mix: Mix,
    pub(crate) timing: Timing,
    /// Browser requests made (page views and form posts).
    pub(crate) requests: u64,
    /// Calls to Tessera's API by endpoint (the emulated updates included).
    pub(crate) api_calls: BTreeMap<String, u64>,
    /// Token refreshes the plan expects (one per returning visit) and those seen.
    pub(crate) refreshes_planned: u64,
    pub(crate) refreshes_seen: u64,
    /// Emulated MediaWiki writes, by cause (configuration (a) only).
    pub(crate) emulated: BTreeMap<String, u64>,
    /// Anything that did not go as the plan says (errors, unexpected answers).
    pub(crate) anomalies: BTreeMap<String, u64>,
    pub(crate) anomaly_examples: Vec<String>,
    /// Store operations from `/metrics` (after minus before), the model's, and Wikimedia's
    /// figures for as much traffic as the blocks stand for.
    pub(crate) measured: Ops,
    pub(crate) expected: Ops,
    pub(crate) wikimedia: Ops,
    /// Store operations with an outcome other than `ok`, session writes by reason, token
    /// validations by outcome (from `/metrics`, after minus before).
    pub(crate) not_ok: BTreeMap<String, u64>,
    pub(crate) session_writes: BTreeMap<String, u64>,
    pub(crate) token_validations: BTreeMap<String, u64>,
    pub(crate) duration_secs: f64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let r = match args.command {
        Command::Plan { plan } => print_plan(&plan),
        Command::Report { files, command } => report::print(&files, command.as_deref()),
        Command::Run {
            plan,
            config,
            url,
            store,
            token_cookie,
            anon_cookie,
            out,
        } => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Into::into)
            .and_then(|rt| {
                rt.block_on(run(RunArgs {
                    plan,
                    config,
                    url,
                    store,
                    token_cookie,
                    anon_cookie,
                    out,
                }))
            }),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workload: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn make_plan(p: &PlanArgs) -> Result<(Choices, Mix, Timing, Vec<Visitor>)> {
    let choices = Choices::default();
    let mix = Mix::derive(&mix::WIKIMEDIA, &choices)?;
    let timing = Timing::new(p.sxp_secs * 1000, p.idle_secs * 1000);
    let visitors = mix::plan(&mix, p.blocks, p.seed, &timing)?;
    Ok((choices, mix, timing, visitors))
}

fn print_plan(p: &PlanArgs) -> Result<()> {
    let (choices, mix, _, visitors) = make_plan(p)?;
    let longest_member_ms = visitors
        .iter()
        .filter(|v| v.script == Script::Member)
        .map(|v| v.steps.iter().map(|t| t.wait_ms).sum::<u64>())
        .max()
        .unwrap_or(0);
    let out = serde_json::to_string_pretty(&json!({
        "longest_member_session_ms": longest_member_ms,
        "choices": choices,
        "mix_per_block": mix,
        "requests_per_block": mix.requests(),
        "blocks": p.blocks,
        "requests": mix::requests(&visitors),
        "wikimedia": mix::wikimedia_for(p.blocks, choices.divisor),
        "expected": {
            "mediawiki": mix::expected(&visitors, Config::Mediawiki),
            "server": mix::expected(&visitors, Config::Server),
            "client": mix::expected(&visitors, Config::Client),
        },
    }))?;
    println!("{out}");
    Ok(())
}

struct RunArgs {
    plan: PlanArgs,
    config: Config,
    url: String,
    store: String,
    token_cookie: String,
    anon_cookie: String,
    out: PathBuf,
}

struct Driver {
    http: reqwest::Client,
    url: String,
    api_key: String,
    config: Config,
    token_cookie: String,
    anon_cookie: String,
}

/// What one visitor did and saw.
#[derive(Debug, Default)]
struct Stats {
    requests: u64,
    api_calls: BTreeMap<String, u64>,
    refreshes: u64,
    emulated: BTreeMap<String, u64>,
    anomalies: BTreeMap<String, u64>,
    examples: Vec<String>,
}

impl Stats {
    fn anomaly(&mut self, kind: &str, detail: String) {
        *self.anomalies.entry(kind.to_owned()).or_default() += 1;
        if self.examples.len() < 5 {
            self.examples.push(format!("{kind}: {detail}"));
        }
    }

    fn merge(&mut self, o: Self) {
        self.requests += o.requests;
        self.refreshes += o.refreshes;
        for (k, v) in o.api_calls {
            *self.api_calls.entry(k).or_default() += v;
        }
        for (k, v) in o.emulated {
            *self.emulated.entry(k).or_default() += v;
        }
        for (k, v) in o.anomalies {
            *self.anomalies.entry(k).or_default() += v;
        }
        for e in o.examples {
            if self.examples.len() < 20 {
                self.examples.push(e);
            }
        }
    }
}

impl Driver {
    async fn metrics(&self) -> Result<Snapshot> {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Snapshot::from_text(&text)?)
    }

    async fn call(&self, stats: &mut Stats, op: &str, body: Value) -> Result<Value> {
        *stats.api_calls.entry(op.to_owned()).or_default() += 1;
        let resp = self
            .http
            .post(format!("{}/v1/session/{op}", self.url))
            .header(AUTHORIZATION, format!("Bearer {}", self.api_key))
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(format!("{op}: {status}: {text}").into());
        }
        Ok(serde_json::from_str(&text)?)
    }
}

/// One browser: its cookies, and what the application remembers for it.
struct Browser {
    jar: CookieJar,
    csrf: Option<String>,
    who: Who,
    user: String,
    returnto: String,
    /// Counters that make each emulated write change the session (so it is written).
    forced: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Anonymous,
    /// `fresh`: logged in, no page viewed since.
    User {
        fresh: bool,
    },
}

impl Browser {
    /// Applies every `Set-Cookie` of an answer; returns the names set (not removed).
    fn apply(&mut self, answer: &Value) -> Result<Vec<String>> {
        let mut set = Vec::new();
        for c in answer["set_cookie"].as_array().into_iter().flatten() {
            let c = c.as_str().ok_or("a set_cookie entry is not a string")?;
            let (name, applied) = self.jar.apply(c)?;
            if applied == Applied::Set {
                set.push(name);
            }
        }
        Ok(set)
    }

    fn body(&self) -> Value {
        json!({ "cookie": self.jar.header() })
    }
}

async fn run(a: RunArgs) -> Result<()> {
    let api_key = std::env::var("TESSERA_API_KEY").map_err(|_| "TESSERA_API_KEY is not set")?;
    let (choices, mix, timing, visitors) = make_plan(&a.plan)?;
    let driver = Arc::new(Driver {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()?,
        url: a.url.trim_end_matches('/').to_owned(),
        api_key,
        config: a.config,
        token_cookie: a.token_cookie,
        anon_cookie: a.anon_cookie,
    });
    let expected = mix::expected(&visitors, a.config);
    let refreshes_planned = visitors
        .iter()
        .flat_map(|v| &v.steps)
        .filter(|t| t.step == Step::Page { refresh: true })
        .count() as u64;
    let longest = visitors
        .iter()
        .map(|v| v.start_ms + v.steps.iter().map(|t| t.wait_ms).sum::<u64>())
        .max()
        .unwrap_or(0);
    eprintln!(
        "workload: {} ({}): {} visitors, {} requests, about {} s",
        a.config.label(),
        a.store,
        visitors.len(),
        mix::requests(&visitors),
        longest / 1000 + 1
    );
    let before = driver.metrics().await?;
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for v in visitors {
        let d = driver.clone();
        tasks.spawn(async move { visit(&d, &v, t0).await });
    }
    let mut stats = Stats::default();
    while let Some(r) = tasks.join_next().await {
        stats.merge(r?);
    }
    let duration_secs = t0.elapsed().as_secs_f64();
    let delta = driver.metrics().await?.since(&before);
    let report = RunReport {
        config: a.config,
        store: a.store,
        seed: a.plan.seed,
        blocks: a.plan.blocks,
        choices,
        mix,
        timing,
        requests: stats.requests,
        api_calls: stats.api_calls,
        refreshes_planned,
        refreshes_seen: stats.refreshes,
        emulated: stats.emulated,
        anomalies: stats.anomalies,
        anomaly_examples: stats.examples,
        measured: delta.store,
        expected,
        wikimedia: mix::wikimedia_for(a.plan.blocks, choices.divisor),
        not_ok: delta.not_ok,
        session_writes: delta.session_writes,
        token_validations: delta.token_validations,
        duration_secs,
    };
    std::fs::write(&a.out, serde_json::to_string_pretty(&report)?)?;
    eprintln!(
        "workload: {}: {} requests in {duration_secs:.0} s; store operations {} (model {}); \
         writes {} (model {}); refreshes {} of {} planned; {} anomalies",
        a.config.label(),
        report.requests,
        report.measured.total(),
        report.expected.total(),
        report.measured.writes(),
        report.expected.writes(),
        report.refreshes_seen,
        report.refreshes_planned,
        report.anomalies.values().sum::<u64>()
    );
    for e in &report.anomaly_examples {
        eprintln!("workload:   {e}");
    }
    if !report.anomalies.is_empty() {
        return Err("the run had anomalies: its figures are not the plan's".into());
    }
    Ok(())
}

async fn visit(d: &Driver, v: &Visitor, t0: Instant) -> Stats {
    let mut stats = Stats::default();
    tokio::time::sleep_until(t0 + Duration::from_millis(v.start_ms)).await;
    let mut b = Browser {
        jar: CookieJar::default(),
        csrf: None,
        who: Who::Nobody,
        user: format!("wl-{}", v.id),
        returnto: format!("Page_{}", v.id),
        forced: 0,
    };
    for t in &v.steps {
        tokio::time::sleep(Duration::from_millis(t.wait_ms)).await;
        stats.requests += 1;
        if let Err(e) = step(d, &mut b, t.step, &mut stats).await {
            stats.anomaly(
                "aborted",
                format!("visitor {} ({:?}) at {:?}: {e}", v.id, v.script, t.step),
            );
            break;
        }
    }
    if v.script == Script::Member && b.who != Who::Nobody && b.jar.get(&d.token_cookie).is_none() {
        stats.anomaly(
            "lost token",
            format!("visitor {} ends without a token cookie", v.id),
        );
    }
    stats
}

/// One browser request: the application's calls to Tessera for it, and the checks that
/// the answers are what the plan assumes (so the counts mean what the report says).
async fn step(d: &Driver, b: &mut Browser, s: Step, stats: &mut Stats) -> Result<()> {
    match s {
        Step::Page { refresh } => {
            let r = d.call(stats, "resolve", b.body()).await?;
            let set = b.apply(&r)?;
            let session = &r["session"];
            match b.who {
                Who::Nobody => {
                    if !session.is_null() {
                        stats.anomaly("unexpected session", format!("{session}"));
                    }
                }
                Who::Anonymous => {
                    if session["kind"] != "anonymous"
                        || session["storage"] != d.config.anonymous_storage()
                    {
                        stats.anomaly("anonymous session lost", format!("{r}"));
                    }
                }
                Who::User { fresh } => {
                    if session["user"]["id"] != b.user.as_str() {
                        return Err(format!("resolve lost the user: {r}").into());
                    }
                    let status = r["token_status"].as_str().unwrap_or_default();
                    let refreshed = set.contains(&d.token_cookie);
                    if refreshed {
                        stats.refreshes += 1;
                    }
                    if !matches!(status, "ok" | "soft_expired") {
                        stats.anomaly("token status", status.to_owned());
                    }
                    if refreshed != refresh {
                        stats.anomaly(
                            if refreshed {
                                "unplanned refresh"
                            } else {
                                "missed refresh"
                            },
                            format!("token_status {status}"),
                        );
                    }
                    b.who = Who::User { fresh: false };
                    if d.config == Config::Mediawiki && (refreshed || fresh) {
                        emulate(d, b, stats, refreshed, fresh).await?;
                    }
                }
            }
        }
        Step::EditForm | Step::LoginForm => {
            let set = if s == Step::EditForm {
                json!({ "edit": { "title": b.returnto, "section": 0 } })
            } else {
                json!({ "returnto": b.returnto })
            };
            let mut body = b.body();
            body["set"] = set;
            let r = d.call(stats, "update", body).await?;
            b.apply(&r)?;
            let session = &r["session"];
            if session["kind"] != "anonymous" || session["storage"] != d.config.anonymous_storage()
            {
                return Err(format!("the form's session is not as configured: {r}").into());
            }
            b.csrf = Some(
                r["csrf_token"]
                    .as_str()
                    .ok_or("no csrf_token with the form")?
                    .to_owned(),
            );
            b.who = Who::Anonymous;
        }
        Step::SubmitEdit => {
            check_csrf(d, b, stats).await?;
            let mut body = b.body();
            body["remove"] = json!(["edit"]);
            body["set"] = json!({ "last_edit": { "title": b.returnto } });
            let r = d.call(stats, "update", body).await?;
            b.apply(&r)?;
            if r["status"] != "updated" {
                stats.anomaly("edit not saved", format!("{}", r["status"]));
            }
        }
        Step::SubmitLogin => {
            check_csrf(d, b, stats).await?;
            let mut body = b.body();
            body["user"] = json!({ "id": b.user, "name": b.user });
            let r = d.call(stats, "login", body).await?;
            b.apply(&r)?;
            let session = &r["session"];
            if session["user"]["id"] != b.user.as_str() {
                return Err(format!("login answered another session: {r}").into());
            }
            // Promotion: the login form's state is in the new session.
            if session["data"]["returnto"] != b.returnto.as_str() {
                stats.anomaly("not promoted", format!("{}", session["data"]));
            }
            if b.jar.get(&d.token_cookie).is_none() || b.jar.get(&d.anon_cookie).is_some() {
                stats.anomaly(
                    "login cookies",
                    format!("{} cookies after login", b.jar.len()),
                );
            }
            b.who = Who::User { fresh: true };
        }
        Step::Logout => {
            let r = d.call(stats, "logout", b.body()).await?;
            b.apply(&r)?;
            if b.jar.len() != 0 {
                stats.anomaly("logout cookies", b.jar.header());
            }
            b.who = Who::Nobody;
        }
    }
    Ok(())
}

async fn check_csrf(d: &Driver, b: &mut Browser, stats: &mut Stats) -> Result<()> {
    let token = b.csrf.clone().ok_or("no CSRF token to send")?;
    let mut body = b.body();
    body["token"] = json!(token);
    let r = d.call(stats, "csrf/check", body).await?;
    if r["valid"] != true {
        stats.anomaly("csrf refused", format!("{r}"));
    }
    Ok(())
}

/// Configuration (a): the write MediaWiki makes in this request and Tessera does not, as one
/// `update` that changes the session (MediaWiki saves once at the end of a request, so a
/// refresh and a new CSRF secret in the same request are one write).
async fn emulate(
    d: &Driver,
    b: &mut Browser,
    stats: &mut Stats,
    refreshed: bool,
    fresh: bool,
) -> Result<()> {
    let mut set = serde_json::Map::new();
    if refreshed {
        // §7.5: the refresh sets needsRefresh; SessionManager then persists with force
        // (§2.3 step 6), a store write with reason `manual-forced`.
        b.forced += 1;
        set.insert("mw_forced_persist".to_owned(), json!(b.forced));
        *stats
            .emulated
            .entry("token refresh (manual-forced)".to_owned())
            .or_default() += 1;
    }
    if fresh {
        // §4: the CSRF token secret lives in the session (`wsTokenSecrets`); login reset it,
        // so the first page, which embeds the user's CSRF token, stores a new one.
        set.insert(
            "wsTokenSecrets".to_owned(),
            json!({ "default": format!("emulated-secret-of-{}", b.user) }),
        );
        *stats
            .emulated
            .entry("CSRF secret after login".to_owned())
            .or_default() += 1;
    }
    let mut body = b.body();
    body["set"] = Value::Object(set);
    let r = d.call(stats, "update", body).await?;
    b.apply(&r)?;
    if r["status"] != "updated" {
        stats.anomaly("emulated write not written", format!("{}", r["status"]));
    }
    Ok(())
}
