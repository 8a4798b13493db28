//! The core enums of the product plan, serialised exactly as CONTRACT.md names them.

/// Defines a fieldless enum whose wire name is given per variant, with `as_str`, `Display` and
/// `FromStr` that agree with serde (one spelling, used by JSON, the database and the CLI).
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}; expected one of: {}",
                        stringify!($name),
                        [$($wire),+].join(", ")
                    )),
                }
            }
        }
    };
}

pub(crate) use wire_enum;

wire_enum! {
    /// How much harm an action can do; decided by parsing the action, never by the model.
    /// Ordered: a higher tier is more dangerous.
    RiskTier {
        /// Reads only.
        L0Readonly = "L0_READONLY",
        /// Changes state that can be changed back.
        L1Mutating = "L1_MUTATING",
        /// Destroys data or state.
        L2Destructive = "L2_DESTRUCTIVE",
        /// Acts with privileges over the host, identities or the policy itself.
        L3Privileged = "L3_PRIVILEGED",
    }
}

impl PartialOrd for RiskTier {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RiskTier {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

wire_enum! {
    /// The outcome of an approval.
    ApprovalDecision {
        Approve = "APPROVE",
        Deny = "DENY",
        /// Recorded by the server when an approval outlives its TTL or its task is cancelled.
        Expire = "EXPIRE",
    }
}

wire_enum! {
    /// A user's persistent bypass toggle.
    BypassMode {
        Off = "OFF",
        On = "ON",
    }
}

wire_enum! {
    /// Which policy layer made a decision.
    PolicySource {
        OrgDefault = "ORG_DEFAULT",
        UserOverride = "USER_OVERRIDE",
        SystemEnforced = "SYSTEM_ENFORCED",
    }
}

wire_enum! {
    /// What a user may do. Services are non-humans (CI jobs) whose approvals an admin decides.
    Role {
        Member = "member",
        Admin = "admin",
        Service = "service",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_exactly_as_the_contract_names_them() {
        let json = serde_json::to_string(&[
            RiskTier::L0Readonly,
            RiskTier::L1Mutating,
            RiskTier::L2Destructive,
            RiskTier::L3Privileged,
        ])
        .unwrap();
        assert_eq!(
            json,
            r#"["L0_READONLY","L1_MUTATING","L2_DESTRUCTIVE","L3_PRIVILEGED"]"#
        );
        assert_eq!(
            serde_json::to_string(&ApprovalDecision::ALL).unwrap(),
            r#"["APPROVE","DENY","EXPIRE"]"#
        );
        assert_eq!(
            serde_json::to_string(&BypassMode::ALL).unwrap(),
            r#"["OFF","ON"]"#
        );
        assert_eq!(
            serde_json::to_string(&PolicySource::ALL).unwrap(),
            r#"["ORG_DEFAULT","USER_OVERRIDE","SYSTEM_ENFORCED"]"#
        );
        assert_eq!(
            serde_json::to_string(&Role::ALL).unwrap(),
            r#"["member","admin","service"]"#
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_unknown_values() {
        for t in RiskTier::ALL {
            assert_eq!(t.as_str().parse::<RiskTier>(), Ok(*t));
        }
        assert!("l0_readonly".parse::<RiskTier>().is_err());
        assert!(serde_json::from_str::<Role>(r#""root""#).is_err());
    }

    #[test]
    fn tiers_are_ordered_by_danger() {
        assert!(RiskTier::L0Readonly < RiskTier::L1Mutating);
        assert!(RiskTier::L2Destructive < RiskTier::L3Privileged);
        assert_eq!(RiskTier::ALL.iter().max(), Some(&RiskTier::L3Privileged));
    }
}
