//! The action mix: Wikimedia's session-store figures, the derivation of a mix of browser
//! scripts from them, the seeded plan of visitors, and the store operations each step costs
//! in each configuration (the model the measured figures are checked against).
//!
//! The derivation is written out in BENCHMARKS.md ("Workload: store operations per 1,000
//! requests"); `Mix::derive` is that derivation, and the tests check that the model gives back
//! Wikimedia's figures exactly for configuration (a).

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Reads, writes and deletes of one session kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Rwd {
    pub(crate) read: u64,
    pub(crate) write: u64,
    pub(crate) delete: u64,
}

/// Store operations by session kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ops {
    pub(crate) anonymous: Rwd,
    pub(crate) authenticated: Rwd,
}

impl Ops {
    pub(crate) fn writes(&self) -> u64 {
        self.anonymous.write + self.authenticated.write
    }

    pub(crate) fn total(&self) -> u64 {
        let a = &self.anonymous;
        let u = &self.authenticated;
        a.read + a.write + a.delete + u.read + u.write + u.delete
    }
}

/// Wikimedia's core session store (Kask), per second, from T408935 (about 2025-10), as
/// `mediawiki-sessions.md` §8.4 quotes it: anonymous 150 GET, 300 POST, 20 DELETE;
/// authenticated 1,350 GET, 200 POST, 8 DELETE. (The 40 misses a second are not in these.)
pub(crate) const WIKIMEDIA: Ops = Ops {
    anonymous: Rwd {
        read: 150,
        write: 300,
        delete: 20,
    },
    authenticated: Rwd {
        read: 1350,
        write: 200,
        delete: 8,
    },
};

/// The configuration a run measures.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Config {
    /// (a) MediaWiki-equivalent: anonymous sessions in the store, and the driver adds an
    /// `update` where MediaWiki writes and Tessera does not (token refreshes, the CSRF
    /// secret after login).
    Mediawiki,
    /// (b) Tessera, `anonymous = "server"`.
    Server,
    /// (c) Tessera, `anonymous = "client"` (the default).
    Client,
}

impl Config {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Mediawiki => "(a) MediaWiki-equivalent (server-side anonymous + emulated writes)",
            Self::Server => "(b) Tessera, anonymous = \"server\"",
            Self::Client => "(c) Tessera, anonymous = \"client\" (default)",
        }
    }

    /// Where anonymous sessions live in this configuration (`session.storage`).
    pub(crate) fn anonymous_storage(self) -> &'static str {
        match self {
            Self::Mediawiki | Self::Server => "store",
            Self::Client => "cookie",
        }
    }
}

/// One browser request (a page view, a form post), and what the application asks Tessera
/// for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A page view: `resolve`. `refresh`: the first page of a returning visit, whose token
    /// is past its soft expiry and is re-issued.
    Page { refresh: bool },
    /// Open the edit form: `update` setting the form state (its answer carries the CSRF
    /// token). A browser without a session gets a new anonymous one.
    EditForm,
    /// Save the edit: `csrf/check`, then `update` (form state removed, a last-edit note set).
    SubmitEdit,
    /// Open the login form: `update` setting `returnto` (the CSRF token comes with it).
    LoginForm,
    /// Submit the login form: `csrf/check`, then `login`, which promotes the anonymous data.
    SubmitLogin,
    /// Log out: `logout`.
    Logout,
}

/// A step and how long the browser waits before it (think time, or the pause before a
/// returning visit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timed {
    pub(crate) wait_ms: u64,
    pub(crate) step: Step,
}

/// The scripts a visitor can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Script {
    /// Reads pages without a session (no cookie, no store operation anywhere).
    Reader,
    /// Opens the edit form (a CSRF token and form state) and leaves: bot-like traffic.
    DriveBy,
    /// Opens the edit form, saves the edit, reads on with the session.
    Editor,
    /// Logs in (promoting the login form's state), browses in visits separated by more than
    /// the token's soft lifetime, and logs out or just leaves.
    Member,
}

