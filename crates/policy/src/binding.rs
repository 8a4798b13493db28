//! What an approval is bound to.
//!
//! An approval is single-use and bound to the SHA-256 of the exact action, the environment it runs
//! in and the grants it runs with. The coordinator computes the hash when it asks; the executor
//! recomputes it from what it is about to run and refuses on any difference. One function, used by
//! both, so the two can never disagree on the encoding.

use sha2::{Digest, Sha256};

/// Hex SHA-256 over a canonical JSON encoding of the action, environment name, egress hosts and
/// secret names (sorted, so their order in the environment does not matter).
pub fn action_hash(
    action: &str,
    environment: Option<&str>,
    egress: &[String],
    secrets: &[String],
) -> String {
    let mut egress = egress.to_vec();
    egress.sort();
    let mut secrets = secrets.to_vec();
    secrets.sort();
    let canonical = serde_json::json!({
        "v": 1,
        "action": action,
        "environment": environment,
        "egress": egress,
        "secrets": secrets,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_difference_changes_the_hash_but_grant_order_does_not() {
        let a = vec!["db:5432".to_owned(), "api:443".to_owned()];
        let s = vec!["TOKEN".to_owned()];
        let base = action_hash("kubectl delete pod x", Some("prod"), &a, &s);
        assert_eq!(base.len(), 64);
        let mut reordered = a.clone();
        reordered.reverse();
        assert_eq!(
            base,
            action_hash("kubectl delete pod x", Some("prod"), &reordered, &s)
        );
        assert_ne!(
            base,
            action_hash("kubectl delete pod y", Some("prod"), &a, &s)
        );
        assert_ne!(
            base,
            action_hash("kubectl delete pod x", Some("staging"), &a, &s)
        );
        assert_ne!(base, action_hash("kubectl delete pod x", None, &a, &s));
        assert_ne!(
            base,
            action_hash("kubectl delete pod x", Some("prod"), &a[..1], &s)
        );
        assert_ne!(
            base,
            action_hash("kubectl delete pod x", Some("prod"), &a, &[])
        );
    }
}
