//! Checks of the error codes (HELPERS/STYLE: kebab-case, stable, unique across the workspace,
//! each type's `CODES` listing exactly what its `code()` returns).

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
