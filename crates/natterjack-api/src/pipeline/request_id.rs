//! A random id per request, available to every error body and log line of that request.

use rand::RngCore;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The response header that carries the id back to the client.
pub const HEADER: &str = "x-request-id";

/// The id of the request being handled on this task (empty outside a request).
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// A new random id: 128 bits, as 32 hex digits. From the thread's CSPRNG (ChaCha, seeded
/// and periodically reseeded from the OS), not a system call per request: every request,
/// refused ones included, gets an id, and under a flood the `getrandom` calls and the
/// per-digit formatting were a visible share of a refusal's cost.
pub fn fresh() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut id = String::with_capacity(32);
    for b in bytes {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    id
}

/// Runs `fut` with `id` as the request's id (see [`current`]). The id is always a fresh
/// one, never chosen by the client, which could forge log entries with it.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_id_is_32_lower_case_hex_digits_and_never_repeats() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| fresh()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
    }
}