/// One browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Visitor {
    pub(crate) id: u64,
    pub(crate) script: Script,
    pub(crate) start_ms: u64,
    pub(crate) steps: Vec<Timed>,
}

/// The mix of one block: how many visitors of each script, and the totals their steps are
/// spread over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mix {
    /// Readers without a session, and the pages each reads.
    pub(crate) readers: u64,
    pub(crate) reader_pages: u64,
    /// Visitors who open the edit form and leave.
    pub(crate) drive_bys: u64,
    /// Anonymous editors, and the pages each reads after saving.
    pub(crate) editors: u64,
    pub(crate) editor_pages: u64,
    /// Logins (members), and how many of them log out.
    pub(crate) logins: u64,
    pub(crate) logouts: u64,
    /// Returning visits of all members together (each begins with a token refresh).
    pub(crate) returning_visits: u64,
    /// Page views of all members together, over their first and returning visits.
    pub(crate) member_pages: u64,
}

/// The choices the derivation does not pin down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Choices {
    /// The block is 1/`divisor` of a second of Wikimedia's traffic (2: the smallest block
    /// with whole counts).
    pub(crate) divisor: u64,
    /// Pages an anonymous editor reads after saving.
    pub(crate) editor_pages: u64,
    /// Readers without a session a block, and their pages: they cost nothing anywhere and
    /// only scale the per-1,000 figures, for every configuration alike.
    pub(crate) readers: u64,
    pub(crate) reader_pages: u64,
}

impl Default for Choices {
    fn default() -> Self {
        Self {
            divisor: 2,
            editor_pages: 3,
            readers: 100,
            reader_pages: 3,
        }
    }
}

fn exact(what: &str, n: u64, d: u64) -> Result<u64, String> {
    if d == 0 || !n.is_multiple_of(d) {
        return Err(format!("{what}: {n} is not a multiple of {d}"));
    }
    Ok(n / d)
}

fn minus(what: &str, a: u64, b: u64) -> Result<u64, String> {
    a.checked_sub(b)
        .ok_or_else(|| format!("{what}: {b} is more than {a}"))
}

impl Mix {
    /// Solves the model of configuration (a) for the mix that gives `target` (per second)
    /// in a block of 1/`divisor` s. With `T` the target of the block:
    ///
    /// - logins `L = T.anon.delete` (a login deletes the anonymous session it promotes; no
    ///   other step deletes an anonymous session);
    /// - logouts `O = T.auth.delete` (the only authenticated delete);
    /// - `T.auth.write = L (login) + L (CSRF secret after login, emulated) + O (revocation
    ///   log at logout) + F (token refreshes, emulated)`, so `F`, the returning visits;
    /// - `T.auth.read = P (page views) + L + F (the read of each emulated update) + O (the
    ///   logout's read)`, so `P`, the members' page views;
    /// - `T.anon.read = 2L (login: csrf/check and the login's read) + E (2 + k)` (an editor:
    ///   csrf/check, the update's read, `k` pages), so `E`, the editors;
    /// - `T.anon.write = 2L (login form, the login's retiring write) + 2E (edit form, save)
    ///   + D`, so `D`, the drive-by editors.
    ///
    /// # Errors
    ///
    /// The equation that has no whole, non-negative solution.
    pub(crate) fn derive(target: &Ops, c: &Choices) -> Result<Self, String> {
        let d = c.divisor;
        let anon_r = exact("anonymous reads", target.anonymous.read, d)?;
        let anon_w = exact("anonymous writes", target.anonymous.write, d)?;
        let anon_d = exact("anonymous deletes", target.anonymous.delete, d)?;
        let auth_r = exact("authenticated reads", target.authenticated.read, d)?;
        let auth_w = exact("authenticated writes", target.authenticated.write, d)?;
        let auth_d = exact("authenticated deletes", target.authenticated.delete, d)?;
        let logins = anon_d;
        let logouts = auth_d;
        if logouts > logins {
            return Err(format!("{logouts} logouts but only {logins} logins"));
        }
        let returning_visits = minus("authenticated writes", auth_w, 2 * logins + logouts)?;
        let member_pages = minus(
            "authenticated reads",
            auth_r,
            logins + returning_visits + logouts,
        )?;
        let editors = exact(
            "anonymous reads left for editors",
            minus("anonymous reads", anon_r, 2 * logins)?,
            2 + c.editor_pages,
        )?;
        let drive_bys = minus("anonymous writes", anon_w, 2 * logins + 2 * editors)?;
        if member_pages < logins + returning_visits {
            return Err("fewer member pages than visits".to_owned());
        }
        Ok(Self {
            readers: c.readers,
            reader_pages: c.reader_pages,
            drive_bys,
            editors,
            editor_pages: c.editor_pages,
            logins,
            logouts,
            returning_visits,
            member_pages,
        })
    }

