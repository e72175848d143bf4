//! The few bytes of PostgreSQL's protocol the forwarder speaks itself: the client's first
//! packet (read before anything is sent upstream), the SSLRequest that asks a server for
//! TLS, and an ErrorResponse that tells sqlx why a connection could not be made.
//!
//! Everything after the first packet is copied unread.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The SSLRequest: length 8, code 80877103 (1234 << 16 | 5679).
pub(crate) const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The code of a GSSENCRequest (1234 << 16 | 5680), which the forwarder declines like an
/// SSLRequest: the forwarder is the only TLS on the way.
const GSSENC_CODE: u32 = 80_877_104;

/// The code of an SSLRequest.
const SSL_CODE: u32 = 80_877_103;

/// PostgreSQL's own limit on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP: usize = 10_000;

/// Reads the client's startup packet (or cancel request), whole, declining an SSLRequest or
/// GSSENCRequest sent before it with `N`, as a server without them would.
pub(crate) async fn read_startup<S>(client: &mut S) -> io::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A client asks at most once for each kind of encryption before its startup packet.
    for _ in 0..3 {
        let mut length = [0u8; 4];
        client.read_exact(&mut length).await?;
        let length = u32::from_be_bytes(length) as usize;
        if !(8..=MAX_STARTUP).contains(&length) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "invalid startup packet length",
            ));
        }
        let mut packet = vec![0u8; length];
        packet[..4].copy_from_slice(&(length as u32).to_be_bytes());
        client.read_exact(&mut packet[4..]).await?;
        let code = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if length == 8 && (code == SSL_CODE || code == GSSENC_CODE) {
            client.write_all(b"N").await?;
            continue;
        }
        return Ok(packet);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "too many encryption requests",
    ))
}

/// A FATAL ErrorResponse with SQLSTATE 08001 (the client could not establish the
/// connection), which sqlx reports as a database error carrying `message`.
pub(crate) fn connection_error(message: &str) -> Vec<u8> {
    let mut fields = Vec::with_capacity(message.len() + 32);
    for (kind, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "08001"),
        (b'M', message),
    ] {
        fields.push(kind);
        // A NUL would end the field early; the message is ours, but be safe.
        fields.extend(value.bytes().filter(|b| *b != 0));
        fields.push(0);
    }
    fields.push(0);
    let mut out = Vec::with_capacity(fields.len() + 5);
    out.push(b'E');
    out.extend(((fields.len() + 4) as u32).to_be_bytes());
    out.extend(fields);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn startup() -> Vec<u8> {
        let body = b"\0\x03\0\0user\0nj_app\0\0";
        let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        packet.extend(body);
        packet
    }

    #[tokio::test]
    async fn the_startup_packet_is_read_whole_after_declining_a_tls_request() {
        let (mut client, mut forwarder) = tokio::io::duplex(1024);
        let mut sent = SSL_REQUEST.to_vec();
        sent.extend(startup());
        client.write_all(&sent).await.unwrap();
        let packet = read_startup(&mut forwarder).await.unwrap();
        assert_eq!(packet, startup());
        let mut answer = [0u8; 1];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"N");
    }

    #[tokio::test]
    async fn an_oversized_or_undersized_startup_packet_is_refused() {
        for length in [0u32, 7, 10_001, u32::MAX] {
            let (mut client, mut forwarder) = tokio::io::duplex(64);
            client.write_all(&length.to_be_bytes()).await.unwrap();
            assert!(read_startup(&mut forwarder).await.is_err(), "{length}");
        }
    }

    #[test]
    fn the_error_response_is_a_well_formed_fatal_message() {
        let message = connection_error("no\0pe");
        assert_eq!(message[0], b'E');
        let length = u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
        assert_eq!(length as usize, message.len() - 1);
        let text = String::from_utf8_lossy(&message[5..]);
        assert!(text.contains("SFATAL\0VFATAL\0C08001\0Mnope\0"), "{text:?}");
        assert_eq!(message.last(), Some(&0));
    }
}
