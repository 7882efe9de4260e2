//! `bench-memory`: the resident memory of N live sessions in a store, or of a full
//! verified-token cache (issue 12, item 5). One measurement per process: it reads its own
//! `VmRSS` and `VmHWM` from `/proc/self/status` before and after filling, so the figure is
//! the memory the store (or cache) holds, with the allocator's overhead, and the process'
//! baseline (runtime, binary) subtracted. The allocator is mimalloc, as in `tessera serve`.
//!
//! Each session is what a MediaWiki login makes (`bench-seed`'s shape): authenticated, user
//! `mw:CentralAuth::<n>` (one user per session, the worst case for the user index), data
//! `{"theme":"dark","lang":"en","k":<n>}`, plus `"v"`: a string of `--value-bytes` characters
//! if asked (1500: the size of Wikimedia's session values).
//!
//! **Raw size**, what a session holds, counted as: the 32-byte store key; the fixed record
//! fields at their natural width (kind 1, created/renewed/idle/absolute expiry 4 × 8, remember
//! 1, expiry 9, version 8: 51 bytes); the user id, name and provider bytes; and for every
//! entry of `data`, `claims` and `secrets`, its key's bytes and its value's JSON text. Indexes
//! (by user, by expiry) are not raw size: they are what the store adds.
//!
//! Run with: `cargo run --release -p tessera-bench --bin bench-memory -- memory --count 1000000`
//! (`scripts/bench-memory` runs every case once).

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use tessera_core::{SessionKind, SessionRecord, SessionStore, StoreKey, Timestamp, User};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    /// `MemoryStore`.
    Memory,
    /// `RedbStore` in `--dir` (durable commits, as in `tessera serve`).
    Redb,
    /// A `VerifiedCache` filled to its capacity with verified tokens.
    Cache,
}

#[derive(Debug, Parser)]
#[command(about = "resident memory of N sessions in a store, or of a full token cache")]
struct Args {
    #[arg(value_enum)]
    what: What,
    /// Sessions to create (memory, redb).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Length of an extra `"v"` string in each session's data (0: none).
    #[arg(long, default_value_t = 0)]
    value_bytes: usize,
    /// Directory for the redb file (created; the file must not exist).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Capacity of the verified-token cache (cache).
    #[arg(long, default_value_t = tessera::token::DEFAULT_TOKEN_CACHE)]
    capacity: usize,
}

/// `VmRSS` and `VmHWM` in KiB.
fn status() -> Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/self/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or("malformed status line")?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Uniform 32-byte keys (a store key is a SHA-256), from a counter (splitmix64).
fn key(i: u64) -> StoreKey {
    let mut out = [0u8; 32];
    let mut x = i.wrapping_mul(4).wrapping_add(0x9e37_79b9_7f4a_7c15);
    for chunk in out.chunks_exact_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    StoreKey::from_bytes(out)
}

const NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);

fn record(i: u64, value_bytes: usize) -> SessionRecord {
    let mut data: BTreeMap<String, Value> = [
        ("theme".to_owned(), json!("dark")),
        ("lang".to_owned(), json!("en")),
        ("k".to_owned(), json!(i)),
    ]
    .into();
    if value_bytes > 0 {
        data.insert("v".into(), Value::String("x".repeat(value_bytes)));
    }
    SessionRecord {
        kind: SessionKind::Authenticated,
        user: Some(User {
            id: format!("mw:CentralAuth::{i}"),
            name: None,
            provider: None,
        }),
        claims: BTreeMap::new(),
        created_at: NOW,
        renewed_at: NOW,
        idle_expires_at: Timestamp::from_unix_secs(1_800_000_000 + 3_600),
        absolute_expires_at: Timestamp::from_unix_secs(1_800_000_000 + 30 * 86_400),
        remember: false,
        data,
        secrets: BTreeMap::new(),
        expiry: tessera_core::Expiry::Default,
        version: 1,
    }
}