    /// Browser requests of one block.
    pub(crate) fn requests(&self) -> u64 {
        self.readers * self.reader_pages
            + self.drive_bys
            + self.editors * (2 + self.editor_pages)
            + self.logins * 2
            + self.member_pages
            + self.logouts
    }
}

/// Timing of the plan, in milliseconds of wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Timing {
    /// The server's `[tokens] sxp`.
    pub(crate) sxp_ms: u64,
    /// Think time between the pages of a visit.
    pub(crate) think_ms: (u64, u64),
    /// Time spent filling in a form.
    pub(crate) form_ms: (u64, u64),
    /// A returning visit begins this much more than `sxp` after the previous visit ended:
    /// its token is then past its soft expiry whatever the timestamps' rounding (whole
    /// seconds), and no visit lasts long enough for its token to expire inside it.
    pub(crate) pause_margin_ms: (u64, u64),
    /// Members start within this window.
    pub(crate) member_window_ms: u64,
    /// The server's idle timeout: a session is renewed (one write) once half of it has
    /// passed since the last renewal, so no member's session may live that long, or the
    /// counts would depend on timing.
    pub(crate) idle_ms: u64,
}

impl Timing {
    pub(crate) fn new(sxp_ms: u64, idle_ms: u64) -> Self {
        Self {
            sxp_ms,
            think_ms: (50, 150),
            form_ms: (200, 600),
            // Token times are whole seconds: a token issued at t is soft-expired for every
            // request at or after t + sxp + 1 s, and for none before t + sxp - 1 s.
            pause_margin_ms: (1200, 2000),
            member_window_ms: 20_000,
            idle_ms,
        }
    }

    /// The longest a visit can last: it must stay well inside the soft lifetime.
    fn longest_visit_ms(&self, pages: u64) -> u64 {
        pages * self.think_ms.1 + self.form_ms.1
    }
}

