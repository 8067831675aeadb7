//! What `@geoLookup` asks of its host: where an address is. The engine has no database of
//! its own; the gateway lends it the one its network lists use.

use std::net::IpAddr;

/// Where an address is, as the `GEO` collection shows it (ModSecurity's field names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoRecord {
    /// ISO 3166-1 alpha-2, upper case (`GEO:COUNTRY_CODE`).
    pub country_code: String,
    /// The country's English name, when the database has it (`GEO:COUNTRY_NAME`).
    pub country_name: Option<String>,
    /// The continent's two-letter code, when the database has it (`GEO:COUNTRY_CONTINENT`).
    pub continent: Option<String>,
}

impl GeoRecord {
    /// The `GEO` collection's items.
    pub(crate) fn items(self) -> crate::body::Pairs {
        let mut items = vec![(b"COUNTRY_CODE".to_vec(), self.country_code.into_bytes())];
        if let Some(n) = self.country_name {
            items.push((b"COUNTRY_NAME".to_vec(), n.into_bytes()));
        }
        if let Some(c) = self.continent {
            items.push((b"COUNTRY_CONTINENT".to_vec(), c.into_bytes()));
        }
        items
    }
}

/// A geolocation database. Without one, `@geoLookup` never matches (a failed lookup, as
/// in ModSecurity without `SecGeoLookupDb`).
pub trait GeoLookup: Send + Sync {
    /// Where `ip` is, if the database knows.
    fn lookup(&self, ip: IpAddr) -> Option<GeoRecord>;
}
