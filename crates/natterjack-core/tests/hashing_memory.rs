//! Argon2id's 19 MiB of working memory goes back to the kernel after each computation, so a
//! flood of wrong passwords cannot leave the process holding a copy per thread. Alone in its
//! own test binary, so that no other test allocates while the resident set is read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use natterjack_core::auth::{HashingParams, PasswordHashing};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// The resident set in KiB, from `/proc/self/status`; `None` where there is no procfs.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_leave_no_working_memory_resident() {
    let Some(_) = resident_kib() else {
        eprintln!("SKIPPED: no /proc/self/status on this system");
        return;
    };
    let hashing = Arc::new(
        PasswordHashing::new(HashingParams::default(), 4, Duration::from_secs(60)).unwrap(),
    );
    let phc = hashing
        .hash(Zeroizing::new(b"violet-anvil-73-harbour".to_vec()))
        .await
        .unwrap();
    // One verification first, so that code, thread stacks and the runtime are resident.
    assert!(
        !hashing
            .verify(Zeroizing::new(b"wrong".to_vec()), phc.clone())
            .await
            .unwrap()
    );
    let before = resident_kib().unwrap();
    for _ in 0..3 {
        let rounds: Vec<_> = (0..4)
            .map(|_| {
                let (hashing, phc) = (hashing.clone(), phc.clone());
                tokio::spawn(async move {
                    hashing
                        .verify(Zeroizing::new(b"a-wrong-guess".to_vec()), phc)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for round in rounds {
            assert!(!round.await.unwrap());
        }
    }
    let after = resident_kib().unwrap();
    let grown = after.saturating_sub(before);
    // One computation's memory is 19,456 KiB: twelve verifications on four threads must not
    // leave even one of them behind.
    assert!(
        grown < 19 * 1024,
        "resident set grew by {grown} KiB (from {before} to {after}) after 12 verifications"
    );
}
