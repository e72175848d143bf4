//! The gRPC names of the API's operations: service and method to [`Operation`]. Their needs
//! are declared once, in [`crate::pipeline::operation`]; a call of a method missing here is
//! refused (fail closed), and a test checks every method of the proto files against it.

use crate::pipeline::Operation;

/// Every gRPC method, by service, with the operation it performs.
pub const OPERATIONS: &[(&str, &str, Operation)] = &[
    ("Spaces", "CreateSpace", Operation::CreateSpace),
    ("Spaces", "ListSpaces", Operation::ListSpaces),
    ("Spaces", "GetSpace", Operation::GetSpace),
    ("Spaces", "PostMessage", Operation::PostMessage),
    ("Spaces", "ListMessages", Operation::ListMessages),
    ("Spaces", "GetMessage", Operation::GetMessage),
    ("Spaces", "DeleteMessage", Operation::DeleteMessage),
    ("Spaces", "ListMembers", Operation::ListMembers),
    ("Spaces", "GrantPermissions", Operation::GrantPermissions),
    ("Spaces", "RevokePermissions", Operation::RevokePermissions),
    ("Spaces", "WatchMessages", Operation::WatchMessages),
    ("Admin", "CreateUser", Operation::OperatorCreateUser),
    ("Admin", "SetAdmin", Operation::OperatorSetAdmin),
    ("Admin", "QueryAudit", Operation::OperatorQueryAudit),
];

/// The operation of `service`'s `method`, if declared.
pub fn declared(service: &str, method: &str) -> Option<Operation> {
    OPERATIONS
        .iter()
        .find(|(s, m, _)| *s == service && *m == method)
        .map(|(_, _, op)| *op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Need;
    use prost::Message as _;

    #[test]
    fn every_method_of_the_proto_files_declares_its_operation_and_nothing_else_is_declared() {
        let set = prost_types::FileDescriptorSet::decode(super::super::proto::FILE_DESCRIPTOR_SET)
            .unwrap();
        let mut methods = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.push((service.name().to_owned(), method.name().to_owned()));
                }
            }
        }
        assert!(methods.len() >= 14, "{methods:?}");
        for (service, method) in &methods {
            assert!(
                declared(service, method).is_some(),
                "{service}/{method} declares no operation, so the pipeline refuses every call"
            );
        }
        for (service, method, _) in OPERATIONS {
            assert!(
                methods.iter().any(|(s, m)| s == service && m == method),
                "{service}/{method} is declared but not in the proto files"
            );
        }
    }

    #[test]
    fn the_admin_service_needs_the_operator_and_nothing_public_does() {
        for (service, method, op) in OPERATIONS {
            assert_eq!(
                *service == "Admin",
                op.need() == Need::Operator,
                "{service}/{method}"
            );
        }
    }
}
