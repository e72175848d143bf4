//! Where a sealed value belongs: the associated data of its seal.

/// The place of one sealed value. Sealing binds the ciphertext to all of it, so the value
/// opens only where it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The table.
    pub table: &'static str,
    /// The column.
    pub column: &'static str,
    /// The row's id.
    pub row: i64,
    /// The space the row belongs to (the space itself for a space's name).
    pub space: i64,
}

impl Place {
    /// A message's text.
    pub fn message_body(message: i64, space: i64) -> Self {
        Self {
            table: "messages",
            column: "body",
            row: message,
            space,
        }
    }

    /// A space's name.
    pub fn space_name(space: i64) -> Self {
        Self {
            table: "spaces",
            column: "name",
            row: space,
            space,
        }
    }

    /// The associated data for a seal under `key`: a fixed label, then each part,
    /// unambiguous because the names end in NUL and the numbers have fixed widths.
    pub(super) fn associated_data(&self, key: u32) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(b"natterjack sealed value v1\0");
        aad.extend_from_slice(self.table.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.column.as_bytes());
        aad.push(0);
        aad.extend_from_slice(&self.row.to_be_bytes());
        aad.extend_from_slice(&self.space.to_be_bytes());
        aad.extend_from_slice(&key.to_be_bytes());
        aad
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} of row {}", self.table, self.column, self.row)
    }
}
