//! The check of [`RevocationLog`].

use std::sync::Arc;
use std::time::Duration;

use super::{T0, fresh_user};
use crate::{Revocation, RevocationLog, RevokedSubject};

/// Sequence numbers only grow; `since` pages oldest first; purge removes only old entries.
pub async fn revocation_log(s: Arc<dyn RevocationLog>) {
    // Other tests may share the backend: work after whatever is there now.
    let start = s
        .revocations_since(0, usize::MAX)
        .await
        .unwrap()
        .last()
        .map_or(0, |(n, _)| *n);
    let user = fresh_user();
    let mut seqs = vec![];
    for i in 0..5u64 {
        let subject = if i % 2 == 0 {
            RevokedSubject::User(user.clone())
        } else {
            RevokedSubject::Session(format!("sid-{user}-{i}"))
        };
        let at = T0.saturating_add(Duration::from_secs(i));
        seqs.push(s.log_revocation(&Revocation { subject, at }).await.unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(seqs[0] > start);
    let ours = |v: Vec<(u64, Revocation)>| -> Vec<(u64, Revocation)> {
        v.into_iter().filter(|(n, _)| seqs.contains(n)).collect()
    };
    let all = ours(s.revocations_since(start, usize::MAX).await.unwrap());
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].1.subject, RevokedSubject::User(user.clone()));
    assert_eq!(
        all[1].1.subject,
        RevokedSubject::Session(format!("sid-{user}-1"))
    );
    // Paging: after the second, at most two.
    let page = s.revocations_since(seqs[1], 2).await.unwrap();
    assert!(page.len() <= 2 && !page.is_empty());
    assert_eq!(page[0].0, seqs[2]);
    // Purge drops what is older than the bound (ours at T0 and T0+1s), keeps the rest.
    s.purge_revocations(T0.saturating_add(Duration::from_secs(2)))
        .await
        .unwrap();
    let left = ours(s.revocations_since(start, usize::MAX).await.unwrap());
    assert_eq!(
        left.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        seqs[2..].to_vec()
    );
}

/// Declares the revocation-log check as a `#[tokio::test]`. `$make` yields an
/// `Arc<impl RevocationLog>`.
#[macro_export]
macro_rules! revocation_conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make; revocation_log);
    };
}