/// The raw size of a session (module docs).
fn raw_size(r: &SessionRecord) -> usize {
    const KEY: usize = 32;
    const FIXED: usize = 1 + 4 * 8 + 1 + 9 + 8;
    let user = r.user.as_ref().map_or(0, |u| {
        u.id.len()
            + u.name.as_ref().map_or(0, String::len)
            + u.provider.as_ref().map_or(0, String::len)
    });
    let map = |m: &BTreeMap<String, Value>| -> usize {
        m.iter().map(|(k, v)| k.len() + v.to_string().len()).sum()
    };
    let secrets: usize = r.secrets.iter().map(|(k, v)| k.len() + v.len()).sum();
    KEY + FIXED + user + map(&r.data) + map(&r.claims) + secrets
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(what: &str, n: u64, raw: u64, before: (u64, u64), after: (u64, u64)) {
    let delta_kib = after.0.saturating_sub(before.0);
    let per = delta_kib as f64 * 1024.0 / n as f64;
    let raw_per = raw as f64 / n as f64;
    let raw_text = if raw > 0 {
        format!(
            "raw {:.1} MiB ({raw_per:.0} B each); ",
            raw as f64 / 1_048_576.0
        )
    } else {
        String::new()
    };
    let ratio = if raw > 0 {
        format!(", {:.2}x raw", per / raw_per)
    } else {
        String::new()
    };
    println!(
        "{what}: {n} entries; {raw_text}VmRSS {:.1} -> {:.1} MiB (+{:.1} MiB, {per:.0} B \
         each{ratio}); VmHWM {:.1} MiB",
        mib(before.0),
        mib(after.0),
        mib(delta_kib),
        mib(after.1),
    );
}

async fn fill_store(store: Arc<dyn SessionStore>, args: &Args) -> Result<()> {
    let name = store.backend();
    let before = status()?;
    let start = Instant::now();
    let mut raw = 0u64;
    // A sample to read back, so that a fill which stored nothing cannot pass.
    let check = [0, args.count / 2, args.count.saturating_sub(1)];
    if name == "memory" {
        for i in 0..args.count {
            let r = record(i, args.value_bytes);
            raw += raw_size(&r) as u64;
            store.create(&key(i), &r).await?;
        }
    } else {
        // One durable commit per batch: keep enough creates in flight to fill batches.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..args.count {
            let r = record(i, args.value_bytes);
            raw += raw_size(&r) as u64;
            let s = Arc::clone(&store);
            tasks.spawn(async move { s.create(&key(i), &r).await });
            while tasks.len() >= 1024 {
                if let Some(done) = tasks.join_next().await {
                    done??;
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
    }
    let filled = status()?;
    eprintln!("filled in {:.1} s", start.elapsed().as_secs_f64());
    for i in check {
        let got = store
            .load(&key(i), NOW)
            .await?
            .ok_or_else(|| format!("session {i} did not load back"))?;
        if got != record(i, args.value_bytes) {
            return Err(format!("session {i} loaded back different").into());
        }
    }
    report(name, args.count, raw, before, filled);
    if name == "redb" {
        // Reads fill the store's cache of decoded records (at most 100,000).
        for i in 0..args.count.min(100_000) {
            store.load(&key(i), NOW).await?;
        }
        report(
            "redb, after 100,000 loads",
            args.count,
            raw,
            before,
            status()?,
        );
        if let Some(dir) = &args.dir {
            let size = std::fs::metadata(dir.join("sessions.redb"))?.len();
            println!(
                "redb file: {:.1} MiB ({:.0} B a session)",
                size as f64 / 1_048_576.0,
                size as f64 / args.count as f64
            );
        }
    }
    Ok(())
}

fn fill_cache(capacity: usize) -> Result<()> {
    use tessera_token::{
        Claims, Config, JwsAlgorithm, KeyState, Keyring, NoRevocations, RotationPolicy, SigningKey,
        VerifiedCache,
    };
    const ISS: &str = "https://meta.wikimedia.org";
    let now = NOW.unix_secs();
    let ring = Keyring::builder(RotationPolicy::default())
        .key(
            SigningKey::ed25519_from_seed(&[42; 32]),
            KeyState::Active,
            now - 60,
        )
        .build()?;
    let config = Config::new(ISS).with_algorithms([JwsAlgorithm::EdDsa]);
    let before = status()?;
    let cache = VerifiedCache::new(capacity);
    let mut token_bytes = 0u64;
    // The claims of the token benchmark (MediaWiki's, plus `exp` and `sid`), one session each.
    for i in 0..capacity {
        let mut claims = Claims::new(
            ISS,
            format!("mw:CentralAuth::{i}"),
            format!("{i:0>22}"),
            format!("{i:0>22}=="),
            now,
            now + 3600,
            now + 4 * 3600,
        );
        claims
            .custom
            .insert("rlc".into(), "established-user".into());
        let token = ring.sign_at(&config, &claims, now)?;
        token_bytes += token.len() as u64;
        ring.verify_cached_at(&config, &token, now, &NoRevocations, &cache)?;
    }
    let after = status()?;
    // Two generations a shard: a shard whose young generation fills drops its old one, so
    // after `capacity` distinct tokens the cache holds between half of it and all of it (its
    // steady state under a stream of new tokens).
    let entries = cache.stats().entries;
    if entries < capacity / 2 {
        return Err(format!("cache holds {entries}, under half of {capacity}").into());
    }
    println!(
        "tokens: {:.0} B each on average (for scale, not the raw size of an entry)",
        token_bytes as f64 / capacity as f64
    );
    report("verified-token cache", entries as u64, 0, before, after);
    let per = after.0.saturating_sub(before.0) as f64 * 1024.0 / entries as f64;
    println!(
        "verified-token cache at its capacity of {capacity}: about {:.1} MiB",
        per * capacity as f64 / 1_048_576.0
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let run = || -> Result<()> {
        if args.what == What::Cache {
            return fill_cache(args.capacity);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let store: Arc<dyn SessionStore> = match args.what {
                What::Redb => {
                    let dir = args.dir.as_ref().ok_or("redb needs --dir")?;
                    Arc::new(tessera_store_redb::RedbStore::open(
                        dir.join("sessions.redb"),
                    )?)
                }
                _ => Arc::new(tessera_store_memory::MemoryStore::new()),
            };
            fill_store(store, &args).await
        })
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-memory: {e}");
            ExitCode::FAILURE
        }
    }
}
