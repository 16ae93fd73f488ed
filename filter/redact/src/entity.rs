//! Entity types and the spans the engine reports.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// What kind of sensitive value a span holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityType {
    EmailAddress,
    UsSsn,
    CreditCard,
    PhoneNumber,
    IbanCode,
    UsBankNumber,
    IpAddress,
    Secret,
    Person,
    /// A US Individual Taxpayer Identification Number (SSN-shaped, area 9xx).
    UsItin,
    /// A team's own pattern or deny-list, named by the policy (e.g. `PROJECT_CODENAME`).
    Custom(Arc<str>),
}

impl EntityType {
    /// Every built-in type, in the order reports list them.
    pub const BUILTIN: [EntityType; 10] = [
        EntityType::EmailAddress,
        EntityType::UsSsn,
        EntityType::CreditCard,
        EntityType::PhoneNumber,
        EntityType::IbanCode,
        EntityType::UsBankNumber,
        EntityType::IpAddress,
        EntityType::Secret,
        EntityType::Person,
        EntityType::UsItin,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            EntityType::EmailAddress => "EMAIL_ADDRESS",
            EntityType::UsSsn => "US_SSN",
            EntityType::CreditCard => "CREDIT_CARD",
            EntityType::PhoneNumber => "PHONE_NUMBER",
            EntityType::IbanCode => "IBAN_CODE",
            EntityType::UsBankNumber => "US_BANK_NUMBER",
            EntityType::IpAddress => "IP_ADDRESS",
            EntityType::Secret => "SECRET",
            EntityType::Person => "PERSON",
            EntityType::UsItin => "US_ITIN",
            EntityType::Custom(name) => name,
        }
    }

    /// The built-in type with this name, if any.
    pub fn builtin(name: &str) -> Option<EntityType> {
        Self::BUILTIN.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EntityType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One detected value: `start`/`end` are offsets in Unicode scalar values (chars) into the
/// input text, end exclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entity {
    #[serde(rename = "type")]
    pub entity_type: EntityType,
    pub start: usize,
    pub end: usize,
}
