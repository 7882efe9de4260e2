//! End-to-end tests of the example wiki: in headless Chromium through WebDriver.
// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod browser;
mod webdriver;
