//! [`Zone`]: the schedule's IANA time zone, by name, resolved once against the
//! time zone database compiled into the binary.

use jiff::tz::{TimeZone, TimeZoneDatabase};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An IANA time zone name such as `"America/New_York"`, written in the
/// document as that string.
///
/// The name is looked up when the value is made (by [`Zone::new`] or while
/// deserializing) in the database bundled into the binary, never the host's
/// `/usr/share/zoneinfo`, so that every replica running the same build reads
/// the same rules. An unknown name is kept as written and reported by
/// [`super::Schedule::validate`]; a schedule whose zone did not resolve has
/// nobody on call.
///
/// Equality, ordering and serialization use the name alone.
#[derive(Clone)]
pub struct Zone {
    name: String,
    tz: Option<TimeZone>,
}

impl Zone {
    /// Look `name` up in the bundled database; an unknown name is kept, unresolved.
    pub fn new(name: impl Into<String>) -> Zone {
        let name = name.into();
        let tz = TimeZoneDatabase::bundled().get(&name).ok();
        Zone { name, tz }
    }

    /// The name as written in the document.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resolved zone; `None` when the name is not in the database.
    pub fn time_zone(&self) -> Option<&TimeZone> {
        self.tz.as_ref()
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({:?})", self.name)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl From<&str> for Zone {
    fn from(name: &str) -> Zone {
        Zone::new(name)
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
        String::deserialize(d).map(Zone::new)
    }
}