/// The visitors of `blocks` blocks of `mix`, from `seed`: exactly the mix's counts, in an
/// order, with start times and waits drawn from the seeded sequence.
///
/// # Errors
///
/// If a visit could outlast the soft lifetime, or a member's session live long enough to be
/// renewed (the counts would then depend on timing).
pub(crate) fn plan(mix: &Mix, blocks: u64, seed: u64, t: &Timing) -> Result<Vec<Visitor>, String> {
    let mut rng = Rng::new(seed);
    let visits = mix.logins + mix.returning_visits;
    let base_pages = mix.member_pages / visits.max(1);
    let extra_pages = mix.member_pages % visits.max(1);
    let longest = t.longest_visit_ms(base_pages + 1) + 1000;
    if longest + 1000 >= t.sxp_ms {
        return Err(format!(
            "a visit may last {longest} ms, too close to sxp ({} ms): lengthen sxp",
            t.sxp_ms
        ));
    }
    let mut members = Vec::new();
    let mut others = Vec::new();
    for _ in 0..blocks {
        // Returning visits spread evenly over the members, and page views over all visits;
        // which member gets which is shuffled.
        let mut returning: Vec<u64> = (0..mix.logins)
            .map(|i| {
                mix.returning_visits / mix.logins + u64::from(i < mix.returning_visits % mix.logins)
            })
            .collect();
        rng.shuffle(&mut returning);
        let mut pages: Vec<u64> = (0..visits)
            .map(|i| base_pages + u64::from(i < extra_pages))
            .collect();
        rng.shuffle(&mut pages);
        let mut logout: Vec<bool> = (0..mix.logins).map(|i| i < mix.logouts).collect();
        rng.shuffle(&mut logout);
        let mut pages = pages.into_iter();
        for (v, out) in returning.iter().zip(&logout) {
            let mut steps = vec![
                Timed {
                    wait_ms: 0,
                    step: Step::LoginForm,
                },
                Timed {
                    wait_ms: rng.between(t.form_ms.0, t.form_ms.1),
                    step: Step::SubmitLogin,
                },
            ];
            for visit in 0..=*v {
                let n = pages.next().unwrap_or(base_pages);
                for p in 0..n {
                    let wait_ms = if visit > 0 && p == 0 {
                        t.sxp_ms + rng.between(t.pause_margin_ms.0, t.pause_margin_ms.1)
                    } else {
                        rng.between(t.think_ms.0, t.think_ms.1)
                    };
                    steps.push(Timed {
                        wait_ms,
                        step: Step::Page {
                            refresh: visit > 0 && p == 0,
                        },
                    });
                }
            }
            if *out {
                steps.push(Timed {
                    wait_ms: rng.between(t.think_ms.0, t.think_ms.1),
                    step: Step::Logout,
                });
            }
            // Allow 50 ms a request for the answers, and 5 s to spare.
            let life = steps.iter().map(|s| s.wait_ms + 50).sum::<u64>() + 5000;
            if life >= t.idle_ms / 2 {
                return Err(format!(
                    "a member's session may live {} s, past half the idle timeout ({} s), \
                     where it would be renewed: lengthen the idle timeout or the soft lifetime's scale",
                    life / 1000,
                    t.idle_ms / 2000
                ));
            }
            members.push((Script::Member, steps));
        }
        for _ in 0..mix.readers {
            let steps = (0..mix.reader_pages)
                .map(|p| Timed {
                    wait_ms: if p == 0 {
                        0
                    } else {
                        rng.between(t.think_ms.0, t.think_ms.1)
                    },
                    step: Step::Page { refresh: false },
                })
                .collect();
            others.push((Script::Reader, steps));
        }
        for _ in 0..mix.drive_bys {
            others.push((
                Script::DriveBy,
                vec![Timed {
                    wait_ms: 0,
                    step: Step::EditForm,
                }],
            ));
        }
        for _ in 0..mix.editors {
            let mut steps = vec![
                Timed {
                    wait_ms: 0,
                    step: Step::EditForm,
                },
                Timed {
                    wait_ms: rng.between(t.form_ms.0, t.form_ms.1),
                    step: Step::SubmitEdit,
                },
            ];
            for _ in 0..mix.editor_pages {
                steps.push(Timed {
                    wait_ms: rng.between(t.think_ms.0, t.think_ms.1),
                    step: Step::Page { refresh: false },
                });
            }
            others.push((Script::Editor, steps));
        }
    }
    let mut out = Vec::with_capacity(members.len() + others.len());
    let mut end = 0;
    for (script, steps) in members {
        let start_ms = rng.below(t.member_window_ms);
        end = end.max(start_ms + steps.iter().map(|s| s.wait_ms).sum::<u64>());
        out.push((script, start_ms, steps));
    }
    // Everyone else arrives while members are browsing.
    let horizon = (end * 9 / 10).max(1);
    for (script, steps) in others {
        out.push((script, rng.below(horizon), steps));
    }
    rng.shuffle(&mut out);
    Ok(out
        .into_iter()
        .enumerate()
        .map(|(i, (script, start_ms, steps))| Visitor {
            id: i as u64 + 1,
            script,
            start_ms,
            steps,
        })
        .collect())
}

