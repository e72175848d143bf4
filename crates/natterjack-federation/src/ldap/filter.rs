//! The search filters the adapter sends: the operator's user filter with the login name
//! substituted, and the admin-group membership test. Every substituted value is escaped,
//! so a name can only ever be compared, never change the filter's structure.

use super::escape;
use super::settings::USERNAME_PLACEHOLDER;

/// The operator's `user_filter`, checked: `{username}` occurs exactly once and the filter
/// parses once a name is put in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserFilter {
    /// The text before `{username}`.
    before: String,
    /// The text after `{username}`.
    after: String,
}

impl UserFilter {
    /// Checks `template`; the error is a sentence for the operator.
    pub(crate) fn parse(template: &str) -> Result<Self, String> {
        let occurrences = template.matches(USERNAME_PLACEHOLDER).count();
        if occurrences != 1 {
            return Err(format!(
                "must contain {USERNAME_PLACEHOLDER} exactly once (found {occurrences} times)"
            ));
        }
        let (before, after) = template
            .split_once(USERNAME_PLACEHOLDER)
            .ok_or_else(|| format!("must contain {USERNAME_PLACEHOLDER}"))?;
        let filter = Self {
            before: before.to_owned(),
            after: after.to_owned(),
        };
        if ldap3::parse_filter(filter.for_username("name")).is_err() {
            return Err("is not a valid LDAP search filter (RFC 4515)".to_owned());
        }
        Ok(filter)
    }

    /// The filter finding `username`'s entry, the name RFC 4515-escaped.
    pub(crate) fn for_username(&self, username: &str) -> String {
        format!(
            "{}{}{}",
            self.before,
            escape::filter_value(username),
            self.after
        )
    }
}

/// The filter matching a group entry that lists `user_dn` as a member, for both
/// `groupOfNames` (`member`) and `groupOfUniqueNames` (`uniqueMember`).
pub(crate) fn group_member(user_dn: &str) -> String {
    let dn = escape::filter_value(user_dn);
    format!("(|(member={dn})(uniqueMember={dn}))")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldap::settings::DEFAULT_USER_FILTER;
    use ldap3::asn1::{ASNTag, PL, StructureTag};
    use proptest::prelude::*;

    fn default_filter() -> UserFilter {
        UserFilter::parse(DEFAULT_USER_FILTER).unwrap()
    }

    #[test]
    fn the_default_filter_is_accepted_and_filled_in() {
        assert_eq!(
            default_filter().for_username("alice"),
            "(&(objectClass=inetOrgPerson)(uid=alice))"
        );
    }

    #[test]
    fn a_filter_without_the_placeholder_is_refused() {
        let refused = UserFilter::parse("(uid=alice)").unwrap_err();
        assert!(refused.contains("exactly once"), "{refused}");
    }

    #[test]
    fn a_filter_with_the_placeholder_twice_is_refused() {
        let refused = UserFilter::parse("(|(uid={username})(cn={username}))").unwrap_err();
        assert!(refused.contains("found 2 times"), "{refused}");
    }

    #[test]
    fn a_filter_that_does_not_parse_is_refused() {
        let refused = UserFilter::parse("(&(uid={username})").unwrap_err();
        assert!(refused.contains("not a valid"), "{refused}");
    }

    #[test]
    fn injection_names_are_substituted_as_literal_text() {
        assert_eq!(
            default_filter().for_username("*)(uid=*"),
            r"(&(objectClass=inetOrgPerson)(uid=\2a\29\28uid=\2a))"
        );
        assert_eq!(
            default_filter().for_username("admin)(|(a=*"),
            r"(&(objectClass=inetOrgPerson)(uid=admin\29\28|\28a=\2a))"
        );
    }

    #[test]
    fn the_group_filter_escapes_the_member_dn() {
        assert_eq!(
            group_member("uid=a\\2a(b),dc=x"),
            r"(|(member=uid=a\5c2a\28b\29,dc=x)(uniqueMember=uid=a\5c2a\28b\29,dc=x))"
        );
    }

    const SENTINEL: &str = "natterjackSentinelValue";

    /// The parsed filter (BER structure) with every primitive equal to `from` replaced.
    fn replace(tag: StructureTag, from: &[u8], to: &[u8]) -> StructureTag {
        let payload = match tag.payload {
            PL::P(bytes) if bytes == from => PL::P(to.to_vec()),
            PL::P(bytes) => PL::P(bytes),
            PL::C(children) => PL::C(
                children
                    .into_iter()
                    .map(|child| replace(child, from, to))
                    .collect(),
            ),
        };
        StructureTag { payload, ..tag }
    }

    fn parsed(filter: &str) -> StructureTag {
        ldap3::parse_filter(filter).unwrap().into_structure()
    }

    proptest! {
        /// Whatever the name, the filter sent has the structure of the operator's filter,
        /// with the name, byte for byte, as the one compared value.
        #[test]
        fn an_escaped_name_never_changes_the_filter_structure(
            name in any::<String>(),
            template in prop::sample::select(vec![
                DEFAULT_USER_FILTER,
                "(uid={username})",
                "(|(uid={username})(mail=*))",
                "(&(objectClass=person)(!(cn=x))(sAMAccountName={username}))",
            ]),
        ) {
            let filter = UserFilter::parse(template).unwrap();
            let expected = replace(
                parsed(&filter.for_username(SENTINEL)),
                SENTINEL.as_bytes(),
                name.as_bytes(),
            );
            prop_assert_eq!(parsed(&filter.for_username(&name)), expected);
        }

        /// Likewise for a member DN in the group filter.
        #[test]
        fn an_escaped_dn_never_changes_the_group_filter_structure(dn in any::<String>()) {
            let expected = replace(
                parsed(&group_member(SENTINEL)),
                SENTINEL.as_bytes(),
                dn.as_bytes(),
            );
            prop_assert_eq!(parsed(&group_member(&dn)), expected);
        }
    }
}
