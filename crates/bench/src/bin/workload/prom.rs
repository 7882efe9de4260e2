//! Reads the service's own counters from `GET /metrics` (Prometheus text format).

use std::collections::BTreeMap;

use crate::mix::{Ops, Rwd};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// The samples of a Prometheus text exposition (comments skipped).
pub(crate) fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value in {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("bad value in {line:?}"))?;
        let (name, labels) = match head.split_once('{') {
            None => (head, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unclosed labels in {line:?}"))?;
                (
                    name,
                    labels_of(body).ok_or_else(|| format!("bad labels in {line:?}"))?,
                )
            }
        };
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// `k="v",k2="v2"`; values here never hold a quote or a comma, escapes are still honoured.
fn labels_of(body: &str) -> Option<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"")?;
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => v.push(chars.next()?.1),
                '"' => break i,
                c => v.push(c),
            }
        };
        m.insert(k.trim().to_owned(), v);
        rest = after.get(end + 1..)?.trim_start_matches(',').trim();
    }
    Some(m)
}

/// What the workload reads from one snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// `tessera_store_operations_total` summed over backends and outcomes.
    pub(crate) store: Ops,
    /// `tessera_store_operations_total` with an outcome other than `ok`, by
    /// `kind/op/outcome`.
    pub(crate) not_ok: BTreeMap<String, u64>,
    /// `tessera_session_writes_total` by `kind/reason`.
    pub(crate) session_writes: BTreeMap<String, u64>,
    /// `tessera_token_validations_total` by outcome.
    pub(crate) token_validations: BTreeMap<String, u64>,
}

fn count(v: f64) -> u64 {
    // Counters are whole numbers well inside f64's exact range.
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

impl Snapshot {
    pub(crate) fn from_text(text: &str) -> Result<Self, String> {
        let mut s = Self::default();
        for sample in parse(text)? {
            let l = |k: &str| sample.labels.get(k).map_or("", String::as_str);
            let n = count(sample.value);
            match sample.name.as_str() {
                "tessera_store_operations_total" => {
                    let kind = match l("kind") {
                        "anonymous" => &mut s.store.anonymous,
                        "authenticated" => &mut s.store.authenticated,
                        other => return Err(format!("unknown store kind {other:?}")),
                    };
                    match l("op") {
                        "read" => kind.read += n,
                        "write" => kind.write += n,
                        "delete" => kind.delete += n,
                        other => return Err(format!("unknown store op {other:?}")),
                    }
                    if l("outcome") != "ok" {
                        *s.not_ok
                            .entry(format!("{}/{}/{}", l("kind"), l("op"), l("outcome")))
                            .or_default() += n;
                    }
                }
                "tessera_session_writes_total" => {
                    *s.session_writes
                        .entry(format!("{}/{}", l("kind"), l("reason")))
                        .or_default() += n;
                }
                "tessera_token_validations_total" => {
                    *s.token_validations
                        .entry(l("outcome").to_owned())
                        .or_default() += n;
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// What happened between `before` and `self`.
    pub(crate) fn since(&self, before: &Self) -> Self {
        let rwd = |a: &Rwd, b: &Rwd| Rwd {
            read: a.read.saturating_sub(b.read),
            write: a.write.saturating_sub(b.write),
            delete: a.delete.saturating_sub(b.delete),
        };
        let map = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            a.iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(b.get(k).copied().unwrap_or(0))))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        Self {
            store: Ops {
                anonymous: rwd(&self.store.anonymous, &before.store.anonymous),
                authenticated: rwd(&self.store.authenticated, &before.store.authenticated),
            },
            not_ok: map(&self.not_ok, &before.not_ok),
            session_writes: map(&self.session_writes, &before.session_writes),
            token_validations: map(&self.token_validations, &before.token_validations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP tessera_store_operations Store operations by backend, session kind, operation and outcome.
# TYPE tessera_store_operations counter
tessera_store_operations_total{backend="redb",kind="anonymous",op="write",outcome="ok"} 3
tessera_store_operations_total{backend="redb",kind="anonymous",op="read",outcome="ok"} 2
tessera_store_operations_total{backend="redb",kind="anonymous",op="read",outcome="miss"} 1
tessera_store_operations_total{backend="redb",kind="authenticated",op="delete",outcome="ok"} 4
tessera_session_writes_total{kind="authenticated",reason="login"} 5
tessera_token_validations_total{outcome="soft_expired"} 6
tessera_http_requests_total{method="POST",path="/v1/session/resolve",status="200"} 9
# EOF
"#;

    #[test]
    fn reads_the_store_counters_by_kind_and_op() {
        let s = Snapshot::from_text(TEXT).unwrap();
        assert_eq!(
            s.store.anonymous,
            Rwd {
                read: 3,
                write: 3,
                delete: 0
            }
        );
        assert_eq!(s.store.authenticated.delete, 4);
        assert_eq!(s.not_ok.get("anonymous/read/miss"), Some(&1));
        assert_eq!(s.session_writes.get("authenticated/login"), Some(&5));
        assert_eq!(s.token_validations.get("soft_expired"), Some(&6));
        let d = s.since(&Snapshot::default());
        assert_eq!(d, s);
        assert_eq!(s.since(&s).store, Ops::default());
    }

    #[test]
    fn labels_with_escapes_and_bad_lines() {
        let s = parse(r#"m{a="x\"y",b="z"} 1"#).unwrap();
        assert_eq!(s[0].labels["a"], "x\"y");
        assert_eq!(s[0].labels["b"], "z");
        assert!(parse("m{a=\"x\" 1").is_err());
        assert!(parse("m").is_err());
        assert!(parse("m{a=\"1\"} many").is_err());
    }
}