/// Who the browser is, as far as the store is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// No session.
    Nobody,
    /// An anonymous session (in the store, or in its cookie in client mode).
    Anonymous,
    /// Logged in; `fresh`: no page viewed since the login.
    User { fresh: bool },
}

/// The store operations the plan should cost in `config`: the model the measured figures
/// are checked against, step by step as the driver runs them.
pub(crate) fn expected(visitors: &[Visitor], config: Config) -> Ops {
    let mut ops = Ops::default();
    for v in visitors {
        let mut who = Who::Nobody;
        for t in &v.steps {
            who = step_cost(config, who, t.step, &mut ops);
        }
    }
    ops
}

/// Adds what `step` costs to `ops` and returns who the browser is afterwards.
fn step_cost(config: Config, who: Who, step: Step, ops: &mut Ops) -> Who {
    let stored_anon = config != Config::Client;
    let a = &mut ops.anonymous;
    match (step, who) {
        (Step::Page { .. }, Who::Nobody) => Who::Nobody,
        (Step::Page { .. }, Who::Anonymous) => {
            if stored_anon {
                a.read += 1;
            }
            who
        }
        (Step::Page { refresh }, Who::User { fresh }) => {
            let u = &mut ops.authenticated;
            u.read += 1;
            // (a): MediaWiki writes here (a forced persist for the token refresh, or the
            // CSRF secret that the login reset); the driver's update reads, then writes.
            if config == Config::Mediawiki && (refresh || fresh) {
                u.read += 1;
                u.write += 1;
            }
            Who::User { fresh: false }
        }
        (Step::EditForm | Step::LoginForm, Who::User { .. }) => {
            ops.authenticated.read += 1;
            ops.authenticated.write += 1;
            who
        }
        (Step::EditForm | Step::LoginForm, w) => {
            if stored_anon {
                // A new session is one create; an existing one is read, then written.
                if w == Who::Anonymous {
                    a.read += 1;
                }
                a.write += 1;
            }
            Who::Anonymous
        }
        (Step::SubmitEdit, w) => {
            if stored_anon && w == Who::Anonymous {
                a.read += 2;
                a.write += 1;
            }
            w
        }
        (Step::SubmitLogin, w) => {
            if stored_anon && w == Who::Anonymous {
                // csrf/check reads; login reads, expires the record (compare-and-set),
                // deletes it with a tombstone.
                a.read += 2;
                a.write += 1;
                a.delete += 1;
            }
            ops.authenticated.write += 1;
            Who::User { fresh: true }
        }
        (Step::Logout, Who::User { .. }) => {
            let u = &mut ops.authenticated;
            u.read += 1;
            u.delete += 1;
            // The revocation log entry for verifiers (`/v1/revocations`).
            u.write += 1;
            Who::Nobody
        }
        (Step::Logout, _) => Who::Nobody,
    }
}

/// Wikimedia's figures for `blocks` blocks of 1/`divisor` s.
pub(crate) fn wikimedia_for(blocks: u64, divisor: u64) -> Ops {
    let w = WIKIMEDIA;
    let per = |n: u64| n * blocks / divisor;
    Ops {
        anonymous: Rwd {
            read: per(w.anonymous.read),
            write: per(w.anonymous.write),
            delete: per(w.anonymous.delete),
        },
        authenticated: Rwd {
            read: per(w.authenticated.read),
            write: per(w.authenticated.write),
            delete: per(w.authenticated.delete),
        },
    }
}

