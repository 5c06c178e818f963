//! Deterministic fake data: the same index always gives the same value, so a test can
//! predict a record from its position, and some fields are null on purpose.

use chrono::{DateTime, Duration, NaiveDate, Utc};

const FIRST: [&str; 16] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken",
    "Radia", "Niklaus", "Sophie", "Tim", "Hedy", "Linus",
];
const LAST: [&str; 16] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton",
    "Thompson", "Perlman", "Wirth", "Wilson", "Berners", "Lamarr", "Torvalds",
];
const COMPANY: [&str; 12] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Wonka",
];
const SUFFIX: [&str; 4] = ["Inc", "LLC", "GmbH", "Ltd"];
const CITY: [&str; 8] = [
    "Berlin", "Denver", "Lisbon", "Osaka", "Nairobi", "Austin", "Oslo", "Lyon",
];
/// The industries [`industry`] picks from.
pub const INDUSTRIES: [&str; 6] = [
    "Technology",
    "Banking",
    "Retail",
    "Energy",
    "Education",
    "Healthcare",
];

/// A stable pseudo-random number for (index, salt): splitmix64.
pub fn mix(index: usize, salt: u64) -> u64 {
    let mut z = (index as u64)
        .wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<'a>(list: &[&'a str], index: usize, salt: u64) -> &'a str {
    list[(mix(index, salt) % list.len() as u64) as usize]
}

/// A first name.
pub fn first_name(index: usize) -> &'static str {
    pick(&FIRST, index, 1)
}

/// A last name.
pub fn last_name(index: usize) -> &'static str {
    pick(&LAST, index, 2)
}

/// A company name, unique per index (`Acme 17 Inc`).
pub fn company(index: usize) -> String {
    format!(
        "{} {} {}",
        pick(&COMPANY, index, 3),
        index + 1,
        pick(&SUFFIX, index, 4)
    )
}

/// A unique e-mail address.
pub fn email(index: usize) -> String {
    format!(
        "{}.{}{}@example.test",
        first_name(index).to_lowercase(),
        last_name(index).to_lowercase(),
        index + 1
    )
}

/// A city.
pub fn city(index: usize) -> &'static str {
    pick(&CITY, index, 5)
}

/// An industry.
pub fn industry(index: usize) -> &'static str {
    pick(&INDUSTRIES, index, 6)
}

/// One of `choices`.
pub fn choice<'a>(choices: &[&'a str], index: usize, salt: u64) -> &'a str {
    pick(choices, index, salt)
}

/// A number in `0..bound`.
pub fn number(index: usize, salt: u64, bound: u64) -> u64 {
    mix(index, salt) % bound.max(1)
}

/// Whether this index's field is null: every `every`-th record (by a salted position),
/// so each nullable field is null on a different, predictable set of records.
pub fn is_null(index: usize, salt: u64, every: usize) -> bool {
    every > 0 && (index + salt as usize).is_multiple_of(every)
}

/// A phone number, or `None` on every 7th record.
pub fn phone(index: usize) -> Option<String> {
    (!is_null(index, 3, 7)).then(|| format!("+1-555-{:04}", number(index, 7, 10_000)))
}

/// The creation instant of record `index`: one hour apart from 2024-01-01, increasing.
pub fn created(index: usize) -> DateTime<Utc> {
    let start = NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
        .and_utc();
    start + Duration::hours(index as i64)
}

/// A date within 2024–2025 for record `index`.
pub fn date(index: usize, salt: u64) -> NaiveDate {
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("a valid date");
    start + Duration::days(number(index, salt, 730) as i64)
}

/// RFC 3339 with a `Z`, e.g. `2024-01-01T05:00:00Z`.
pub fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 with milliseconds, e.g. `2024-01-01T05:00:00.000Z`.
pub fn rfc3339_millis(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
