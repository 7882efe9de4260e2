//! The markdown tables of `workload report`, from the JSON files of the runs.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::RunReport;
use crate::mix::{Config, Ops, WIKIMEDIA};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn cells(o: &Ops) -> [u64; 6] {
    let (a, u) = (&o.anonymous, &o.authenticated);
    [a.read, a.write, a.delete, u.read, u.write, u.delete]
}

const HEAD: &str = "anonymous reads | anonymous writes | anonymous deletes | authenticated reads | authenticated writes | authenticated deletes";

fn per_k(n: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        n as f64 * 1000.0 / requests as f64
    }
}

fn short(c: Config) -> &'static str {
    match c {
        Config::Mediawiki => "(a)",
        Config::Server => "(b)",
        Config::Client => "(c)",
    }
}

/// The tables, as text.
pub(crate) fn render(runs: &[RunReport], command: Option<&str>) -> String {
    let mut runs: Vec<&RunReport> = runs.iter().collect();
    runs.sort_by_key(|r| r.config);
    let a = runs.iter().find(|r| r.config == Config::Mediawiki).copied();
    let mut s = String::new();
    let first = runs.first();
    if let Some(r) = first {
        let _ = writeln!(
            s,
            "Seed {}, {} blocks ({} s of Wikimedia's session traffic), store `{}`, token `sxp` {} s.\n",
            r.seed,
            r.blocks,
            r.blocks as f64 / r.choices.divisor as f64,
            r.store,
            r.timing.sxp_ms / 1000
        );
    }
    let _ = writeln!(
        s,
        "Store operations per 1,000 requests (`tessera_store_operations_total`, after minus before):\n"
    );
    let _ = writeln!(s, "| configuration | {HEAD} | all writes | writes vs (a) |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        let c = cells(&r.measured);
        let vs = a.map_or("—".to_owned(), |a| {
            format!(
                "{:.3}×",
                r.measured.writes() as f64 / a.measured.writes().max(1) as f64
            )
        });
        let _ = write!(s, "| {} |", r.config.label());
        for n in c {
            let _ = write!(s, " {:.1} |", per_k(n, r.requests));
        }
        let _ = writeln!(s, " {:.1} | {vs} |", per_k(r.measured.writes(), r.requests));
    }
    let _ = writeln!(s, "\nWhole run, counts:\n");
    let _ = writeln!(
        s,
        "| configuration | requests | API calls | {HEAD} | = model | token refreshes seen / planned | emulated writes | not ok | anomalies | seconds |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
    );
    for r in &runs {
        let _ = write!(
            s,
            "| {} | {} | {} |",
            short(r.config),
            r.requests,
            r.api_calls.values().sum::<u64>()
        );
        for n in cells(&r.measured) {
            let _ = write!(s, " {n} |");
        }
        let _ = writeln!(
            s,
            " {} | {} / {} | {} | {} | {} | {:.0} |",
            if r.measured == r.expected {
                "yes"
            } else {
                "**no**"
            },
            r.refreshes_seen,
            r.refreshes_planned,
            r.emulated.values().sum::<u64>(),
            r.not_ok.values().sum::<u64>(),
            r.anomalies.values().sum::<u64>(),
            r.duration_secs
        );
    }
    for r in &runs {
        if r.measured != r.expected {
            let _ = writeln!(s, "\n{} model: {:?}", short(r.config), cells(&r.expected));
        }
    }
    if let Some(a) = a {
        let _ = writeln!(
            s,
            "\n(a) against Wikimedia's session store (§8.4, T408935):\n"
        );
        let _ = writeln!(s, "| | {HEAD} |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        let w = cells(&WIKIMEDIA);
        let wt = WIKIMEDIA.total() as f64;
        let m = cells(&a.measured);
        let mt = a.measured.total().max(1) as f64;
        let row = |s: &mut String, label: &str, f: &dyn Fn(usize) -> String| {
            let _ = write!(s, "| {label} |");
            for i in 0..6 {
                let _ = write!(s, " {} |", f(i));
            }
            let _ = writeln!(s);
        };
        let at = |v: &[u64; 6], i: usize| v.get(i).copied().unwrap_or(0) as f64;
        row(&mut s, "Wikimedia, per second", &|i| {
            format!("{:.0}", at(&w, i))
        });
        row(&mut s, "Wikimedia, share of all operations", &|i| {
            format!("{:.2}%", 100.0 * at(&w, i) / wt)
        });
        row(&mut s, "(a), share of all operations", &|i| {
            format!("{:.2}%", 100.0 * at(&m, i) / mt)
        });
        row(
            &mut s,
            "(a), scaled to Wikimedia's 2,028 operations/s",
            &|i| format!("{:.1}", at(&m, i) * wt / mt),
        );
        let _ = writeln!(
            s,
            "\nAnonymous share of writes: Wikimedia {:.1}%, (a) {:.1}%.",
            100.0 * WIKIMEDIA.anonymous.write as f64 / WIKIMEDIA.writes() as f64,
            100.0 * a.measured.anonymous.write as f64 / a.measured.writes().max(1) as f64
        );
        for r in &runs {
            if r.config == Config::Client {
                let ratio = r.measured.writes() as f64 / a.measured.writes().max(1) as f64;
                let ok = r.measured.anonymous.write == 0 && ratio <= 0.4;
                let _ = writeln!(
                    s,
                    "\nTarget (issue 5): (c) has zero anonymous writes ({}) and at least 60% fewer \
                     writes in total than (a) ((c)/(a) = {ratio:.3}, {:.1}% fewer): **{}**.",
                    r.measured.anonymous.write,
                    100.0 * (1.0 - ratio),
                    if ok { "met" } else { "MISSED" }
                );
            }
        }
    }
    let reasons: BTreeSet<&String> = runs.iter().flat_map(|r| r.session_writes.keys()).collect();
    if !reasons.is_empty() {
        let _ = writeln!(
            s,
            "\n`tessera_session_writes_total` by kind/reason (deletes count here too):\n"
        );
        let _ = write!(s, "| kind/reason |");
        for r in &runs {
            let _ = write!(s, " {} |", short(r.config));
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "|---|{}", "---:|".repeat(runs.len()));
        for k in reasons {
            let _ = write!(s, "| {k} |");
            for r in &runs {
                let _ = write!(s, " {} |", r.session_writes.get(k).copied().unwrap_or(0));
            }
            let _ = writeln!(s);
        }
    }
    if let Some(c) = command {
        let _ = writeln!(s, "\nReproduce: `{c}`");
    }
    s
}

pub(crate) fn print(files: &[PathBuf], command: Option<&str>) -> Result<()> {
    let mut runs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        runs.push(
            serde_json::from_str::<RunReport>(&text)
                .map_err(|e| format!("{}: {e}", f.display()))?,
        );
    }
    if runs.is_empty() {
        return Err("no runs given".into());
    }
    print!("{}", render(&runs, command));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::{self, Choices, Mix, Timing};

    fn model_run(config: Config) -> RunReport {
        let choices = Choices::default();
        let mix = Mix::derive(&WIKIMEDIA, &choices).unwrap();
        let timing = Timing::new(15_000, 360_000);
        let visitors = mix::plan(&mix, 2, 5, &timing).unwrap();
        let expected = mix::expected(&visitors, config);
        RunReport {
            config,
            store: "redb".to_owned(),
            seed: 5,
            blocks: 2,
            choices,
            mix,
            timing,
            requests: mix::requests(&visitors),
            api_calls: Default::default(),
            refreshes_planned: 152,
            refreshes_seen: 152,
            emulated: Default::default(),
            anomalies: Default::default(),
            anomaly_examples: Vec::new(),
            measured: expected,
            expected,
            wikimedia: mix::wikimedia_for(2, 2),
            not_ok: Default::default(),
            session_writes: Default::default(),
            token_validations: Default::default(),
            duration_secs: 1.0,
        }
    }

    #[test]
    fn the_report_of_runs_that_follow_the_model() {
        let runs = [Config::Client, Config::Mediawiki, Config::Server].map(model_run);
        let text = render(&runs, Some("scripts/bench-workload"));
        // (a) is Wikimedia's shares exactly; (c) writes 28 of (a)'s 500.
        assert!(
            text.contains(
                "| (a), share of all operations | 7.40% | 14.79% | 0.99% | 66.57% | 9.86% | 0.39% |"
            ),
            "{text}"
        );
        assert!(text.contains("(c)/(a) = 0.056"), "{text}");
        assert!(text.contains("**met**"), "{text}");
        assert!(text.contains("Reproduce: `scripts/bench-workload`"));
        // Rows come in configuration order whatever the order of the files.
        let a = text.find("| (a) MediaWiki").unwrap();
        let c = text.find("| (c) Tessera").unwrap();
        assert!(a < c);
    }
}
