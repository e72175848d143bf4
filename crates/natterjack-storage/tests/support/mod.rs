//! Helpers shared by the storage integration tests.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub mod pg;
