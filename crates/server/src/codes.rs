//! Checks of the error codes (kebab-case, stable, unique across the workspace, each type's
//! `CODES` listing exactly what its `code()` returns) and of the problem types against
//! `docs/problems.md`.

use std::collections::BTreeMap;

/// Every error type of the server with its `CODES`. Add the other crates' types here as they
/// get `CODES`: the uniqueness test then covers them too.
fn error_codes() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("config::ConfigError", crate::config::ConfigError::CODES),
        ("startup::StartupError", crate::startup::StartupError::CODES),
        ("keys::KeysError", crate::keys::KeysError::CODES),
        (
            "tessera::keys::stored::StoredKeysError",
            tessera::keys::stored::StoredKeysError::CODES,
        ),
        ("verifier::FetchError", crate::verifier::FetchError::CODES),
        ("cli::Error", crate::cli::Error::CODES),
        (
            "cli::backup::BackupError",
            crate::cli::backup::BackupError::CODES,
        ),
        (
            "tessera_store_redb::Error",
            tessera_store_redb::Error::CODES,
        ),
        (
            "tessera_store_redb::BatchError",
            tessera_store_redb::BatchError::CODES,
        ),
    ]
}

/// The `code` and `status` columns of the table in `docs/problems.md`.
fn documented_problems() -> BTreeMap<String, u16> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/problems.md");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, code, status, ..] = cells[..] else {
            continue;
        };
        let (Some(code), Ok(status)) = (
            code.strip_prefix('`').and_then(|c| c.strip_suffix('`')),
            status.parse::<u16>(),
        ) else {
            continue;
        };
        assert!(
            out.insert(code.to_owned(), status).is_none(),
            "{code} is listed twice in docs/problems.md"
        );
    }
    out
}

/// Whether `code` is kebab-case: `[a-z0-9]+(-[a-z0-9]+)*`.
pub(crate) fn is_kebab(code: &str) -> bool {
    !code.is_empty()
        && code.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Checks one error type: `listed` (its `CODES`) is kebab-case without duplicates, and the
/// codes of one value of each variant (`returned`) are exactly the listed ones.
pub(crate) fn check<'a>(listed: &[&str], returned: impl IntoIterator<Item = &'a str>) {
    let mut sorted = listed.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), listed.len(), "duplicate code in {listed:?}");
    for code in listed {
        assert!(is_kebab(code), "{code:?} is not kebab-case");
    }
    let mut seen: Vec<&str> = returned.into_iter().collect();
    for code in &seen {
        assert!(
            listed.contains(code),
            "{code:?} is returned but not in {listed:?}"
        );
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen, sorted,
        "every listed code has a variant, and no two variants share one"
    );
}

#[test]
fn kebab_case_is_recognised() {
    assert!(is_kebab("config-invalid") && is_kebab("a1-b2") && is_kebab("internal"));
    for bad in ["", "-a", "a-", "a--b", "a_b", "A", "store.conflict"] {
        assert!(!is_kebab(bad), "{bad}");
    }
}

#[test]
fn error_codes_are_unique_across_the_server() {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (ty, codes) in error_codes() {
        for code in codes {
            assert!(is_kebab(code), "{ty}: {code:?} is not kebab-case");
            if let Some(other) = seen.insert(code, ty) {
                panic!("{code:?} is a code of both {other} and {ty}");
            }
        }
    }
}

#[test]
fn docs_problems_md_lists_exactly_the_problem_types() {
    use crate::problem::{ApiError, ProblemKind};
    let served: BTreeMap<String, u16> = ProblemKind::ALL
        .iter()
        .map(|k| (k.code().to_owned(), k.status().as_u16()))
        .collect();
    assert_eq!(served.len(), ProblemKind::ALL.len(), "a code is used twice");
    assert_eq!(
        documented_problems(),
        served,
        "docs/problems.md and ProblemKind differ"
    );
    check(ApiError::CODES, ProblemKind::ALL.iter().map(|k| k.code()));
    for k in ProblemKind::ALL {
        assert_eq!(k.type_uri(), format!("urn:tessera:problem:{}", k.code()));
    }
}