/// Browser requests in a plan.
pub(crate) fn requests(visitors: &[Visitor]) -> u64 {
    visitors.iter().map(|v| v.steps.len() as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived() -> Mix {
        Mix::derive(&WIKIMEDIA, &Choices::default()).unwrap()
    }

    #[test]
    fn the_derivation_of_the_mix() {
        let m = derived();
        assert_eq!(
            m,
            Mix {
                readers: 100,
                reader_pages: 3,
                drive_bys: 108,
                editors: 11,
                editor_pages: 3,
                logins: 10,
                logouts: 4,
                returning_visits: 76,
                member_pages: 585,
            }
        );
        assert_eq!(m.requests(), 1072);
    }

    #[test]
    fn configuration_a_gives_back_wikimedias_figures_exactly() {
        let m = derived();
        let visitors = plan(&m, 3, 42, &Timing::new(15_000, 360_000)).unwrap();
        assert_eq!(requests(&visitors), 3 * m.requests());
        let a = expected(&visitors, Config::Mediawiki);
        assert_eq!(a, wikimedia_for(3, 2));
        // 1.5 s of Wikimedia: 3,042 operations, of which 750 writes.
        assert_eq!(a.total(), 3042);
        assert_eq!(a.writes(), 750);
    }

    #[test]
    fn the_model_meets_the_target_for_c_and_counts_b() {
        let visitors = plan(&derived(), 1, 1, &Timing::new(15_000, 360_000)).unwrap();
        let a = expected(&visitors, Config::Mediawiki);
        let b = expected(&visitors, Config::Server);
        let c = expected(&visitors, Config::Client);
        assert_eq!(c.anonymous, Rwd::default());
        // Logins (10) and the logouts' revocation entries (4).
        assert_eq!(c.writes(), 14);
        assert!(
            c.writes() * 10 <= a.writes() * 4,
            "(c) at least 60% fewer writes"
        );
        // (b) keeps every anonymous operation of (a) and none of the emulated writes.
        assert_eq!(b.anonymous, a.anonymous);
        assert_eq!(b.authenticated.write, 14);
        assert_eq!(
            a.authenticated.read - b.authenticated.read,
            a.authenticated.write - b.authenticated.write
        );
    }

    #[test]
    fn the_plan_is_reproducible_and_exact() {
        let m = derived();
        let t = Timing::new(15_000, 360_000);
        let p = plan(&m, 2, 9, &t).unwrap();
        assert_eq!(p, plan(&m, 2, 9, &t).unwrap());
        assert_ne!(p, plan(&m, 2, 10, &t).unwrap());
        let count = |s: Script| p.iter().filter(|v| v.script == s).count() as u64;
        assert_eq!(count(Script::Member), 2 * m.logins);
        assert_eq!(count(Script::DriveBy), 2 * m.drive_bys);
        assert_eq!(count(Script::Editor), 2 * m.editors);
        assert_eq!(count(Script::Reader), 2 * m.readers);
        let steps = || p.iter().flat_map(|v| v.steps.iter());
        let refreshes = steps()
            .filter(|s| s.step == Step::Page { refresh: true })
            .count() as u64;
        assert_eq!(refreshes, 2 * m.returning_visits);
        assert_eq!(
            steps().filter(|s| s.step == Step::Logout).count() as u64,
            2 * m.logouts
        );
        // A returning visit begins past the soft lifetime; pages inside a visit are quick.
        for s in steps() {
            match s.step {
                Step::Page { refresh: true } => assert!(s.wait_ms > t.sxp_ms + 1000),
                Step::Page { refresh: false } => assert!(s.wait_ms <= t.think_ms.1),
                _ => assert!(s.wait_ms <= t.form_ms.1),
            }
        }
    }

    #[test]
    fn a_soft_lifetime_too_short_for_a_visit_is_refused() {
        assert!(plan(&derived(), 1, 1, &Timing::new(2_000, 360_000)).is_err());
    }

    #[test]
    fn sessions_that_would_be_renewed_are_refused() {
        // Renewal after 60 s; members live about 8 soft lifetimes.
        assert!(plan(&derived(), 1, 1, &Timing::new(10_000, 120_000)).is_err());
        assert!(plan(&derived(), 1, 1, &Timing::new(10_000, 240_000)).is_ok());
    }

    #[test]
    fn figures_without_a_whole_solution_are_refused() {
        let mut odd = WIKIMEDIA;
        odd.anonymous.read = 151;
        assert!(Mix::derive(&odd, &Choices::default()).is_err());
        let mut few = WIKIMEDIA;
        few.authenticated.write = 20;
        assert!(Mix::derive(&few, &Choices::default()).is_err());
    }
}
