//! Country and autonomous system of an address, from MaxMind DB files (GeoLite2 or any
//! database in the same format, e.g. ip-location-db's). Both common record layouts are
//! read: MaxMind's (`country.iso_code`, `autonomous_system_number`) and the flat one
//! (`country_code`).

use serde::Deserialize;
use std::net::IpAddr;

/// An opened database.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

#[derive(Deserialize)]
struct Country<'a> {
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    continent: Option<ContinentCode<'a>>,
    #[serde(default)]
    continent_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(default)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct ContinentCode<'a> {
    #[serde(default)]
    code: Option<&'a str>,
}

/// Where an address is, as far as a country database says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: [u8; 2],
    /// The country's English name, if the database has names.
    pub country_name: Option<String>,
    /// The continent's two-letter code, if the database has it.
    pub continent: Option<String>,
}

fn two_letters(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

#[derive(Deserialize)]
struct Asn {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
}

impl GeoDb {
    /// Reads the whole file; an unreadable or malformed file is an error naming it.
    pub fn open(path: &str) -> Result<GeoDb, crate::Error> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| crate::Error::GeoDb {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        Ok(GeoDb { reader })
    }

    /// The database's type as it declares it (e.g. `GeoLite2-Country`).
    pub fn kind(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The ISO 3166-1 alpha-2 code of the country an address is in, upper case.
    pub fn country(&self, ip: IpAddr) -> Option<[u8; 2]> {
        let found = self.reader.lookup(ip.to_canonical()).ok()?;
        let rec: Country = found.decode().ok()??;
        two_letters(rec.country.and_then(|c| c.iso_code).or(rec.country_code)?)
    }

    /// The country, its name and continent (for the WAF's `GEO` collection).
    pub fn locate(&self, ip: IpAddr) -> Option<Location> {
        let found = self.reader.lookup(ip.to_canonical()).ok()?;
        let rec: Country = found.decode().ok()??;
        let code = rec
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or(rec.country_code)?;
        let name = rec
            .country
            .as_ref()
            .and_then(|c| c.names.as_ref())
            .and_then(|n| n.en);
        let continent = rec.continent.and_then(|c| c.code).or(rec.continent_code);
        Some(Location {
            country: two_letters(code)?,
            country_name: name.map(str::to_string),
            continent: continent
                .and_then(two_letters)
                .map(|c| String::from_utf8_lossy(&c).into_owned()),
        })
    }

    /// The autonomous system number an address is announced by.
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        let found = self.reader.lookup(ip.to_canonical()).ok()?;
        let rec: Asn = found.decode().ok()??;
        rec.autonomous_system_number
    }
}

/// ISO 3166-1 alpha-2 codes officially assigned (plus `EU` and `AP`, which GeoIP databases
/// use for addresses assigned to a region): a config naming anything else is a typo.
pub fn is_country_code(code: &str) -> bool {
    const CODES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW EU AP";
    code.len() == 2 && CODES.split(' ').any(|c| c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes() {
        assert!(is_country_code("FR") && is_country_code("US") && is_country_code("EU"));
        for bad in ["fr", "XX", "FRA", "", "F", "ZZ"] {
            assert!(!is_country_code(bad), "{bad}");
        }
    }

    /// A small database written here (MaxMind's layout): ASNs and countries are read.
    #[test]
    fn asn_and_country_from_a_written_database() {
        use maxminddb_writer::paths::IpAddrWithMask;
        use std::collections::BTreeMap;
        let mut db = maxminddb_writer::Database::default();
        db.metadata.binary_format_major_version = 2;
        db.metadata.ip_version = maxminddb_writer::metadata::IpVersion::V4;
        db.metadata.database_type = "Rampart-Test".into();
        let asn = BTreeMap::from([("autonomous_system_number", 64496u32)]);
        let asn = db.insert_value(asn).unwrap();
        let fr = BTreeMap::from([("country", BTreeMap::from([("iso_code", "fr")]))]);
        let fr = db.insert_value(fr).unwrap();
        db.insert_node("192.0.2.0/24".parse::<IpAddrWithMask>().unwrap(), asn);
        db.insert_node("198.51.100.0/24".parse::<IpAddrWithMask>().unwrap(), fr);
        let dir = std::env::temp_dir().join(format!("rampart-geo-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("small.mmdb");
        db.write_to(std::fs::File::create(&path).unwrap()).unwrap();
        let g = GeoDb::open(path.to_str().unwrap()).unwrap();
        assert_eq!(g.asn("192.0.2.7".parse().unwrap()), Some(64496));
        assert_eq!(g.asn("198.51.100.1".parse().unwrap()), None);
        assert_eq!(g.country("198.51.100.1".parse().unwrap()), Some(*b"FR"));
        assert_eq!(g.country("203.0.113.1".parse().unwrap()), None);
        let at = g.locate("198.51.100.1".parse().unwrap()).unwrap();
        assert_eq!(
            (at.country, at.country_name, at.continent),
            (*b"FR", None, None)
        );
    }

    #[test]
    fn unreadable_databases_are_named() {
        let e = GeoDb::open("/nonexistent/x.mmdb")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/x.mmdb: not a readable MaxMind DB"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("rampart-geo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.mmdb");
        std::fs::write(&f, b"not a database").unwrap();
        assert!(GeoDb::open(f.to_str().unwrap()).is_err());
    }
}

/// Against the real GeoLite2 country database `scripts/test` fetches from npm.
#[cfg(test)]
mod real_database {
    use super::*;

    fn fixture() -> String {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/test-fixtures/geolite2-country.mmdb"
        );
        assert!(
            std::path::Path::new(p).exists(),
            "{p} is missing: scripts/test fetches it (npm pack @ip-location-db/geolite2-country-mmdb)"
        );
        p.to_string()
    }

    #[test]
    fn countries_of_well_known_addresses() {
        let db = GeoDb::open(&fixture()).unwrap();
        for (ip, want) in [
            ("8.8.8.8", Some(*b"US")),
            ("2001:4860:4860::8888", Some(*b"US")),
            ("::ffff:8.8.8.8", Some(*b"US")),
            ("81.2.69.142", Some(*b"GB")),
            ("193.0.6.139", Some(*b"NL")),
            ("127.0.0.1", None),
            ("10.1.2.3", None),
        ] {
            assert_eq!(db.country(ip.parse().unwrap()), want, "{ip}");
        }
    }
}
