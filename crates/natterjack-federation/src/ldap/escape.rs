//! Escaping of untrusted text placed into LDAP strings, so that a login name can never
//! change what a filter or a DN means (LDAP injection).

use std::fmt::Write;

/// Escapes `value` for use as an assertion value in a search filter (RFC 4515 §3): `*`,
/// `(`, `)`, `\` and NUL must be written `\XX`; other ASCII control characters are escaped
/// too so that a filter never carries raw control bytes into a log. Everything else,
/// including non-ASCII UTF-8, is kept as it is (RFC 4515 allows it).
pub fn filter_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' | '\u{1}'..='\u{1f}' | '\u{7f}' => {
                push_hex(&mut escaped, c);
            }
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Escapes `value` for use as an attribute value in a DN's RDN (RFC 4514 §2.4): `"`, `+`,
/// `,`, `;`, `<`, `>`, `\` and NUL anywhere, `#` or space at the start and space at the
/// end. `=` is escaped too (allowed, and it keeps naive DN parsers honest). Each escaped
/// character is written as `\XX` hex.
pub fn dn_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' | '\0')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if special {
            push_hex(&mut escaped, c);
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Writes an ASCII character as a backslash and two lowercase hex digits.
fn push_hex(out: &mut String, c: char) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\{:02x}", u32::from(c));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn filter_metacharacters_are_hex_escaped() {
        assert_eq!(filter_value("*"), r"\2a");
        assert_eq!(filter_value("("), r"\28");
        assert_eq!(filter_value(")"), r"\29");
        assert_eq!(filter_value("\\"), r"\5c");
        assert_eq!(filter_value("\0"), r"\00");
        assert_eq!(filter_value("a\nb"), r"a\0ab");
    }

    #[test]
    fn filter_injection_names_become_literal_text() {
        assert_eq!(filter_value("*)(uid=*"), r"\2a\29\28uid=\2a");
        assert_eq!(filter_value("admin)(|(a=*"), r"admin\29\28|\28a=\2a");
    }

    #[test]
    fn ordinary_names_are_unchanged_in_a_filter() {
        assert_eq!(filter_value("alice"), "alice");
        assert_eq!(filter_value("Bob42"), "Bob42");
        assert_eq!(filter_value("zoë=é"), "zoë=é");
    }

    #[test]
    fn filter_escaping_agrees_with_ldap3_on_the_required_characters() {
        let sample = "a*b(c)d\\e\0f";
        assert_eq!(filter_value(sample), ldap3::ldap_escape(sample));
    }

    #[test]
    fn dn_specials_are_hex_escaped_anywhere() {
        assert_eq!(dn_value(r#"a"b"#), r"a\22b");
        assert_eq!(dn_value("a+b"), r"a\2bb");
        assert_eq!(dn_value("a,b"), r"a\2cb");
        assert_eq!(dn_value("a;b"), r"a\3bb");
        assert_eq!(dn_value("a<b>c"), r"a\3cb\3ec");
        assert_eq!(dn_value(r"a\b"), r"a\5cb");
        assert_eq!(dn_value("a=b"), r"a\3db");
        assert_eq!(dn_value("a\0b"), r"a\00b");
    }

    #[test]
    fn dn_leading_hash_and_edge_spaces_are_escaped_but_inner_ones_are_not() {
        assert_eq!(dn_value("#a#b"), r"\23a#b");
        assert_eq!(dn_value(" a b "), r"\20a b\20");
        assert_eq!(dn_value(" "), r"\20");
        assert_eq!(dn_value(""), "");
    }

    #[test]
    fn a_dn_injection_value_cannot_add_an_rdn() {
        assert_eq!(
            dn_value("x,ou=admins,dc=evil"),
            r"x\2cou\3dadmins\2cdc\3devil"
        );
    }

    /// Reverses `\XX` escapes, for the round-trip properties below.
    fn unescape(escaped: &str) -> String {
        let bytes = escaped.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    proptest! {
        #[test]
        fn an_escaped_filter_value_has_no_metacharacter_and_round_trips(value in any::<String>()) {
            let escaped = filter_value(&value);
            prop_assert!(!escaped.contains(['*', '(', ')', '\0']));
            prop_assert_eq!(unescape(&escaped), value);
        }

        #[test]
        fn an_escaped_dn_value_has_no_separator_and_round_trips(value in any::<String>()) {
            let escaped = dn_value(&value);
            prop_assert!(!escaped.contains([',', '+', ';', '"', '<', '>', '=', '\0']));
            prop_assert!(!escaped.starts_with([' ', '#']));
            prop_assert!(!escaped.ends_with(' '));
            prop_assert_eq!(unescape(&escaped), value);
        }
    }
}
