//! The verifier's copy of the revocations: read from the store's log or a service's feed,
//! kept up to date in the background or by one request while the others verify against it.

use std::sync::{Arc, PoisonError};

use serde::Deserialize;
use tessera::token::SubjectFormat;
use tessera_core::{RevokedSubject, SessionStore};
use tessera_token::RevocationList;
use tokio::time::Instant;

use super::Verifier;
use super::remote::{FetchError, get_bounded};

/// Revocation entries read per request to the log or the feed, at most.
const FEED_BATCH: usize = 10_000;

/// Where the verifier's revocations come from.
#[derive(Debug, Clone)]
pub enum RevocationSource {
    /// No revocation check beyond the token's own expiry.
    None,
    /// The store's revocation log (user ids mapped to `sub` with the token settings).
    Store(Arc<dyn SessionStore>, SubjectFormat),
    /// A Tessera revocation feed (`…/v1/revocations`), polled.
    Feed(String),
}

/// The verifier's copy of the revocations.
#[derive(Debug, Default)]
pub(super) struct Copy {
    pub(super) list: RevocationList,
    /// When it was last brought up to date (or last tried, once a copy exists).
    pub(super) fetched: Option<Instant>,
}

/// Where the copy stands in the source.
#[derive(Debug, Default)]
pub(super) struct Cursor {
    next: u64,
    etag: Option<String>,
}

/// One entry of the feed, as `/v1/revocations` publishes it.
#[derive(Debug, Deserialize)]
struct FeedEntry {
    seq: u64,
    kind: String,
    id: String,
    at: i64,
}

#[derive(Debug, Deserialize)]
struct Feed {
    revocations: Vec<FeedEntry>,
    next: u64,
}

#[derive(Debug, Clone, Copy)]
enum Revoked {
    User,
    Session,
}

impl Verifier {
    fn is_stale(&self) -> Option<bool> {
        let c = self.copy.read().unwrap_or_else(PoisonError::into_inner);
        c.fetched
            .map(|t| self.refresh.is_zero() || t.elapsed() >= self.refresh)
    }

    /// Brings the revocation copy up to date when it is older than the refresh interval.
    /// With a copy, a failure keeps the verifier on that copy (DESIGN §9) and the next try
    /// waits for the interval; without any, it fails closed.
    pub(super) async fn bring_up_to_date(&self, now: i64) -> Result<(), &'static str> {
        if matches!(self.source, RevocationSource::None) {
            return Ok(());
        }
        let had_copy = match self.is_stale() {
            Some(false) => return Ok(()),
            Some(true) => true,
            None => false,
        };
        let mut cursor = if had_copy && !self.refresh.is_zero() {
            match self.cursor.try_lock() {
                Ok(c) => c,
                // Another request is reading the new entries: use the copy meanwhile.
                Err(_) => return Ok(()),
            }
        } else {
            let c = self.cursor.lock().await;
            if !self.refresh.is_zero() && self.is_stale() == Some(false) {
                return Ok(());
            }
            c
        };
        match self.pull(&mut cursor).await {
            Ok(entries) => {
                self.apply(entries, now);
                Ok(())
            }
            Err(e) if had_copy => {
                tracing::warn!(error = %e, "verifying against the last copy of the revocations");
                self.copy
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .fetched = Some(Instant::now());
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "no copy of the revocations yet; refusing tokens");
                Err("revocations_unavailable")
            }
        }
    }

    /// Reads the new revocations now. The service runs this every `refresh` in the
    /// background, so requests find the copy fresh and never wait; they fall back to
    /// reading it themselves only when it is older than that.
    ///
    /// # Errors
    ///
    /// Why the log or the feed could not be read (the copy stays as it was).
    pub async fn refresh_revocations(&self, now: i64) -> Result<(), FetchError> {
        if matches!(self.source, RevocationSource::None) {
            return Ok(());
        }
        let mut cursor = self.cursor.lock().await;
        let entries = self.pull(&mut cursor).await?;
        self.apply(entries, now);
        Ok(())
    }

    fn apply(&self, entries: Vec<(Revoked, String, i64)>, now: i64) {
        let mut copy = self.copy.write().unwrap_or_else(PoisonError::into_inner);
        for (kind, id, at) in entries {
            match kind {
                Revoked::User => copy.list.revoke_user_before(id, at),
                Revoked::Session => copy.list.revoke_session_at(id, at),
            }
        }
        copy.list.retain_since(now.saturating_sub(self.keep));
        copy.fetched = Some(Instant::now());
    }

    /// The entries after the cursor, moving it: `(kind, id, at)` where a user entry's `at`
    /// revokes tokens issued strictly before it.
    async fn pull(&self, cursor: &mut Cursor) -> Result<Vec<(Revoked, String, i64)>, FetchError> {
        let mut out = Vec::new();
        match &self.source {
            RevocationSource::None => {}
            RevocationSource::Store(store, subject) => {
                let Some(log) = store.as_revocation_log() else {
                    return Ok(out);
                };
                loop {
                    let entries = log
                        .revocations_since(cursor.next, FEED_BATCH)
                        .await
                        .map_err(FetchError::Store)?;
                    let n = entries.len();
                    for (seq, r) in entries {
                        cursor.next = cursor.next.max(seq);
                        match r.subject {
                            // `iat` has whole seconds and the list revokes `iat < at`: the
                            // next whole second catches every token issued in the
                            // revocation's second (also one issued just after it, in that
                            // second: the safe side).
                            RevokedSubject::User(u) => out.push((
                                Revoked::User,
                                subject.subject(&u),
                                r.at.unix_millis().div_euclid(1000).saturating_add(1),
                            )),
                            RevokedSubject::Session(sid) => {
                                out.push((Revoked::Session, sid, r.at.unix_secs()));
                            }
                        }
                    }
                    if n < FEED_BATCH {
                        return Ok(out);
                    }
                }
            }
            RevocationSource::Feed(url) => loop {
                let sep = if url.contains('?') { '&' } else { '?' };
                let page = format!("{url}{sep}after={}&limit={FEED_BATCH}", cursor.next);
                let Some((body, etag)) =
                    get_bounded(&self.client, &page, cursor.etag.as_deref()).await?
                else {
                    return Ok(out);
                };
                let feed: Feed = serde_json::from_slice(&body).map_err(FetchError::Feed)?;
                let n = feed.revocations.len();
                for e in feed.revocations {
                    cursor.next = cursor.next.max(e.seq);
                    match e.kind.as_str() {
                        // The feed's `at` is whole seconds, "issued at or before".
                        "user" => out.push((Revoked::User, e.id, e.at.saturating_add(1))),
                        "session" => out.push((Revoked::Session, e.id, e.at)),
                        other => tracing::warn!(kind = other, "unknown revocation kind; ignored"),
                    }
                }
                cursor.next = cursor.next.max(feed.next);
                cursor.etag = etag;
                if n < FEED_BATCH {
                    return Ok(out);
                }
                cursor.etag = None;
            },
        }
        Ok(out)
    }
}
